"""ae.analysis.metrics: per-image errors by hand, per-digit summaries, and the PCA baseline."""
from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from ae.model.data import load_dataset
from ae.analysis import metrics
from ae.analysis.metrics import (
    EPSILON,
    ErrorSummary,
    evaluate_pca,
    evaluate_reconstructions,
    fit_pca,
    per_image_errors,
    summarize,
)


@pytest.fixture(scope="module")
def small(small_mnist_path):
    return load_dataset(small_mnist_path)


def test_per_image_errors_on_a_two_pixel_example():
    originals = np.array([[0.0, 1.0], [0.5, 0.0]])
    reconstructions = np.array([[0.25, 0.5], [0.5, 0.1]])
    bce, mse = per_image_errors(originals, reconstructions)
    # Image 1: pixel 0 has target 0, prediction 0.25 -> -ln(0.75) = 0.2876821;
    #          pixel 1 has target 1, prediction 0.5  -> -ln(0.5)  = 0.6931472; mean 0.4904146.
    # Image 2: -(0.5 ln 0.5 + 0.5 ln 0.5) = 0.6931472 and -ln(0.9) = 0.1053605; mean 0.3992538.
    np.testing.assert_allclose(bce, [0.4904146, 0.3992538], rtol=1e-6)
    # MSE: (0.25^2 + 0.5^2) / 2 = 0.15625 and (0 + 0.1^2) / 2 = 0.005.
    np.testing.assert_allclose(mse, [0.15625, 0.005], rtol=1e-9)
    assert bce.shape == mse.shape == (2,)


def test_per_image_errors_accepts_image_shapes_and_clips():
    originals = np.zeros((1, 2, 2, 1))
    originals[0, 0, 0, 0] = 1.0
    # A prediction of exactly 0 where the target is 1 would be infinite without clipping.
    reconstructions = np.zeros((1, 2, 2))
    bce, mse = per_image_errors(originals, reconstructions)
    expected_bce = (-math.log(EPSILON) + 3 * -math.log(1 - EPSILON)) / 4
    assert np.isfinite(bce).all()
    assert bce[0] == pytest.approx(expected_bce, rel=1e-9)
    assert bce[0] == pytest.approx(4.0295, abs=1e-4)
    assert mse[0] == pytest.approx(0.25, abs=1e-6)


def test_perfect_binary_reconstruction_has_near_zero_error():
    images = (np.random.default_rng(0).random((3, 28, 28, 1)) > 0.5).astype(np.float32)
    bce, mse = per_image_errors(images, images[..., 0])
    assert (bce < 1e-6).all()
    assert (mse < 1e-12).all()


def test_summarize_per_digit_means_and_nan_for_absent_digits():
    bce = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    mse = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    labels = np.array([0, 0, 1, 3, 9])
    summary = summarize(bce, mse, labels)
    assert summary.bce == pytest.approx(4.0)
    assert summary.mse == pytest.approx(0.5)
    assert summary.count_per_digit == (2, 1, 0, 1, 0, 0, 0, 0, 0, 1)
    assert summary.bce_per_digit[0] == pytest.approx(1.5)
    assert summary.bce_per_digit[1] == pytest.approx(3.0)
    assert summary.bce_per_digit[3] == pytest.approx(4.0)
    assert summary.bce_per_digit[9] == pytest.approx(10.0)
    assert summary.mse_per_digit[0] == pytest.approx(0.2)
    for digit in (2, 4, 5, 6, 7, 8):
        assert math.isnan(summary.bce_per_digit[digit])
        assert math.isnan(summary.mse_per_digit[digit])
    assert len(summary.bce_per_digit) == len(summary.mse_per_digit) == 10


def test_error_summary_round_trips_through_json():
    summary = summarize(np.array([0.5, 0.25]), np.array([0.1, 0.2]), np.array([7, 7]))
    restored = ErrorSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert restored.count_per_digit == summary.count_per_digit
    assert restored.bce == summary.bce and restored.mse == summary.mse
    assert restored.bce_per_digit[7] == summary.bce_per_digit[7]
    assert math.isnan(restored.bce_per_digit[0])


def test_pca_with_all_components_reconstructs_exactly(small):
    baseline = fit_pca(small, 784)
    assert baseline.n_components == 784
    reconstructions = baseline.reconstruct(small.test_images)
    assert reconstructions.shape == (500, 28, 28)
    _, mse = per_image_errors(small.test_images, reconstructions)
    assert mse.mean() < 1e-8


def test_pca_error_decreases_with_more_components(small):
    summaries = {n: evaluate_pca(small, n) for n in (2, 8, 32)}
    assert summaries[2].mse > summaries[8].mse > summaries[32].mse
    assert summaries[2].bce > summaries[8].bce > summaries[32].bce
    # Two components are a poor model of digits; 32 a decent one.
    assert summaries[2].mse > 2 * summaries[32].mse


def test_pca_codes_and_decoding(small):
    baseline = fit_pca(small, 8)
    codes = baseline.encode(small.test_images[:10])
    assert codes.shape == (10, 8)
    decoded = baseline.decode(codes)
    assert decoded.shape == (10, 28, 28)
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0
    # Fitted once per dataset and size.
    assert fit_pca(small, 8) is baseline
    assert fit_pca(small, 9) is not baseline


def test_evaluate_pca_returns_summary_over_the_whole_test_set(small):
    summary = evaluate_pca(small, 16)
    assert isinstance(summary, ErrorSummary)
    assert sum(summary.count_per_digit) == len(small.y_test) == 500
    assert summary.count_per_digit == tuple(int((small.y_test == d).sum()) for d in range(10))
    assert 0 < summary.mse < 0.1
    assert 0 < summary.bce < 0.7
    assert all(math.isfinite(value) for value in summary.bce_per_digit)
    # The overall mean is the count-weighted mean of the per-digit means.
    weighted = sum(c * m for c, m in zip(summary.count_per_digit, summary.mse_per_digit)) / 500
    assert weighted == pytest.approx(summary.mse, rel=1e-9)


def test_evaluate_reconstructions_uses_test_order(small):
    shuffled = small.test_images[::-1]
    right = evaluate_reconstructions(small, small.test_images[..., 0])
    wrong = evaluate_reconstructions(small, shuffled)
    assert right.mse < 1e-10
    assert wrong.mse > 0.05


# ---- bounded, and no global lock while fitting ----------------------------------------------
def test_pca_fits_are_kept_in_a_bounded_cache(small):
    first = fit_pca(small, 1, max_train=300)
    assert fit_pca(small, 1, max_train=300) is first
    for number in range(metrics.PCA_KEPT):  # fill the cache with other fits (each real fit takes a second)
        metrics._pca_cache.put(("filler", number), first)
    assert len(metrics._pca_cache) == metrics.PCA_KEPT and ("filler", 0) in metrics._pca_cache
    second = fit_pca(small, 2, max_train=300)  # one more: the least recently used goes
    assert len(metrics._pca_cache) == metrics.PCA_KEPT and ("filler", 0) not in metrics._pca_cache
    assert fit_pca(small, 2, max_train=300) is second
    assert fit_pca(small, 1, max_train=300) is not first  # forgotten earlier, so fitted again
    for number in range(metrics.PCA_ERRORS_KEPT + 1):
        metrics._pca_errors.put(("filler", number), None)  # the test errors' cache is bounded the same way
    assert len(metrics._pca_errors) == metrics.PCA_ERRORS_KEPT


def test_a_fit_in_progress_stops_neither_other_sizes_nor_waits_twice_for_its_own(small):
    release, fitted = threading.Event(), []
    key = (id(small), 99, 301)  # a slow fit of its own, held until released
    slow = threading.Thread(target=lambda: metrics._pca_cache.get_or_build(key, lambda: release.wait(60) and "held"), daemon=True)
    slow.start()
    other = threading.Thread(target=lambda: fitted.append(fit_pca(small, 3, max_train=301)), daemon=True)
    other.start()
    other.join(60)  # a liveness guard: with one lock held while fitting, this fit would wait for the held one
    assert fitted and fitted[0].n_components == 3
    same = [threading.Thread(target=lambda: fitted.append(metrics._pca_cache.get_or_build(key, lambda: "again")), daemon=True)
            for _ in range(2)]
    for thread in same:
        thread.start()
    release.set()
    for thread in (slow, *same):
        thread.join(60)
    assert fitted[1:] == ["held", "held"]  # the same key waited for the one build, not built again
