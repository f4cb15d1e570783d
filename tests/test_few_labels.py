"""ae.analysis.few_labels: the few-labels logistic-regression probe on real MNIST slices."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from ae.model.data import load_dataset
from ae.analysis.metrics import fit_pca
from ae.analysis.few_labels import balanced_subset, probe_csv, probe_features, run_probe


@pytest.fixture(scope="module")
def data(small_mnist_path):
    dataset = load_dataset(small_mnist_path)
    flat = lambda images: images.reshape(len(images), -1)  # noqa: E731
    return dataset, flat(dataset.train_images), flat(dataset.test_images)


def test_balanced_subset_has_every_class_equally():
    labels = np.repeat(np.arange(10), 50)
    chosen = balanced_subset(labels, 30, np.random.default_rng(0))
    assert len(chosen) == len(np.unique(chosen)) == 30
    assert np.bincount(labels[chosen], minlength=10).tolist() == [3] * 10
    odd = balanced_subset(labels, 13, np.random.default_rng(0))
    assert len(odd) == 13 and np.bincount(labels[odd], minlength=10).min() == 1


def test_probe_shapes_counts_and_single_fit_for_all(data):
    dataset, train, test = data
    result = probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (10, 100, None), draws=3, seed=0)
    assert result.label_counts == (10, 100, len(dataset.y_train))
    assert [len(draws) for draws in result.accuracies] == [3, 3, 1]
    assert result.dimensions == 784
    assert result.mean().shape == result.spread().shape == (3,)
    assert result.spread()[-1] == 0


def test_raw_pixels_beat_chance_by_a_wide_margin(data):
    dataset, train, test = data
    result = probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (300,), draws=2, seed=1)
    assert result.mean()[0] > 0.7  # chance is 0.1


def test_more_labels_help(data):
    dataset, train, test = data
    result = probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (10, 1000), draws=3, seed=2)
    assert result.mean()[1] > result.mean()[0] + 0.15


def test_seeded_draws_are_reproducible(data):
    dataset, train, test = data
    run = lambda seed: probe_features(train, dataset.y_train, test, dataset.y_test, "pixels", (10, 30), 3, seed)  # noqa: E731
    assert run(5).accuracies == run(5).accuracies
    assert run(5).accuracies != run(6).accuracies


def test_run_probe_compares_three_feature_kinds_and_shares_baselines(data):
    dataset, _, _ = data
    pca = fit_pca(dataset, 8)  # stands in for a model's 8-unit codes: real features, different scale
    train_codes, test_codes = pca.encode(dataset.train_images) * 40, pca.encode(dataset.test_images) * 40
    counts = (10, 100)
    first = run_probe(dataset, train_codes, test_codes, counts, draws=2, seed=0)
    assert set(first) == {"autoencoder", "pca", "pixels"}
    assert [first[k].dimensions for k in ("autoencoder", "pca", "pixels")] == [8, 8, 784]
    # Standardized codes: scaling the codes by 40 changes nothing, so they equal the PCA probe.
    np.testing.assert_allclose(first["autoencoder"].accuracies, first["pca"].accuracies, atol=0.02)
    second = run_probe(dataset, train_codes, test_codes, counts, draws=2, seed=0)
    assert second["pixels"] is first["pixels"] and second["pca"] is first["pca"]
    rows = list(csv.DictReader(io.StringIO(probe_csv(first))))
    assert len(rows) == 6 and {r["features"] for r in rows} == {"autoencoder", "pca", "pixels"}
    assert all(0 <= float(r["mean_accuracy"]) <= 1 for r in rows)
