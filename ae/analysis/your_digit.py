"""What a model makes of one digit: how unusual it is, its neighbours, a guess, walks, new digits.

Everything works on codes and errors the pages already have (`ae.analysis.results`), so the numbers can
be checked by hand: a percentile is a count, neighbours are Euclidean distances in code space,
and a walk decodes evenly spaced codes on the straight line between two codes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 8
WALK_STEPS = 10


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


@dataclass
class CodeClassifier:
    """A logistic regression reading the digit from a code: how much of the label the code keeps."""

    model: object  # a scikit-learn pipeline: standardise, then multinomial logistic regression
    train_accuracy: float

    def guess(self, code: np.ndarray) -> tuple[int, float]:
        probabilities = self.model.predict_proba(np.asarray(code, dtype=np.float64).reshape(1, -1))[0]
        best = int(np.argmax(probabilities))
        return int(self.model.classes_[best]), float(probabilities[best])


def fit_code_classifier(codes: np.ndarray, labels: np.ndarray, seed: int = 0) -> CodeClassifier:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
    model.fit(np.asarray(codes, dtype=np.float64), labels)
    return CodeClassifier(model, float(model.score(np.asarray(codes, dtype=np.float64), labels)))


def walk_codes(start: np.ndarray, end: np.ndarray, steps: int = WALK_STEPS) -> np.ndarray:
    """`steps` codes evenly spaced on the line from `start` to `end`, both ends included."""
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    start, end = (np.asarray(part, dtype=np.float32).ravel() for part in (start, end))
    return (1 - weights) * start + weights * end


def blend_pixels(start: np.ndarray, end: np.ndarray, steps: int = WALK_STEPS) -> np.ndarray:
    """The same walk in pixel space: a cross-fade, what a latent space is better than."""
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None, None]
    return (1 - weights) * np.asarray(start, dtype=np.float32) + weights * np.asarray(end, dtype=np.float32)


def generation_codes(train_codes: np.ndarray, count: int, seed: int, variational: bool) -> np.ndarray:
    """Codes to decode into new digits: the prior N(0, I) for a variational model; otherwise a
    Gaussian fitted to the training codes (mean and covariance), the best a plain autoencoder offers."""
    rng = np.random.default_rng(seed)
    size = train_codes.shape[1]
    if variational:
        return rng.standard_normal((count, size)).astype(np.float32)
    codes = np.asarray(train_codes, dtype=np.float64)
    covariance = np.atleast_2d(np.cov(codes, rowvar=False)) + 1e-6 * np.eye(size)
    return rng.multivariate_normal(codes.mean(axis=0), covariance, size=count, method="eigh").astype(np.float32)
