"""ae.analysis.results and ae.display.images: a trained model on the test set, selections, exports, pictures."""
from __future__ import annotations

import csv
import io
import zipfile

import keras
import numpy as np
import pytest

from ae.model.data import load_dataset
from ae.display.images import image_grid, pairs_grid, to_uint8
from ae.analysis.metrics import evaluate_pca, per_image_errors
from ae.model.architectures import TrainingOptions, build_models
from ae.analysis.results import (codes_csv, decode, history_csv, keras_file_bytes, manifold_positions, pca_test_set_results,
                        select_digits)
from ae.analysis.results import test_set_results as model_test_set_results  # not a test: pytest collects test_*


@pytest.fixture(scope="module")
def dataset(small_mnist_path):
    return load_dataset(small_mnist_path)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return build_models("dense", 2)


def test_test_set_results_are_computed_once_per_saved_model(dataset, models):
    first = model_test_set_results("k", 1.0, models, dataset)
    assert first.codes.shape == (500, 2) and first.reconstructions.shape == (500, 28, 28)
    bce, mse = per_image_errors(dataset.test_images, first.reconstructions)
    np.testing.assert_allclose(first.bce, bce)
    np.testing.assert_allclose(first.errors("mse"), mse)
    assert model_test_set_results("k", 1.0, models, dataset) is first
    assert model_test_set_results("k", 2.0, models, dataset) is not first  # saved again: recomputed


def test_pca_results_match_the_pca_baseline(dataset):
    pca = pca_test_set_results(dataset, 8)
    assert pca.codes.shape == (500, 8)
    assert pca.bce.mean() == pytest.approx(evaluate_pca(dataset, 8).bce)
    assert pca_test_set_results(dataset, 8) is pca


def test_select_digits_first_worst_best_and_by_class():
    errors = np.array([0.5, 0.1, 0.9, 0.3, 0.7])
    labels = np.array([1, 2, 1, 2, 1])
    assert select_digits(errors, labels, 3).tolist() == [0, 1, 2]
    assert select_digits(errors, labels, 2, order="worst").tolist() == [2, 4]
    assert select_digits(errors, labels, 2, order="best").tolist() == [1, 3]
    assert select_digits(errors, labels, 10, digit=1, order="worst").tolist() == [2, 4, 0]
    assert select_digits(errors, labels, 5, digit=7).tolist() == []
    with pytest.raises(ValueError, match="Order"):
        select_digits(errors, labels, 2, order="random")


def test_manifold_grid_spans_the_map_row_by_row(models):
    coordinates = np.random.default_rng(0).uniform(-3, 5, size=(2000, 2))
    positions, axes = manifold_positions(coordinates, 4)
    assert positions.shape == (16, 2)
    assert positions[0, 0] < positions[3, 0]  # x grows along a row
    assert positions[0, 1] > positions[12, 1]  # y falls down the rows, as on the map
    assert -3 < axes[0].min() < -2.5 and 4.5 < axes[0].max() < 5
    assert decode(models, positions).shape == (16, 28, 28)


def test_csv_exports():
    rows = list(csv.reader(io.StringIO(codes_csv(np.array([[0.5, -1.0], [2.0, 3.25]]), np.array([7, 1])))))
    assert rows == [["test_index", "label", "code_1", "code_2"], ["0", "7", "0.5", "-1"], ["1", "1", "2", "3.25"]]
    history = list(csv.DictReader(io.StringIO(history_csv([1.0, 1.5], [0.3, 0.2], [0.25, 0.19], [2.0]))))
    assert [r["epoch_end"] for r in history] == ["1", "1.5"]
    assert history[1]["val_loss"] == "0.19" and history[1]["seconds"] == ""


@pytest.mark.parametrize("architecture,options", [
    ("dense", TrainingOptions()),
    ("dense", TrainingOptions(contractive=0.1)),  # a custom layer Keras cannot serialize
    ("deep_dense", TrainingOptions(noise_kind="masking", noise_level=0.3, sparsity=1e-4)),
    ("vae", TrainingOptions(beta=2.0)),
])
def test_keras_file_is_a_loadable_keras_archive(architecture, options, tmp_path):
    """Every kind downloads, and plain Keras loads it: the reconstruction as the pages show it
    (the code's mean for a VAE, no training noise)."""
    models = build_models(architecture, 4, options)
    data = keras_file_bytes(models)
    assert zipfile.is_zipfile(io.BytesIO(data))
    path = tmp_path / "model.keras"
    path.write_bytes(data)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), models.decoder(models.encoder(x)).numpy(), atol=1e-6)


def test_pictures_are_crisp_uint8_grids():
    images = np.zeros((5, 28, 28), dtype=np.float32)
    images[1] = 1.0
    assert to_uint8(images[..., None]).shape == (5, 28, 28)
    grid = image_grid(images, columns=3, scale=2, padding=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * (2 * 30 + 2), 2 * (3 * 30 + 2))
    assert grid.max() == 255  # the white digit survives scaling
    pairs = pairs_grid(images[:2], images[:2] * 0.5, scale=1)
    assert pairs.shape == (2 * 30 + 2, 2 * 30 + 2)
