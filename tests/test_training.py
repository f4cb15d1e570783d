"""ae.jobs.manager, ae.training.trainer and ae.storage.store: real Keras training jobs, in the real training
process, on a real MNIST slice.

Each test makes its own JobManager (one training process each) on its own cache folder; the
`managers` fixture stops what still runs and closes the process when a test ends, so a
failing test never leaves a job training in the background of the next one.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from ae.model.config import TrainingConfig

from ae.analysis.metrics import evaluate_reconstructions, per_image_errors
from ae.model.architectures import build_models, predict
from ae.training.snapshot import PANEL_SIZE, JobSnapshot, JobState
from ae.analysis.replay import REPLAY_FILE
from ae.analysis.your_digit import READER_FILE
from ae.jobs.manager import JobHandle as TrainingJob
from ae.storage.store import RECORD_FILE, WEIGHTS_SUFFIX, ModelStore, StoreError

DEADLINE = 120.0
SMALL = TrainingConfig(code_size=32, epochs=3, batch_size=32, train_size=1000, seed=1)
# Thousands of steps: far longer than any test waits, so it is always stopped early.
LARGE = TrainingConfig(code_size=32, epochs=50, batch_size=8, train_size=2000, seed=2)


def wait_until_done(job: TrainingJob, timeout: float = DEADLINE) -> JobSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        snapshot = job.snapshot()
        if not snapshot.is_active:
            return snapshot
        if time.monotonic() > deadline:
            pytest.fail(f"job {job.key} still {snapshot.state.value} after {timeout:.0f} s")
        time.sleep(0.02)


def wait_for(job: TrainingJob, condition, what: str, timeout: float = DEADLINE) -> JobSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        snapshot = job.snapshot()
        if condition(snapshot):
            return snapshot
        if not snapshot.is_active and snapshot.state is not JobState.QUEUED:
            pytest.fail(f"job {job.key} ended ({snapshot.state.value}, {snapshot.error}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"job {job.key} never reached {what} within {timeout:.0f} s")
        time.sleep(0.01)


def entry_names(root: Path) -> list[str]:
    """Saved entries (and anything a save left behind); the checkpoints folder is not an entry."""
    return sorted(path.name for path in root.iterdir() if path.name != ".checkpoints") if root.exists() else []


def entry_files(entry: Path) -> list[str]:
    """An entry's files, with the weights file's unique id replaced by '*'."""
    return sorted("*" + WEIGHTS_SUFFIX if path.name.endswith(WEIGHTS_SUFFIX) else path.name for path in entry.iterdir())


def untrained_bce(config: TrainingConfig, images: np.ndarray) -> float:
    keras.utils.set_random_seed(config.seed)
    autoencoder = build_models(config.architecture, config.code_size).autoencoder
    bce, _ = per_image_errors(images, predict(autoencoder, images))
    return float(bce.mean())


def test_job_trains_lowers_the_loss_and_reports_progress(dataset, cache_dir, managers):
    baseline = untrained_bce(SMALL, dataset.test_images)
    assert baseline > 0.6  # an untrained sigmoid output sits near 0.5 everywhere

    manager = managers(cache_dir)
    job = manager.request(SMALL)
    seen: list[JobSnapshot] = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        snapshot = job.snapshot()
        seen.append(snapshot)
        if not snapshot.is_active:
            break
        time.sleep(0.01)
    final = seen[-1]
    assert final.state is JobState.FINISHED, final.error

    states = [snapshot.state for snapshot in seen]
    assert JobState.RUNNING in states
    assert states.index(JobState.RUNNING) < states.index(JobState.FINISHED)
    positions = [snapshot.position for snapshot in seen]
    assert positions == sorted(positions)
    progress = [snapshot.progress for snapshot in seen]
    assert all(0.0 <= value <= 1.0 for value in progress)
    assert any(0.0 < value < 1.0 for value in progress)
    assert all(not snapshot.has_model for snapshot in seen if snapshot.state is JobState.RUNNING)

    # Finished: every field says so.
    assert final.error is None
    assert final.epoch == final.history.epochs_total == 3
    assert final.steps_per_epoch == 1000 // 32 + 1
    assert final.progress == 1.0
    assert final.has_model and final.saved_at is not None
    assert final.queue_position is None
    assert final.eta_seconds is None
    assert final.history.samples_per_second is not None and final.history.samples_per_second > 0
    assert len(final.history.train_loss) == len(final.history.val_loss) == len(final.history.epoch_seconds) == 3
    assert final.history.epoch_ends == (1.0, 2.0, 3.0)
    assert final.history.step_losses and final.history.step_losses[-1][0] <= 3.0
    assert final.panel_reconstructions.shape == (PANEL_SIZE, 28, 28)
    assert 0.0 <= final.panel_reconstructions.min() and final.panel_reconstructions.max() <= 1.0
    assert final.panel_epoch == 3.0
    assert final.history.training_seconds > 0

    # Learning happened.
    assert final.history.train_loss[0] > final.history.train_loss[1] > final.history.train_loss[2]
    assert final.history.val_loss[-1] < final.history.val_loss[0]
    assert final.test_metrics.bce < 0.75 * baseline
    assert sum(final.test_metrics.count_per_digit) == 500

    # The saved model is the trained one: its test error is the reported one.
    models = job.models()
    recomputed = evaluate_reconstructions(dataset, predict(models.autoencoder, dataset.test_images))
    assert recomputed.bce == pytest.approx(final.test_metrics.bce, rel=1e-5)
    assert manager.latest() is job
    assert manager.trained_jobs() == [job]
    assert entry_names(manager.store.root) == [SMALL.key]

    # Asking again for a finished config returns it without training again.
    assert manager.request(SMALL) is job
    again = job.snapshot()
    assert again.state is JobState.FINISHED and again.queue_position is None
    assert again.saved_at == final.saved_at


def test_stop_ends_a_running_job_quickly_and_keeps_its_model(cache_dir, managers):
    manager = managers(cache_dir)
    job = manager.request(LARGE)
    wait_for(job, lambda s: s.state is JobState.RUNNING and s.position > 0, "its first progress")
    stop_requested = time.monotonic()
    job.stop()
    assert job.snapshot().state in (JobState.STOPPING, JobState.STOPPED)
    final = wait_until_done(job, timeout=30)
    took = time.monotonic() - stop_requested

    assert final.state is JobState.STOPPED, final.error
    # Normally well under a second (one execution step, validation, saving); slack for a busy machine.
    assert took < 8.0, f"stop took {took:.1f} s"
    assert 0 < final.history.epochs_done < 5  # far from the 50 requested
    assert final.history.epochs_total == 50  # what was asked for stays visible
    assert 0 < final.progress < 0.1
    # The epoch cut short counts as the fraction of its steps done, not as a whole epoch.
    assert final.history.epoch_ends[-1] == final.history.epochs_done
    assert final.history.epochs_done != int(final.history.epochs_done)
    assert final.history.step_losses[-1][0] == pytest.approx(final.history.epochs_done, abs=1e-3)
    assert final.has_model
    assert final.test_metrics is not None
    record = json.loads((manager.store.entry_dir(LARGE.key) / RECORD_FILE).read_text())
    assert record["stopped_early"] is True
    assert record["epochs_done"] == final.history.epochs_done
    assert job.models().autoencoder.output_shape == (None, 28, 28, 1)
    assert manager.running() is None
    # Stopping again does nothing.
    job.stop()
    assert job.snapshot().state is JobState.STOPPED


def test_stopped_job_can_be_extended(cache_dir, managers):
    manager = managers(cache_dir)
    job = manager.request(LARGE)
    wait_for(job, lambda s: s.state is JobState.RUNNING and s.position > 0, "its first progress")
    job.stop()
    stopped = wait_until_done(job, timeout=30)
    assert stopped.state is JobState.STOPPED, stopped.error

    for extra in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="Extra epochs"):
            job.extend(extra)
    job.extend(1)
    # One more epoch takes far longer than this next line: the job is still active.
    assert job.snapshot().state in (JobState.QUEUED, JobState.RUNNING)
    with pytest.raises(ValueError, match="still training"):
        job.extend(1)
    extended = wait_until_done(job)
    assert extended.state is JobState.FINISHED, extended.error
    assert extended.history.epochs_done == pytest.approx(stopped.history.epochs_done + 1)
    assert extended.history.epochs_total == pytest.approx(extended.history.epochs_done)
    assert len(extended.history.train_loss) == len(stopped.history.train_loss) + 1
    assert extended.history.train_loss[: len(stopped.history.train_loss)] == stopped.history.train_loss
    assert extended.history.epoch_ends[-1] == pytest.approx(stopped.history.epochs_done + 1)
    assert extended.saved_at > stopped.saved_at
    assert extended.history.training_seconds > stopped.history.training_seconds
    # Saved over the old entry atomically: one clean folder, no temporary or old copies.
    assert entry_names(manager.store.root) == [LARGE.key]
    assert entry_files(manager.store.entry_dir(LARGE.key)) == sorted([RECORD_FILE, "*" + WEIGHTS_SUFFIX, REPLAY_FILE,
                                                                  READER_FILE])


def test_extend_needs_a_trained_model(cache_dir, managers):
    manager = managers(cache_dir)
    running = manager.request(LARGE)
    wait_for(running, lambda s: s.state is JobState.RUNNING, "running")
    waiting = manager.request(SMALL)
    waiting.stop()  # stopped while queued: it never trained
    snapshot = waiting.snapshot()
    assert snapshot.state is JobState.STOPPED and not snapshot.has_model
    with pytest.raises(ValueError, match="no trained epochs"):
        waiting.extend(1)


def test_same_config_returns_the_same_job(cache_dir, managers):
    manager = managers(cache_dir)
    first = manager.request(LARGE)
    assert manager.request(LARGE) is first
    assert manager.request(TrainingConfig(**LARGE.to_dict())) is first
    assert manager.get(LARGE.key) is first
    other = manager.request(LARGE.with_changes(seed=3))
    assert other is not first
    assert len(manager.jobs()) == 2


def test_second_config_waits_in_the_queue(cache_dir, managers):
    manager = managers(cache_dir)
    first = manager.request(LARGE)
    wait_for(first, lambda s: s.state is JobState.RUNNING, "running")
    second = manager.request(SMALL)
    third = manager.request(SMALL.with_changes(seed=9))

    waiting = second.snapshot()
    assert waiting.state is JobState.QUEUED
    assert waiting.queue_position == 1
    assert third.snapshot().queue_position == 2
    assert first.snapshot().state is JobState.RUNNING
    assert first.snapshot().queue_position is None
    assert manager.running() is first

    # A queued job stopped before it starts leaves the queue and the manager.
    third.stop()
    assert third.snapshot().state is JobState.STOPPED
    assert third.snapshot().queue_position is None
    assert manager.get(third.key) is None

    first.stop()
    assert wait_until_done(first, timeout=30).state is JobState.STOPPED
    finished = wait_until_done(second)
    assert finished.state is JobState.FINISHED, finished.error
    assert finished.queue_position is None
    assert manager.latest() is second


def test_damaged_weights_are_never_the_default_and_can_be_retrained(cache_dir, managers):
    first = managers(cache_dir)
    job = first.request(SMALL)
    assert wait_until_done(job).state is JobState.FINISHED
    other = first.request(SMALL.with_changes(epochs=1))
    assert wait_until_done(other).state is JobState.FINISHED
    first.close()

    # Truncated weights (as after a full disk or a copy cut short).
    weights = first.store.weights_path(SMALL.key)
    weights.write_bytes(weights.read_bytes()[:1000])
    restarted = managers(cache_dir)
    assert [problem.key for problem in restarted.problems] == [SMALL.key]
    assert "truncated" in restarted.problems[0].message
    assert restarted.problems[0].config == SMALL
    assert restarted.trained_jobs() == [restarted.get(other.key)]  # the damaged one is never offered
    assert restarted.latest().key == other.key

    # Asking for its settings again trains it afresh instead of failing again.
    again = restarted.request(SMALL)
    retrained = wait_until_done(again)
    assert retrained.state is JobState.FINISHED, retrained.error
    assert retrained.history.epochs_done == 3
    assert restarted.problems == []
    assert again.models().autoencoder.output_shape == (None, 28, 28, 1)


def test_weights_that_fail_to_load_mark_the_model_damaged_and_delete_removes_it(cache_dir, managers):
    manager = managers(cache_dir)
    job = manager.request(SMALL)
    assert wait_until_done(job).state is JobState.FINISHED
    weights = manager.store.weights_path(SMALL.key)
    weights.write_bytes(bytes(len(weights.read_bytes())))  # same size, but zeros: only loading finds out

    restarted = managers(cache_dir)
    again = restarted.get(SMALL.key)
    with pytest.raises(StoreError, match="cannot be loaded"):
        again.models()
    assert [problem.key for problem in restarted.problems] == [SMALL.key]
    assert restarted.trained_jobs() == []
    restarted.delete(SMALL.key)
    assert restarted.problems == [] and restarted.get(SMALL.key) is None
    assert entry_names(restarted.store.root) == []

    # The training process lives on: the next job trains.
    other = restarted.request(SMALL.with_changes(epochs=1))
    assert wait_until_done(other).state is JobState.FINISHED


def test_unwritable_cache_keeps_the_model_in_memory_and_says_so(tmp_path, managers, dataset):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("a regular file where the cache folder should be")
    manager = managers(blocker / "runs")
    assert "cannot be written" in manager.cache_problem  # said before training starts
    job = manager.request(TrainingConfig(code_size=4, epochs=1, batch_size=64, train_size=200))
    done = wait_until_done(job)
    assert done.state is JobState.FINISHED, done.error
    assert done.history.epochs_done == 1
    assert not done.saved_to_disk and done.has_model
    assert str(blocker) in done.warning and "\n" not in done.warning
    assert "kept in memory" in done.warning
    # Usable for the session: inference works from the in-memory weights.
    reconstructions = predict(job.models().autoencoder, dataset.test_images[:10])
    assert reconstructions.shape == (10, 28, 28, 1)

    # Continue works too, and the epochs reported are the model's.
    job.extend(1)
    extended = wait_until_done(job)
    assert extended.state is JobState.FINISHED and extended.history.epochs_done == 2
    assert not extended.saved_to_disk
    assert job.models() is not None


def test_saved_jobs_survive_a_restart(dataset, cache_dir, managers):
    first = managers(cache_dir)
    job = first.request(SMALL)
    original = wait_until_done(job)
    assert original.state is JobState.FINISHED, original.error
    original_predictions = predict(job.models().autoencoder, dataset.test_images[:50])

    restarted = managers(cache_dir)
    assert restarted.problems == []
    loaded = restarted.get(SMALL.key)
    assert loaded is not None and loaded is not job
    snapshot = loaded.snapshot()
    assert snapshot.state is JobState.FINISHED
    assert snapshot.has_model
    assert snapshot.history.epochs_done == snapshot.history.epochs_total == 3
    assert snapshot.history.epoch_ends == original.history.epoch_ends
    assert snapshot.test_metrics == original.test_metrics
    assert snapshot.history.train_loss == original.history.train_loss
    assert snapshot.history.val_loss == original.history.val_loss
    assert snapshot.saved_at == original.saved_at
    assert restarted.latest() is loaded
    assert restarted.request(SMALL) is loaded
    assert loaded.snapshot().state is JobState.FINISHED  # not queued again

    restored = predict(loaded.models().autoencoder, dataset.test_images[:50])
    np.testing.assert_array_equal(restored, original_predictions)
    # A restored model still continues training.
    loaded.extend(1)
    extended = wait_until_done(loaded)
    assert extended.state is JobState.FINISHED, extended.error
    assert extended.history.epochs_done == 4


def test_damaged_entries_are_skipped_with_a_problem_message(dataset, cache_dir, managers):
    store = ModelStore(cache_dir)
    good, garbage, no_weights, bad_metrics, misfiled, bad_time = (
        TrainingConfig(code_size=size, epochs=1, train_size=100) for size in (2, 3, 4, 5, 6, 7)
    )
    for config in (good, garbage, no_weights, bad_metrics, misfiled, bad_time):
        store.save(config, build_models(config.architecture, config.code_size),
                   {"epochs_done": 1, "saved_at": time.time()})
    (store.entry_dir(garbage.key) / RECORD_FILE).write_text("{not json")
    store.weights_path(no_weights.key).unlink()
    record = json.loads((store.entry_dir(bad_metrics.key) / RECORD_FILE).read_text())
    record["test_metrics"] = {"bce": 0.1}  # valid JSON, damaged content
    (store.entry_dir(bad_metrics.key) / RECORD_FILE).write_text(json.dumps(record))
    (store.entry_dir(misfiled.key) / RECORD_FILE).write_text(
        (store.entry_dir(good.key) / RECORD_FILE).read_text())
    record = json.loads((store.entry_dir(bad_time.key) / RECORD_FILE).read_text())
    record["saved_at"] = "yesterday"
    (store.entry_dir(bad_time.key) / RECORD_FILE).write_text(json.dumps(record))
    (cache_dir / "stray-file.txt").write_text("not an entry")

    manager = managers(cache_dir)
    assert [job.key for job in manager.jobs()] == [good.key]
    problems = [problem.message for problem in manager.problems]
    assert len(problems) == 5, problems
    for config, phrase in (
        (garbage, "record is unreadable"),
        (no_weights, "weights file is missing"),
        (bad_metrics, "record is damaged"),
        (misfiled, f"belongs to {good.key}"),
        (bad_time, "saved_at"),
    ):
        assert any(config.key in problem and phrase in problem for problem in problems), (config.key, problems)
    assert manager.get(good.key).snapshot().has_model

    # A damaged entry's config can be trained again from scratch.
    job = manager.request(no_weights)
    assert job.snapshot().state in (JobState.QUEUED, JobState.RUNNING)
    assert wait_until_done(job).state is JobState.FINISHED


def test_store_writes_atomically(cache_dir):
    store = ModelStore(cache_dir)
    config = TrainingConfig(code_size=3, epochs=1, train_size=100)
    first = build_models("dense", 3)
    store.save(config, first, {"saved_at": 1.0})
    second = build_models("dense", 3)
    store.save(config, second, {"saved_at": 2.0})  # replaces the entry
    assert entry_names(cache_dir) == [config.key]
    assert entry_files(store.entry_dir(config.key)) == sorted([RECORD_FILE, "*" + WEIGHTS_SUFFIX])
    [record] = store.records()
    assert record["saved_at"] == 2.0 and record["config"] == config
    loaded = store.load_models(config)
    for expected, actual in zip(second.autoencoder.get_weights(), loaded.autoencoder.get_weights()):
        np.testing.assert_array_equal(expected, actual)

    # A save that fails half-way (the record cannot be written) leaves the old entry untouched.
    with pytest.raises(TypeError):
        store.save(config, build_models("dense", 3), {"saved_at": 3.0, "bad": object()})
    assert entry_names(cache_dir) == [config.key]
    assert [record["saved_at"] for record in store.records()] == [2.0]

    # Deleting removes the entry.
    store.delete(config.key)
    assert entry_names(cache_dir) == []
    assert store.records() == []


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_loading_weights_into_the_wrong_architecture_fails_cleanly(cache_dir):
    store = ModelStore(cache_dir)
    config = TrainingConfig(code_size=3, epochs=1, train_size=100)
    store.save(config, build_models("dense", 3), {"saved_at": 1.0})
    # Same key folder, but weights of another shape (as after an architecture change).
    other = ModelStore(cache_dir / "other")
    store_config = config.with_changes(code_size=4)
    other.save(store_config, build_models("dense", 4), {"saved_at": 1.0})
    other.weights_path(store_config.key).replace(store.weights_path(config.key))
    with pytest.raises(StoreError, match="cannot be loaded"):
        store.load_models(config)
