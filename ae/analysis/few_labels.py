"""Few-labels probe: does a code help a classifier when labelled examples are scarce?

A logistic regression is trained on 10, 30, ... labelled training digits (and on all of
them), using (a) the autoencoder's codes, (b) PCA codes of the same size, (c) raw pixels,
and scored on the whole test set, over a few random draws of the labelled subset. The
unlabelled training digits are fair game for the features (the autoencoder and PCA were
fitted on them, the code scaler too); labels come only from the drawn subset.

Runs under a one-thread BLAS: on this kind of machine the small solves are 20x faster
single-threaded. Raw-pixel and PCA results do not depend on the model, so they are
computed once per process and shared.
"""
from __future__ import annotations

import csv
import io
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ae.model.data import Dataset
from ae.analysis.metrics import fit_pca

LABEL_COUNTS = (10, 30, 100, 300, 1000, None)  # None: every labelled training digit
DEFAULT_DRAWS = 3
MAX_ITER = 100
FEATURES = ("autoencoder", "pca", "pixels")
FEATURE_LABELS = {"autoencoder": "autoencoder codes", "pca": "PCA codes (same size)", "pixels": "raw pixels"}


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracies of one kind of feature: one tuple of draws per labelled-set size."""

    feature: str
    dimensions: int
    label_counts: tuple[int, ...]
    accuracies: tuple[tuple[float, ...], ...]
    seconds: float

    def mean(self) -> np.ndarray:
        return np.array([np.mean(draws) for draws in self.accuracies])

    def spread(self) -> np.ndarray:
        """Standard deviation over the draws (0 when there is only one)."""
        return np.array([np.std(draws) for draws in self.accuracies])


def balanced_subset(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices with every class as equally represented as possible."""
    classes = np.unique(labels)
    per_class, extra = divmod(count, len(classes))
    chosen = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())), replace=False) for c in classes]
    chosen = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    if extra:
        rest = np.setdiff1d(np.arange(len(labels)), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=extra, replace=False)])
    return np.sort(chosen)


def probe_features(train_x, train_y, test_x, test_y, feature: str = "features",
                   label_counts=LABEL_COUNTS, draws: int = DEFAULT_DRAWS, seed: int = 0) -> ProbeResult:
    """Accuracy of logistic regression on each labelled-set size, `draws` random subsets each."""
    started = time.perf_counter()
    counts = tuple(len(train_y) if c is None or c >= len(train_y) else int(c) for c in label_counts)
    rng = np.random.default_rng(seed)
    accuracies = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for count in counts:
            repeats = 1 if count == len(train_y) else draws  # every draw of "all" is the same set
            scores = []
            for _ in range(repeats):
                chosen = balanced_subset(train_y, count, rng)
                if len(np.unique(train_y[chosen])) < 2:
                    scores.append(float(np.mean(test_y == train_y[chosen][0])))
                    continue
                classifier = LogisticRegression(max_iter=MAX_ITER).fit(train_x[chosen], train_y[chosen])
                scores.append(float(classifier.score(test_x, test_y)))
            accuracies.append(tuple(scores))
    return ProbeResult(feature, int(train_x.shape[1]), counts, tuple(accuracies), time.perf_counter() - started)


def _standardized(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes come in arbitrary scales (relu units, PCA variances); put them on one footing."""
    scaler = StandardScaler().fit(train)
    return scaler.transform(train).astype(np.float32), scaler.transform(test).astype(np.float32)


_shared: dict[tuple, ProbeResult] = {}
_shared_lock = threading.Lock()


def _shared_result(key: tuple, compute) -> ProbeResult:
    with _shared_lock:
        if key not in _shared:
            _shared[key] = compute()
        return _shared[key]


def run_probe(dataset: Dataset, train_codes: np.ndarray, test_codes: np.ndarray,
              label_counts=LABEL_COUNTS, draws: int = DEFAULT_DRAWS, seed: int = 0) -> dict[str, ProbeResult]:
    """All three probes for one model's codes (all training digits' codes, all test digits')."""
    code_size = train_codes.shape[1]
    settings = (tuple(label_counts), draws, seed)
    flat_train = dataset.train_images.reshape(len(dataset.train_images), -1)
    flat_test = dataset.test_images.reshape(len(dataset.test_images), -1)

    def pca_probe() -> ProbeResult:
        baseline = fit_pca(dataset, code_size)
        train, test = _standardized(baseline.encode(dataset.train_images), baseline.encode(dataset.test_images))
        return probe_features(train, dataset.y_train, test, dataset.y_test, "pca", label_counts, draws, seed)

    def pixel_probe() -> ProbeResult:
        return probe_features(flat_train, dataset.y_train, flat_test, dataset.y_test, "pixels", label_counts, draws, seed)

    train, test = _standardized(train_codes, test_codes)
    return {
        "autoencoder": probe_features(train, dataset.y_train, test, dataset.y_test, "autoencoder", label_counts, draws, seed),
        "pca": _shared_result((id(dataset), "pca", code_size, *settings), pca_probe),
        "pixels": _shared_result((id(dataset), "pixels", *settings), pixel_probe),
    }


def probe_csv(results: dict[str, ProbeResult]) -> str:
    """One row per feature kind and labelled-set size: mean, spread and every draw."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["features", "dimensions", "labelled_digits", "mean_accuracy", "std_accuracy", "draws"])
    for name, result in results.items():
        for count, draws, mean, spread in zip(result.label_counts, result.accuracies, result.mean(), result.spread()):
            writer.writerow([name, result.dimensions, count, f"{mean:.4f}", f"{spread:.4f}", " ".join(f"{a:.4f}" for a in draws)])
    return buffer.getvalue()
