"""MNIST (or any .npz with keras's MNIST keys), loaded once per process and shared.

The app ships the full MNIST as `assets/mnist.npz`; `AE_DATA_PATH` points at another file
with the same keys (Fashion-MNIST works as is). Every way a file can be wrong ends in one
`DataError` that names the file and says what is wrong.
"""
from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

BUNDLED_PATH = Path(__file__).resolve().parents[2] / "assets" / "mnist.npz"
KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_ARCHIVE_BYTES = 2 * 1024**3  # all four arrays once loaded; the full MNIST needs 55 MB
MIN_IMAGES = {"train": 10, "test": 10}  # the smallest training set a config accepts; a panel's worth
IMAGE_SHAPE = (28, 28)
CREDIT = (
    "MNIST database by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, "
    "used under the Creative Commons Attribution-Share Alike 3.0 licence."
)


class DataError(ValueError):
    """The data file is missing or not an MNIST-shaped .npz; the message says which and why."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """uint8 images (N, 28, 28) and labels (N,), as keras.datasets.mnist returns them."""

    path: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @cached_property
    def train_images(self) -> np.ndarray:
        """Training images as float32 in 0..1, shaped (N, 28, 28, 1) for the models."""
        return to_model_input(self.x_train)

    @cached_property
    def test_images(self) -> np.ndarray:
        """Test images as float32 in 0..1, shaped (N, 28, 28, 1) for the models."""
        return to_model_input(self.x_test)

    def training_images(self, indices: np.ndarray) -> np.ndarray:
        """Only the chosen training digits as model input: 2,000 digits never convert all 60,000."""
        if "train_images" in self.__dict__:
            return self.train_images[indices]
        return to_model_input(self.x_train[indices])

    @property
    def name(self) -> str:
        return self.path.name


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) scaled to 0..1."""
    return (images.astype(np.float32) / np.float32(255.0))[..., np.newaxis]


def data_path() -> Path:
    """The file in use: `AE_DATA_PATH` if set, else the bundled MNIST."""
    configured = os.environ.get("AE_DATA_PATH")
    return Path(configured).expanduser() if configured else BUNDLED_PATH


_cache: dict[tuple[str, int, int], Dataset] = {}
_cache_lock = threading.Lock()


def load_dataset(path: str | os.PathLike | None = None) -> Dataset:
    """Load and validate the dataset once per process; later calls return the same object.

    The cache key includes the file's size and modification time, so a replaced file is
    re-read instead of served stale.
    """
    resolved = Path(path).expanduser() if path is not None else data_path()
    try:
        stat = resolved.stat()
    except FileNotFoundError:
        raise DataError(f"Data file {resolved} does not exist.") from None
    except OSError as error:
        raise DataError(f"Data file {resolved} cannot be read: {error.strerror or error}.") from None
    key = (str(resolved.resolve()), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _read_and_validate(resolved)
        return _cache[key]


def _read_and_validate(path: Path) -> Dataset:
    if path.is_dir():
        raise DataError(f"Data file {path} is a folder, not a .npz file.")
    _check_declared_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if isinstance(archive, np.ndarray):
                raise DataError(f"Data file {path} is a single .npy array, not an .npz archive holding {', '.join(KEYS)}.")
            missing = [key for key in KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"Data file {path} lacks the key(s) {', '.join(missing)}; "
                    f"it must hold {', '.join(KEYS)} like keras.datasets.mnist."
                )
            arrays = {key: archive[key] for key in KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        raise DataError(
            f"Data file {path} is not a readable .npz archive (truncated or corrupt?): {error}."
        ) from None
    for split in ("train", "test"):
        _check_split(path, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    return Dataset(path=path, **arrays)


def _check_declared_sizes(path: Path) -> None:
    """Read each array's shape from the archive's headers, before anything is decompressed:
    a small compressed file can claim gigabytes (3 million blank images zip to 2.4 MB)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as handle:
            if handle.read(6) == b"\x93NUMPY":
                raise DataError(f"Data file {path} is a single .npy array, not an .npz archive holding {', '.join(KEYS)}.") from None
        raise DataError(f"Data file {path} is not a readable .npz archive (truncated or corrupt, or another format).") from None
    except OSError as error:
        raise DataError(f"Data file {path} cannot be read: {error.strerror or error}.") from None
    total = 0
    with archive:
        for key in KEYS:
            try:
                with archive.open(f"{key}.npy") as member:
                    version = np.lib.format.read_magic(member)
                    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read_header(member, max_header_size=100_000)
            except KeyError:
                continue  # reported with the other missing keys
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
                raise DataError(f"Data file {path}: the header of {key} is unreadable ({error}).") from None
            total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if total > MAX_ARCHIVE_BYTES:
        raise DataError(
            f"Data file {path} declares {total / 1024**3:,.1f} GiB of arrays; the limit is "
            f"{MAX_ARCHIVE_BYTES / 1024**3:.0f} GiB (the full MNIST needs 0.05 GiB)."
        )


def _check_split(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"Data file {path}: x_{split} has shape {images.shape}; expected (N, 28, 28)."
        )
    if images.dtype != np.uint8:
        raise DataError(f"Data file {path}: x_{split} is {images.dtype}; expected uint8 (0..255).")
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"Data file {path}: y_{split} has shape {labels.shape}; expected "
            f"({images.shape[0]},), one label per image in x_{split}."
        )
    if images.shape[0] == 0:
        raise DataError(f"Data file {path}: x_{split} holds no images.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"Data file {path}: y_{split} must hold integer labels 0..9.")
    if images.shape[0] < MIN_IMAGES[split]:
        raise DataError(
            f"Data file {path}: x_{split} holds {images.shape[0]} image(s); at least {MIN_IMAGES[split]} are needed."
        )
