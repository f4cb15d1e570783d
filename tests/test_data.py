"""ae.model.data: the MNIST loader, its once-per-process cache, AE_DATA_PATH, and every bad-file error."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ae.model.data import BUNDLED_PATH, DataError, Dataset, data_path, load_dataset, to_model_input


def _good_arrays(train: int = 20, test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(test) % 10).astype(np.uint8),
    }


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def bundled(monkeypatch) -> Dataset:
    monkeypatch.delenv("AE_DATA_PATH", raising=False)
    return load_dataset()


def test_bundled_file_has_keras_keys_shapes_and_dtypes(bundled):
    assert bundled.path == BUNDLED_PATH
    assert bundled.x_train.shape == (60_000, 28, 28)
    assert bundled.y_train.shape == (60_000,)
    assert bundled.x_test.shape == (10_000, 28, 28)
    assert bundled.y_test.shape == (10_000,)
    for images in (bundled.x_train, bundled.x_test):
        assert images.dtype == np.uint8
    for labels in (bundled.y_train, bundled.y_test):
        assert labels.dtype == np.uint8
        assert set(np.unique(labels)) == set(range(10))
    # The known first MNIST training labels (5, 0, 4, 1, 9).
    assert bundled.y_train[:5].tolist() == [5, 0, 4, 1, 9]


def test_float_views_are_scaled_model_inputs(bundled):
    for raw, images in ((bundled.x_train, bundled.train_images), (bundled.x_test, bundled.test_images)):
        assert images.dtype == np.float32
        assert images.shape == (len(raw), 28, 28, 1)
        assert images.min() == 0.0
        assert images.max() == 1.0
        np.testing.assert_allclose(images[:3, :, :, 0], raw[:3] / 255.0, rtol=1e-6)
    # Computed once: the same array each time.
    assert bundled.train_images is bundled.train_images


def test_to_model_input_scales_uint8():
    images = np.array([[[0, 51], [255, 102]]], dtype=np.uint8)
    result = to_model_input(images)
    assert result.shape == (1, 2, 2, 1)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result[0, :, :, 0], [[0.0, 0.2], [1.0, 0.4]], rtol=1e-6)


def test_same_object_returned_twice(bundled, small_mnist_path):
    assert load_dataset() is bundled
    assert load_dataset(BUNDLED_PATH) is bundled
    small = load_dataset(small_mnist_path)
    assert load_dataset(str(small_mnist_path)) is small
    assert small is not bundled


def test_replaced_file_is_read_again(tmp_path):
    path = _save(tmp_path / "data.npz", **_good_arrays(train=20))
    first = load_dataset(path)
    assert len(first.x_train) == 20
    _save(path, **_good_arrays(train=30))
    second = load_dataset(path)
    assert second is not first
    assert len(second.x_train) == 30


def test_data_path_env_var_is_honoured(monkeypatch, small_mnist_path):
    monkeypatch.setenv("AE_DATA_PATH", str(small_mnist_path))
    assert data_path() == small_mnist_path
    dataset = load_dataset()
    assert dataset.path == small_mnist_path
    assert dataset.name == small_mnist_path.name
    assert dataset.x_train.shape == (2_000, 28, 28)
    assert dataset.x_test.shape == (500, 28, 28)
    monkeypatch.delenv("AE_DATA_PATH")
    assert data_path() == BUNDLED_PATH


def test_data_path_env_var_to_a_missing_file_raises(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.npz"
    monkeypatch.setenv("AE_DATA_PATH", str(missing))
    with pytest.raises(DataError, match="does not exist") as caught:
        load_dataset()
    assert str(missing) in str(caught.value)


def _missing(tmp_path, small):
    return tmp_path / "absent.npz"


def _folder(tmp_path, small):
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    return folder


def _truncated(tmp_path, small):
    content = small.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(content[: len(content) // 2])
    return path


def _random_bytes(tmp_path, small):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, size=5_000, dtype=np.uint8).tobytes())
    return path


def _missing_key(tmp_path, small):
    arrays = _good_arrays()
    del arrays["y_test"]
    return _save(tmp_path / "missing-key.npz", **arrays)


def _wrong_shape(tmp_path, small):
    arrays = _good_arrays()
    arrays["x_train"] = np.zeros((20, 32, 32), dtype=np.uint8)
    return _save(tmp_path / "shape.npz", **arrays)


def _flat_images(tmp_path, small):
    arrays = _good_arrays()
    arrays["x_test"] = np.zeros((10, 784), dtype=np.uint8)
    return _save(tmp_path / "flat.npz", **arrays)


def _float_images(tmp_path, small):
    arrays = _good_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.float32) / 255
    return _save(tmp_path / "float.npz", **arrays)


def _label_count(tmp_path, small):
    arrays = _good_arrays()
    arrays["y_train"] = arrays["y_train"][:-1]
    return _save(tmp_path / "count.npz", **arrays)


def _label_range(tmp_path, small):
    arrays = _good_arrays()
    arrays["y_test"] = arrays["y_test"].astype(np.int64)
    arrays["y_test"][3] = 10
    return _save(tmp_path / "range.npz", **arrays)


def _negative_label(tmp_path, small):
    arrays = _good_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.int16)
    arrays["y_train"][0] = -1
    return _save(tmp_path / "negative.npz", **arrays)


def _float_labels(tmp_path, small):
    arrays = _good_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.float32)
    return _save(tmp_path / "float-labels.npz", **arrays)


def _no_images(tmp_path, small):
    arrays = _good_arrays()
    arrays["x_test"] = np.zeros((0, 28, 28), dtype=np.uint8)
    arrays["y_test"] = np.zeros((0,), dtype=np.uint8)
    return _save(tmp_path / "empty.npz", **arrays)


BAD_FILES = {
    "missing file": (_missing, ["does not exist"]),
    "folder": (_folder, ["is a folder"]),
    "truncated": (_truncated, ["not a readable .npz", "truncated or corrupt"]),
    "random bytes": (_random_bytes, ["not a readable .npz"]),
    "missing key": (_missing_key, ["lacks the key(s) y_test"]),
    "32x32 images": (_wrong_shape, ["x_train", "(20, 32, 32)", "expected (N, 28, 28)"]),
    "flat images": (_flat_images, ["x_test", "(10, 784)", "expected (N, 28, 28)"]),
    "float images": (_float_images, ["x_train is float32", "expected uint8"]),
    "label count": (_label_count, ["y_train has shape (19,)", "expected (20,)", "one label per image"]),
    "label above 9": (_label_range, ["y_test", "labels 0..9"]),
    "negative label": (_negative_label, ["y_train", "labels 0..9"]),
    "float labels": (_float_labels, ["y_train", "integer labels"]),
    "no images": (_no_images, ["x_test holds no images"]),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_raises_data_error_naming_file_and_problem(kind, tmp_path, small_mnist_path):
    make, phrases = BAD_FILES[kind]
    path = make(tmp_path, small_mnist_path)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    assert isinstance(caught.value, ValueError)


def test_bad_file_is_not_cached(tmp_path):
    path = tmp_path / "later.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DataError):
        load_dataset(path)
    os.remove(path)
    _save(path, **_good_arrays(train=12))
    assert len(load_dataset(path).x_train) == 12
