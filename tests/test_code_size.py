"""ae.analysis.code_size: code-size sweeps as ordinary jobs, reuse, ordering, partial results, the table."""
from __future__ import annotations

import csv
import io
import time

import pytest

from ae.model.config import TrainingConfig
from ae.model.data import load_dataset
from ae.storage.store import ModelStore
from ae.analysis import code_size
from ae.analysis.code_size import (RatePoint, Sweep, comparison_sentence, other_epochs, rate_distortion, rate_distortion_csv,
                      reconstruction_strip, sweep_configs, architectures_sentence, where_pca_still_wins)
from ae.jobs.manager import JobManager

BASE = TrainingConfig(code_size=2, epochs=1, batch_size=64, train_size=600, seed=3)


@pytest.fixture
def manager(small_mnist_path, cache_dir):
    manager = JobManager(load_dataset(small_mnist_path), ModelStore(cache_dir))
    yield manager
    for job in manager.jobs():
        job.stop()
    _wait(lambda: not any(job.snapshot().is_active for job in manager.jobs()), 60)


def _wait(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_configs_are_distinct_code_sizes_smallest_first():
    configs = sweep_configs(BASE, [16, 2, 4, 16])
    assert [c.code_size for c in configs] == [2, 4, 16]
    assert all(c.with_changes(code_size=2) == BASE for c in configs)
    with pytest.raises(ValueError, match="at least one code size"):
        sweep_configs(BASE, [])


def test_sweep_queues_smallest_first_and_reuses_trained_sizes(manager):
    first = manager.request(BASE.with_changes(code_size=4))
    _wait(lambda: not first.snapshot().is_active)
    started_at = first.snapshot().saved_at
    # Block the worker with a long job so the sweep's order is visible in the queue.
    blocker = manager.request(BASE.with_changes(epochs=40, batch_size=8, seed=99))
    _wait(lambda: blocker.snapshot().state.value == "running")
    sweep = Sweep.start(manager, BASE, [8, 4, 2, 16])
    rows = sweep.rows()
    assert [row.code_size for row in rows] == [2, 4, 8, 16]
    by_size = {row.code_size: row for row in rows}
    assert by_size[4].state == "finished" and by_size[4].queue_position is None
    assert [by_size[s].queue_position for s in (2, 8, 16)] == [1, 2, 3]
    assert manager.get(BASE.with_changes(code_size=4).key) is first
    blocker.stop()
    _wait(lambda: not sweep.active)
    assert first.snapshot().saved_at == started_at, "a trained size must not be retrained"
    assert [p.code_size for p in rate_distortion(manager, BASE)] == [2, 4, 8, 16]


def test_stopping_a_sweep_keeps_finished_sizes_and_cancels_the_rest(manager):
    slow = BASE.with_changes(epochs=30, batch_size=8)
    sweep = Sweep.start(manager, slow, [2, 4, 8])
    jobs = sweep.jobs()
    _wait(lambda: jobs[0].snapshot().epoch >= 1)
    sweep.stop()
    _wait(lambda: not sweep.active)
    rows = sweep.rows()
    assert rows[0].state == "stopped" and rows[0].has_model
    assert [row.state for row in rows[1:]] == ["not started", "not started"]
    points = rate_distortion(manager, slow)
    assert [p.code_size for p in points] == [2]
    assert points[0].stopped_early and points[0].epochs_done < 30


def test_results_survive_a_restart_and_export_as_csv(manager, small_mnist_path, cache_dir):
    sweep = Sweep.start(manager, BASE, [2, 8])
    _wait(lambda: not sweep.active)
    before = rate_distortion(manager, BASE)
    restarted = JobManager(load_dataset(small_mnist_path), ModelStore(cache_dir))
    after = rate_distortion(restarted, BASE)
    assert after == before and len(after) == 2
    # A model with other settings is not part of this sweep's table.
    assert rate_distortion(restarted, BASE.with_changes(epochs=2)) == []
    rows = list(csv.DictReader(io.StringIO(rate_distortion_csv(after))))
    assert [int(r["code_size"]) for r in rows] == [2, 8]
    assert float(rows[0]["pca_bce"]) == pytest.approx(after[0].pca_bce, rel=1e-5)
    strip = reconstruction_strip(restarted, after, [0, 1, 2])
    assert [(size, ae.shape, pca.shape) for size, ae, pca in strip] == [(2, (3, 28, 28), (3, 28, 28)), (8, (3, 28, 28), (3, 28, 28))]
    # More components, less PCA error: the baseline is computed, not copied.
    assert after[1].pca_bce < after[0].pca_bce


def _point(size, ae, pca):
    return RatePoint(size, f"k{size}", 1, False, ae, ae / 10, pca, pca / 10)


def test_comparison_sentence_says_who_wins_where_from_the_numbers():
    mixed = [_point(2, 0.20, 0.25), _point(8, 0.12, 0.18), _point(64, 0.09, 0.07)]
    sentence = comparison_sentence(mixed, "bce")
    assert "beats PCA (BCE) at code size 2 and 8" in sentence
    assert "PCA wins at 64" in sentence
    assert "biggest lead is at code size 8" in sentence and "0.1200 against 0.1800" in sentence
    assert "every code size tried: 2 and 8" in comparison_sentence(mixed[:2], "bce")
    assert "PCA reconstructs better" in comparison_sentence(mixed[2:], "mse")
    assert comparison_sentence([], "bce").startswith("No trained models")


def test_several_architectures_sweep_side_by_side_and_the_best_is_named():
    configs = sweep_configs(BASE, [4, 2], ["dense", "conv", "dense"])
    assert [(c.code_size, c.architecture) for c in configs] == [(2, "dense"), (2, "conv"), (4, "dense"), (4, "conv")]
    assert all(c.with_changes(code_size=BASE.code_size, architecture=BASE.architecture) == BASE for c in configs)

    def point(size, error):
        return RatePoint(size, f"x-c{size}", 3, False, error, error, 0.3, 0.3)

    curves = {"dense": [point(2, 0.25), point(8, 0.17), point(32, 0.10)], "conv": [point(2, 0.22), point(8, 0.18)]}
    assert architectures_sentence(curves, "bce") == (
        "Lowest test BCE among the architectures: Convolutional at code size 2; Dense (article) at code size 8.")
    assert architectures_sentence({"dense": curves["dense"]}, "bce") == ""


def _at(size, epochs, ae, pca):
    return RatePoint(size, f"k{size}-e{epochs}", epochs, False, ae, ae / 10, pca, pca / 10)


def test_where_pca_still_wins_says_when_the_autoencoder_overtakes_it(monkeypatch):
    monkeypatch.setitem(code_size.EPOCHS_TO_BEAT_PCA, "bce", {("dense", 8): 4, ("dense", 32): 5, ("dense", 2): None})
    full = TrainingConfig(code_size=2, epochs=3)  # the measured settings: full training set, defaults
    points = [_at(2, 3, 0.25, 0.23), _at(8, 3, 0.186, 0.180), _at(32, 3, 0.135, 0.118), _at(49, 3, 0.10, 0.11)]
    assert where_pca_still_wins(points, full, "bce") == [
        "At 3 epochs PCA still wins at code size 2; measured on the full training set, the dense model did not "
        f"overtake it within {code_size.MEASURED_WITHIN['dense']} epochs.",
        "At 3 epochs PCA still wins at code size 8; measured on the full training set, the dense model overtakes it "
        "after 4 epochs.",
        "At 3 epochs PCA still wins at code size 32; measured on the full training set, the dense model overtakes it "
        "after 5 epochs.",
    ]
    # This server's own models with more epochs come first: they are the user's evidence.
    others = [_at(32, 10, 0.097, 0.118), _at(32, 6, 0.108, 0.118), _at(8, 2, 0.20, 0.18)]
    sentences = where_pca_still_wins(points[2:3], full, "bce", others)
    assert sentences == ["At 3 epochs PCA still wins at code size 32; this server's dense model trained 6 epochs "
                         "beats it there (0.1080 against 0.1180)."]
    # Settings other than the measured ones get no measured figure; nor does a metric not measured.
    assert where_pca_still_wins(points, full.with_changes(train_size=600), "bce") == []
    monkeypatch.setitem(code_size.EPOCHS_TO_BEAT_PCA, "mse", {})
    assert where_pca_still_wins(points, full, "mse") == []
    # A model already past the measured epochs that still loses (another seed, say) gets no promise.
    assert where_pca_still_wins([_at(32, 7, 0.13, 0.118)], full, "bce") == []
    assert where_pca_still_wins([_at(32, 2.4, 0.13, 0.118)], full, "bce")[0].startswith("At 2.4 epochs PCA")


def test_the_default_epochs_let_the_measured_models_beat_pca():
    for (architecture, size), epochs in code_size.EPOCHS_TO_BEAT_PCA["bce"].items():
        if size in (8, 32):
            assert epochs is not None and epochs <= code_size.DEFAULT_SWEEP_EPOCHS, (architecture, size)


def test_other_epochs_finds_this_servers_models_with_other_epoch_counts(manager):
    jobs = [manager.request(BASE), manager.request(BASE.with_changes(epochs=2)),
            manager.request(BASE.with_changes(epochs=2, code_size=4)), manager.request(BASE.with_changes(epochs=2, seed=9))]
    _wait(lambda: not any(job.snapshot().is_active for job in jobs))
    found = other_epochs(manager, BASE)
    assert [(p.code_size, p.epochs_done) for p in found] == [(2, 2), (4, 2)]  # not the other seed, nor BASE itself
    assert other_epochs(manager, BASE.with_changes(epochs=2))[0].epochs_done == 1
