"""What a model makes of one digit: how unusual it is, its neighbours, a guess, walks, new digits.

Everything works on codes and errors the pages already have (`ae.analysis.results`), so the numbers can
be checked by hand: a percentile is a count, neighbours are Euclidean distances in code space,
and a walk decodes evenly spaced codes on the straight line between two codes.

What needs all 60,000 training digits (a logistic regression on their codes, the Gaussian fitted to
them) is a model's *digit reader*: made by the training process when it saves the model and written
beside it (`digit_reader.npz`, keyed to the model's save time), so the page's first drawing only
reads a small file. Measured before: a first drawing waited 26 s on an idle server for this.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NEIGHBOURS = 8
WALK_STEPS = 10
READER_FILE = "digit_reader.npz"
ENCODE_CHUNK = 4096  # training digits converted to floats at a time: never all 60,000 at once (188 MB)


def error_percentile(error: float, test_errors: np.ndarray) -> float:
    """The share of test digits (in %) whose reconstruction error is below this one's."""
    test_errors = np.asarray(test_errors, dtype=np.float64)
    return float(100.0 * np.count_nonzero(test_errors < error) / len(test_errors))


def unusualness_sentence(percentile: float) -> str:
    if percentile >= 99.5:
        return "more unusual than almost every test digit: the model has rarely seen anything like it"
    if percentile >= 90:
        return f"more unusual than {percentile:.0f}% of test digits"
    if percentile >= 50:
        return f"a little unusual: more unusual than {percentile:.0f}% of test digits"
    return f"an ordinary digit to this model: more unusual than only {percentile:.0f}% of test digits"


def nearest_codes(code: np.ndarray, codes: np.ndarray, count: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the `count` codes closest to `code` (Euclidean), nearest first, and their distances."""
    distances = np.linalg.norm(np.asarray(codes, dtype=np.float64) - np.asarray(code, dtype=np.float64).ravel(), axis=1)
    order = np.argsort(distances, kind="stable")[:count]
    return order, distances[order]


@dataclass(frozen=True)
class CodeClassifier:
    """A logistic regression reading the digit from a code: how much of the label the code keeps.
    Plain arrays (standardise, then softmax of a linear map), so it is saved and read without pickle."""

    mean: np.ndarray  # (k,) the standardiser's
    scale: np.ndarray  # (k,)
    coef: np.ndarray  # (classes, k), or (1, k) for two classes
    intercept: np.ndarray  # (classes,) or (1,)
    classes: np.ndarray  # (classes,)
    train_accuracy: float

    def probabilities(self, codes: np.ndarray) -> np.ndarray:
        """scikit-learn's predict_proba, in numpy: a softmax (a sigmoid for two classes)."""
        scores = (np.atleast_2d(np.asarray(codes, dtype=np.float64)) - self.mean) / self.scale @ self.coef.T + self.intercept
        if scores.shape[1] == 1:
            scores = np.hstack([np.zeros_like(scores), scores])
        scores -= scores.max(axis=1, keepdims=True)
        exponentials = np.exp(scores)
        return exponentials / exponentials.sum(axis=1, keepdims=True)

    def guess(self, code: np.ndarray) -> tuple[int, float]:
        probabilities = self.probabilities(np.asarray(code).reshape(1, -1))[0]
        best = int(np.argmax(probabilities))
        return int(self.classes[best]), float(probabilities[best])


def fit_code_classifier(codes: np.ndarray, labels: np.ndarray, seed: int = 0) -> CodeClassifier:
    """On one thread, with tol=1e-3 (scikit-learn's default is 1e-4). Measured on the 60,000 codes
    of the article's model on 2 busy cores: 0.4 s of CPU on one thread, 20 s with OpenBLAS's and
    OpenMP's threads spinning against each other (most of the 26 s a first drawing used to wait);
    tol=1e-3 stops after about a third of the iterations, 90.7% right on the test codes instead of 90.8%."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    codes = np.asarray(codes, dtype=np.float64)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, tol=1e-3, random_state=seed))
    with threadpool_limits(1):
        model.fit(codes, labels)
        accuracy = float(model.score(codes, labels))
    scaler, regression = model[0], model[-1]
    return CodeClassifier(scaler.mean_.copy(), scaler.scale_.copy(), regression.coef_.copy(), regression.intercept_.copy(),
                          np.asarray(regression.classes_), accuracy)


@dataclass(frozen=True)
class CodeGaussian:
    """Mean and covariance of the training digits' codes: where a plain autoencoder's new digits come from."""

    mean: np.ndarray
    covariance: np.ndarray


def fit_code_gaussian(codes: np.ndarray) -> CodeGaussian:
    from threadpoolctl import threadpool_limits

    codes = np.asarray(codes, dtype=np.float64)
    with threadpool_limits(1):  # as for the classifier: BLAS's threads only spin on a busy machine
        covariance = np.atleast_2d(np.cov(codes, rowvar=False)) + 1e-6 * np.eye(codes.shape[1])
    return CodeGaussian(codes.mean(axis=0), covariance)


def walk_codes(start: np.ndarray, end: np.ndarray, steps: int = WALK_STEPS) -> np.ndarray:
    """`steps` codes evenly spaced on the line from `start` to `end`, both ends included."""
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    start, end = (np.asarray(part, dtype=np.float32).ravel() for part in (start, end))
    return (1 - weights) * start + weights * end


def blend_pixels(start: np.ndarray, end: np.ndarray, steps: int = WALK_STEPS) -> np.ndarray:
    """The same walk in pixel space: a cross-fade, what a latent space is better than."""
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None, None]
    return (1 - weights) * np.asarray(start, dtype=np.float32) + weights * np.asarray(end, dtype=np.float32)


def generation_codes(gaussian: CodeGaussian, count: int, seed: int, variational: bool) -> np.ndarray:
    """Codes to decode into new digits: the prior N(0, I) for a variational model; otherwise the
    Gaussian fitted to the training codes (mean and covariance), the best a plain autoencoder offers."""
    rng = np.random.default_rng(seed)
    if variational:
        return rng.standard_normal((count, len(gaussian.mean))).astype(np.float32)
    return rng.multivariate_normal(gaussian.mean, gaussian.covariance, size=count, method="eigh").astype(np.float32)


# ---- a model's digit reader: made once, with the model, by the training process --------------
@dataclass(frozen=True)
class DigitReader:
    """What the page needs from all 60,000 training digits, for one saved model (its `saved_at`)."""

    saved_at: float
    classifier: CodeClassifier
    gaussian: CodeGaussian


def encode_training_digits(encoder, x_train: np.ndarray) -> np.ndarray:
    """Codes of the uint8 training digits, converted to model input a chunk at a time."""
    from ae.model.architectures import predict
    from ae.model.data import to_model_input

    return np.concatenate([predict(encoder, to_model_input(x_train[start:start + ENCODE_CHUNK]))
                           for start in range(0, len(x_train), ENCODE_CHUNK)])


def make_digit_reader(encoder, dataset, saved_at: float) -> DigitReader:
    """About 1 s on 2 cores for the full MNIST: the encoder over 60,000 digits, then the regression."""
    codes = encode_training_digits(encoder, dataset.x_train)
    return DigitReader(float(saved_at), fit_code_classifier(codes, dataset.y_train), fit_code_gaussian(codes))


def save_digit_reader(folder: Path, reader: DigitReader) -> None:
    """Atomically, beside the model; OSError if the disk refuses."""
    from ae.storage.atomic import write_atomically

    c, g = reader.classifier, reader.gaussian
    write_atomically(Path(folder) / READER_FILE, lambda file: np.savez(
        file, saved_at=np.float64(reader.saved_at), mean=c.mean, scale=c.scale, coef=c.coef, intercept=c.intercept,
        classes=c.classes, train_accuracy=np.float64(c.train_accuracy), code_mean=g.mean, code_covariance=g.covariance))


def load_digit_reader(folder: Path, saved_at: float | None) -> DigitReader | None:
    """The reader saved for exactly these weights (`saved_at`), else None: missing, damaged, or
    made for earlier weights (a Continue's new weights never meet the old model's reader)."""
    path = Path(folder) / READER_FILE
    if saved_at is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if float(saved["saved_at"]) != float(saved_at):
                return None
            arrays = {name: saved[name] for name in saved.files}
        size = arrays["mean"].shape[0]
        if arrays["coef"].shape[1] != size or arrays["code_covariance"].shape != (size, size):
            return None
        classifier = CodeClassifier(arrays["mean"], arrays["scale"], arrays["coef"], arrays["intercept"],
                                    arrays["classes"], float(arrays["train_accuracy"]))
        return DigitReader(float(saved_at), classifier, CodeGaussian(arrays["code_mean"], arrays["code_covariance"]))
    except Exception:  # damaged (truncated, wrong keys, wrong shapes): made again, never trusted
        return None
