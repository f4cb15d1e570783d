"""ae.analysis.projection: 2-D maps of codes, subsampling, inversion back to codes, and serialized runs."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from ae.analysis import projection
from ae.analysis.projection import DEFAULT_MAX_POINTS, available_methods, project, subsample


def _codes(count: int = 300, size: int = 8, seed: int = 0) -> np.ndarray:
    """Three well separated clusters, so every method has structure to find."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(3, size))
    return (centres[np.arange(count) % 3] + rng.normal(size=(count, size))).astype(np.float32)


def test_pca_shape_and_settings():
    codes = _codes()
    result = project(codes, "pca")
    assert result.coordinates.shape == (300, 2)
    assert result.coordinates.dtype == np.float32
    np.testing.assert_array_equal(result.indices, np.arange(300))
    assert result.method == "pca"
    assert result.settings["points"] == 300 and result.settings["of"] == 300
    assert 0.5 < result.settings["explained_variance"] <= 1.0
    assert result.invertible and result.pca is not None
    assert result.seconds >= 0


def test_codes_method_is_the_codes_themselves():
    codes = _codes(size=2)
    result = project(codes, "codes")
    assert result.coordinates.shape == (300, 2)
    np.testing.assert_array_equal(result.coordinates, codes)
    assert result.invertible


@pytest.mark.parametrize("size", [1, 3, 49])
def test_codes_method_rejects_code_size_other_than_two(size):
    with pytest.raises(ValueError, match="only when the code size is 2"):
        project(_codes(size=size), "codes")


def test_available_methods_offer_codes_only_for_two_units():
    assert available_methods(2) == ("codes", "pca", "umap", "tsne")
    assert available_methods(49) == ("pca", "umap", "tsne")


def test_one_unit_code_is_drawn_on_the_x_axis():
    codes = _codes(size=1)
    result = project(codes, "pca")
    np.testing.assert_allclose(result.coordinates[:, 0], codes[:, 0])
    assert (result.coordinates[:, 1] == 0).all()
    assert result.pca is None


def test_tsne_shape():
    result = project(_codes(), "tsne", seed=1)
    assert result.coordinates.shape == (300, 2)
    assert np.isfinite(result.coordinates).all()
    assert result.settings["perplexity"] == 30.0
    assert not result.invertible
    with pytest.raises(ValueError, match="t-SNE maps cannot be decoded"):
        result.to_code([[0.0, 0.0]])


def test_subsampling_returns_sorted_unique_indices():
    codes = _codes(count=1000)
    result = project(codes, "pca", max_points=120, seed=7)
    indices = result.indices
    assert indices.shape == (120,)
    assert (np.diff(indices) > 0).all()  # sorted and unique
    assert indices.min() >= 0 and indices.max() < 1000
    assert result.coordinates.shape == (120, 2)
    assert result.settings["points"] == 120 and result.settings["of"] == 1000
    # The coordinates are those of the chosen rows.
    np.testing.assert_allclose(
        np.abs(result.coordinates), np.abs(project(codes[indices], "pca").coordinates), rtol=1e-4, atol=1e-4
    )

    again = project(codes, "pca", max_points=120, seed=7)
    np.testing.assert_array_equal(again.indices, indices)
    other = project(codes, "pca", max_points=120, seed=8)
    assert not np.array_equal(other.indices, indices)


def test_subsample_limits():
    np.testing.assert_array_equal(subsample(10, None), np.arange(10))
    np.testing.assert_array_equal(subsample(10, 10), np.arange(10))
    np.testing.assert_array_equal(subsample(10, 50), np.arange(10))
    chosen = subsample(DEFAULT_MAX_POINTS + 500, DEFAULT_MAX_POINTS, seed=3)
    assert len(np.unique(chosen)) == DEFAULT_MAX_POINTS
    np.testing.assert_array_equal(chosen, subsample(DEFAULT_MAX_POINTS + 500, DEFAULT_MAX_POINTS, seed=3))


def test_pca_to_code_inverts_to_the_two_component_reconstruction():
    codes = _codes(size=6).astype(np.float64)
    result = project(codes, "pca")
    # By hand: centre, take the top two right singular vectors, project and map back.
    mean = codes.mean(axis=0)
    _, _, vt = np.linalg.svd(codes - mean, full_matrices=False)
    top = vt[:2]
    expected = mean + (codes - mean) @ top.T @ top
    recovered = result.to_code(result.coordinates)
    assert recovered.shape == (300, 6)
    assert recovered.dtype == np.float32
    np.testing.assert_allclose(recovered, expected, rtol=1e-3, atol=1e-3)
    # The recovered codes lie on the map exactly where they came from.
    np.testing.assert_allclose(result.pca.transform(recovered), result.coordinates, rtol=1e-3, atol=1e-3)
    # A single point works too.
    assert result.to_code(result.coordinates[0]).shape == (1, 6)


def test_codes_to_code_is_identity():
    result = project(_codes(size=2), "codes")
    points = np.array([[0.5, -1.25], [3.0, 4.0]])
    np.testing.assert_array_equal(result.to_code(points), points.astype(np.float32))
    np.testing.assert_array_equal(result.to_code([1.0, 2.0]), [[1.0, 2.0]])


@pytest.mark.parametrize("method", ["PCA", "mds", ""])
def test_unknown_method_raises(method):
    with pytest.raises(ValueError, match="Unknown projection") as caught:
        project(_codes(), method)
    assert "codes, pca, umap, tsne" in str(caught.value)


@pytest.mark.parametrize("codes", [np.zeros((0, 2)), np.zeros(5), np.zeros((2, 3, 4))])
def test_bad_codes_shape_raises(codes):
    with pytest.raises(ValueError, match="non-empty 2-D array"):
        project(codes, "pca")


def test_two_umap_runs_from_two_threads_are_serialized_and_both_complete():
    """The only UMAP test (its first import compiles numba code for many seconds)."""
    inputs = [_codes(seed=1), _codes(seed=2)]
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            results[number] = project(inputs[number], "umap", seed=number, n_neighbors=10)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(number,), daemon=True) for number in (0, 1)]
    # While a projection holds the lock no other may start: hold it and check neither finishes.
    with projection._projection_lock:
        for thread in threads:
            thread.start()
        threads[0].join(timeout=0.5)
        assert all(thread.is_alive() for thread in threads)
        assert not results
    for thread in threads:
        thread.join(timeout=150)
        assert not thread.is_alive(), "a UMAP run did not finish"
    assert not errors, errors
    for number in (0, 1):
        result = results[number]
        assert result.coordinates.shape == (300, 2)
        assert np.isfinite(result.coordinates).all()
        assert result.settings["n_neighbors"] == 10 and result.settings["seeded"] is False
        assert not result.invertible
        assert result.settings["epochs"] == projection.UMAP_EPOCHS


def test_one_unit_codes_are_drawn_on_the_x_axis_and_decode_back():
    codes = np.linspace(0.0, 3.0, 40, dtype=np.float32)[:, None]
    result = projection.project(codes, "pca")
    assert result.coordinates.shape == (40, 2)
    np.testing.assert_allclose(result.coordinates[:, 0], codes[:, 0])
    assert np.all(result.coordinates[:, 1] == 0)
    assert result.invertible
    np.testing.assert_allclose(result.to_code([[1.5, 0.7]]), [[1.5]])


def test_tsne_and_umap_work_on_one_unit_codes():
    codes = np.random.default_rng(3).random((200, 1), dtype=np.float32)
    for method in ("tsne", "umap"):
        assert project(codes, method).coordinates.shape == (200, 2)


def test_constant_codes_still_map():
    result = project(np.ones((50, 3), dtype=np.float32), "pca")
    assert result.coordinates.shape == (50, 2)
    assert result.settings["explained_variance"] == 0.0


@pytest.mark.parametrize("method", ["pca", "codes"])
def test_an_instant_map_does_not_wait_behind_a_slow_one(method):
    """The web process draws instant maps; a UMAP or t-SNE holding the slow maps' lock must not stop them."""
    codes = _codes(size=2)
    done: list = []
    with projection._projection_lock:  # as a running UMAP holds it
        thread = threading.Thread(target=lambda: done.append(project(codes, method)), daemon=True)
        thread.start()
        thread.join(timeout=60)  # a liveness guard, not a timing: with the lock held for all maps it never ends
        assert done and done[0].coordinates.shape == (300, 2)
