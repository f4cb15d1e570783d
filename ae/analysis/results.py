"""What a trained model does on the test set, computed once per saved model and shared.

Pages read codes, reconstructions and per-digit errors from here instead of running the
model on every rerun; exports (CSV, .keras) are built here too.
"""
from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ae.lru import LRU
from ae.model.data import Dataset
from ae.analysis.metrics import fit_pca, per_image_errors
from ae.model.architectures import AutoencoderModels, predict

ORDERS = ("first", "worst", "best")
_CACHE_SIZE = 6


@dataclass(frozen=True)
class TestSetResults:
    """Codes, reconstructions and per-digit errors for every test digit, in test-set order."""

    codes: np.ndarray
    reconstructions: np.ndarray  # (N, 28, 28) in 0..1
    bce: np.ndarray
    mse: np.ndarray
    labels: np.ndarray

    def errors(self, metric: str) -> np.ndarray:
        return {"bce": self.bce, "mse": self.mse}[metric]


_cache: LRU[tuple, TestSetResults] = LRU(_CACHE_SIZE)  # computed once per key, however many sessions ask


def _cached(cache_key: tuple, compute) -> TestSetResults:
    return _cache.get_or_build(cache_key, compute)


def _results(dataset: Dataset, codes: np.ndarray, reconstructions: np.ndarray) -> TestSetResults:
    bce, mse = per_image_errors(dataset.test_images, reconstructions)
    return TestSetResults(codes, reconstructions, bce, mse, dataset.y_test)


def test_set_results(key: str, saved_at: float, models: AutoencoderModels, dataset: Dataset) -> TestSetResults:
    """Encode and reconstruct the whole test set once per saved model (key + save time)."""

    def compute() -> TestSetResults:
        codes = predict(models.encoder, dataset.test_images)
        return _results(dataset, codes, predict(models.decoder, codes)[..., 0])

    return _cached((key, saved_at, id(dataset)), compute)


def pca_test_set_results(dataset: Dataset, n_components: int) -> TestSetResults:
    """The same for PCA with `n_components`, the autoencoder's baseline, once per size."""

    def compute() -> TestSetResults:
        baseline = fit_pca(dataset, n_components)
        codes = baseline.encode(dataset.test_images)
        return _results(dataset, codes, baseline.decode(codes))

    return _cached(("pca", int(n_components), id(dataset)), compute)


def select_digits(errors: np.ndarray, labels: np.ndarray, count: int, digit: int | None = None, order: str = "first") -> np.ndarray:
    """Test indices to show: the first, worst or best `count` digits, optionally of one class."""
    if order not in ORDERS:
        raise ValueError(f"Order must be one of {', '.join(ORDERS)}; got {order!r}.")
    candidates = np.arange(len(labels)) if digit is None else np.flatnonzero(labels == digit)
    if order == "worst":
        candidates = candidates[np.argsort(-errors[candidates], kind="stable")]
    elif order == "best":
        candidates = candidates[np.argsort(errors[candidates], kind="stable")]
    return candidates[: max(0, int(count))]


def decode(models: AutoencoderModels, codes: np.ndarray) -> np.ndarray:
    """Codes (N, code_size) -> images (N, 28, 28) in 0..1."""
    return predict(models.decoder, np.atleast_2d(codes))[..., 0]


def manifold_positions(coordinates: np.ndarray, per_side: int, low_percentile: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """An evenly spaced grid spanning the bulk of a 2-D map (percentiles cut outliers).

    Returns (positions (per_side**2, 2), row-major with y decreasing downwards, and the
    x and y values used), so the decoded images tile like the map itself.
    """
    low = np.percentile(coordinates, low_percentile, axis=0)
    high = np.percentile(coordinates, 100 - low_percentile, axis=0)
    xs = np.linspace(low[0], high[0], per_side)
    ys = np.linspace(high[1], low[1], per_side)
    grid = np.array([(x, y) for y in ys for x in xs], dtype=np.float32)
    return grid, np.stack([xs, ys])


def prior_grid(per_side: int, low_quantile: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """A grid over a variational model's 2-D prior: standard-normal quantiles from 5% to 95% on
    each axis (as the Keras VAE example draws its manifold), laid out like manifold_positions."""
    from scipy.stats import norm

    values = norm.ppf(np.linspace(low_quantile, 1 - low_quantile, per_side))
    grid = np.array([(x, y) for y in values[::-1] for x in values], dtype=np.float32)
    return grid, np.stack([values, values[::-1]])


def prior_samples(code_size: int, count: int, seed: int) -> np.ndarray:
    """Codes drawn from a variational model's prior, N(0, I): decoded, they are new digits."""
    return np.random.default_rng(seed).standard_normal((count, code_size)).astype(np.float32)


def codes_csv(codes: np.ndarray, labels: np.ndarray) -> str:
    """One row per test digit: index, label, code_1..code_k."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["test_index", "label", *[f"code_{i + 1}" for i in range(codes.shape[1])]])
    for index, (label, code) in enumerate(zip(labels, codes)):
        writer.writerow([index, int(label), *[f"{value:.6g}" for value in code]])
    return buffer.getvalue()


def history_csv(epoch_ends, train_loss, val_loss, epoch_seconds=()) -> str:
    """One row per epoch: where it ended (fractional after a stop), losses and wall time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["epoch_end", "train_loss", "val_loss", "seconds"])
    for row, (end, train, val) in enumerate(zip(epoch_ends, train_loss, val_loss)):
        seconds = f"{epoch_seconds[row]:.3f}" if row < len(epoch_seconds) else ""
        writer.writerow([f"{end:g}", f"{train:.6g}", f"{val:.6g}", seconds])
    return buffer.getvalue()


def keras_file_bytes(models: AutoencoderModels) -> bytes:
    """The autoencoder as a `.keras` file, for download: decoder(encoder(x)) rebuilt from the two
    trained models, so training-only layers (input noise, a VAE's sampling, the contractive
    penalty, which Keras cannot serialize) stay out and the file loads with plain Keras."""
    import keras

    image = keras.Input(shape=models.encoder.inputs[0].shape[1:], name="image")
    autoencoder = keras.Model(image, models.decoder(models.encoder(image)), name="autoencoder")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "autoencoder.keras"
        autoencoder.save(path)
        return path.read_bytes()


NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
NOISE_CURVE_DIGITS = 1_000


def error_against_noise(models: AutoencoderModels, dataset: Dataset, kind: str, levels=NOISE_LEVELS,
                        count: int = NOISE_CURVE_DIGITS, seed: int = 0) -> list[float]:
    """Mean BCE of the reconstruction of noisy test digits against the clean ones, per noise
    level: how fast a model's output degrades as its input gets noisier."""
    from ae.model.noise import add_noise

    clean = dataset.test_images[:count]
    errors = []
    for level in levels:
        noisy = add_noise(clean, kind, level, seed=seed)
        bce, _ = per_image_errors(clean, predict(models.autoencoder, noisy))
        errors.append(float(bce.mean()))
    return errors
