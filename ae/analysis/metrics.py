"""Reconstruction error of an autoencoder and of PCA, per pixel, overall and per digit.

PCA with as many components as the code size, fitted on the training digits, is the
baseline behind the article's claim that an autoencoder is "more powerful than PCA".
Both use the same formulas here, so the comparison is like for like.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.decomposition import PCA

from ae.lru import LRU
from ae.model.data import Dataset

EPSILON = 1e-7  # Keras clips probabilities the same way in binary cross-entropy.
DIGITS = tuple(range(10))


def per_image_errors(originals: np.ndarray, reconstructions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean binary cross-entropy and mean squared error per image, averaged over its pixels.

    Both inputs hold values in 0..1 with the same number of pixels per image.
    """
    target = originals.reshape(len(originals), -1).astype(np.float64)
    predicted = np.clip(reconstructions.reshape(len(reconstructions), -1).astype(np.float64), EPSILON, 1 - EPSILON)
    bce = -(target * np.log(predicted) + (1 - target) * np.log(1 - predicted)).mean(axis=1)
    mse = ((target - predicted) ** 2).mean(axis=1)
    return bce, mse


@dataclass(frozen=True)
class ErrorSummary:
    """Test-set error per pixel: overall and for each digit 0-9."""

    bce: float
    mse: float
    bce_per_digit: tuple[float, ...]
    mse_per_digit: tuple[float, ...]
    count_per_digit: tuple[int, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ErrorSummary":
        return cls(
            bce=float(values["bce"]),
            mse=float(values["mse"]),
            bce_per_digit=tuple(float(v) for v in values["bce_per_digit"]),
            mse_per_digit=tuple(float(v) for v in values["mse_per_digit"]),
            count_per_digit=tuple(int(v) for v in values["count_per_digit"]),
        )


def summarize(bce: np.ndarray, mse: np.ndarray, labels: np.ndarray) -> ErrorSummary:
    """Overall means and per-digit means; a digit with no images gets NaN."""
    counts = tuple(int((labels == digit).sum()) for digit in DIGITS)

    def per_digit(values: np.ndarray) -> tuple[float, ...]:
        return tuple(float(values[labels == d].mean()) if counts[d] else float("nan") for d in DIGITS)

    return ErrorSummary(float(bce.mean()), float(mse.mean()), per_digit(bce), per_digit(mse), counts)


class PCABaseline:
    """PCA fitted on the training digits (flattened, 0..1), usable as encoder and decoder."""

    def __init__(self, pca: PCA):
        self.pca = pca

    @property
    def n_components(self) -> int:
        return int(self.pca.n_components_)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self.pca.transform(images.reshape(len(images), -1)).astype(np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> images (N, 28, 28) clipped to the valid pixel range 0..1."""
        flat = self.pca.inverse_transform(np.asarray(codes, dtype=np.float64))
        return np.clip(flat, 0.0, 1.0).reshape(len(flat), 28, 28).astype(np.float32)

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(images))


# A baseline holds up to 784x784 float64 components (5 MB); a code-size sweep asks for a handful
# of sizes, so this many fits are kept, the least recently used forgotten first.
PCA_KEPT = 16
PCA_ERRORS_KEPT = 64  # small summaries, one per dataset and size
_pca_cache: LRU[tuple[int, int, int], PCABaseline] = LRU(PCA_KEPT)


def fit_pca(dataset: Dataset, n_components: int, max_train: int | None = None) -> PCABaseline:
    """PCA with `n_components` on the training digits, fitted once per dataset and size: sessions
    asking for the same size wait for one fit, other sizes fit meanwhile (no global lock)."""
    train_count = len(dataset.x_train) if max_train is None else min(max_train, len(dataset.x_train))
    n_components = int(min(n_components, 784, train_count))

    def fit() -> PCABaseline:
        flat = dataset.train_images[:train_count].reshape(train_count, -1)
        return PCABaseline(PCA(n_components=n_components, svd_solver="covariance_eigh").fit(flat))

    return _pca_cache.get_or_build((id(dataset), n_components, train_count), fit)


def evaluate_reconstructions(dataset: Dataset, reconstructions: np.ndarray) -> ErrorSummary:
    """Error of reconstructions of the whole test set, in test-set order."""
    bce, mse = per_image_errors(dataset.test_images, reconstructions)
    return summarize(bce, mse, dataset.y_test)


_pca_errors: LRU[tuple[int, int], ErrorSummary] = LRU(PCA_ERRORS_KEPT)


def evaluate_pca(dataset: Dataset, n_components: int) -> ErrorSummary:
    """The PCA baseline's test error with as many components as the autoencoder's code.

    Cached per dataset and size: the code-size page asks for every size on each refresh.
    """
    def evaluate() -> ErrorSummary:
        return evaluate_reconstructions(dataset, fit_pca(dataset, n_components).reconstruct(dataset.test_images))

    return _pca_errors.get_or_build((id(dataset), int(n_components)), evaluate)


NEAR_ZERO = 0.01  # an activation this small, relative to its unit's largest, counts as "off"
HEATMAP_UNITS = 64


@dataclass(frozen=True)
class CodeActivity:
    """Which code units fire for which digits: what sparsity is for, and telling for any model."""

    digit_means: np.ndarray  # (10, units shown): mean |activation| of each unit for each digit
    units: np.ndarray  # which code units the columns are (all, or the most digit-specific ones)
    near_zero_share: float  # share of (digit image, unit) activations that are about zero
    total_units: int


def code_activity(codes: np.ndarray, labels: np.ndarray, max_units: int = HEATMAP_UNITS) -> CodeActivity:
    """Mean absolute activation per digit and unit, and the share of near-zero activations.

    With more than `max_units` units, the columns are the units whose mean differs most
    between digits, in their own order.
    """
    magnitude = np.abs(np.asarray(codes, dtype=np.float64))
    scale = magnitude.max(axis=0)
    near_zero = float((magnitude <= NEAR_ZERO * np.where(scale > 0, scale, 1.0)).mean())
    means = np.stack([magnitude[labels == digit].mean(axis=0) if (labels == digit).any() else np.zeros(magnitude.shape[1])
                      for digit in DIGITS])
    units = np.arange(magnitude.shape[1])
    if len(units) > max_units:
        units = np.sort(np.argsort(means.std(axis=0))[::-1][:max_units])
    return CodeActivity(means[:, units], units, near_zero, magnitude.shape[1])
