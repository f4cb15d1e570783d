"""A lecture's room through the real training service: pinned models, the lecturer's Stop and
queue controls, the fair queue and the per-student cap. Real training process, small MNIST;
one slot (conftest), kept busy by a long run so that requests stay queued while we look."""
from __future__ import annotations

import pytest

from ae.model.config import TrainingConfig
from ae.training.snapshot import JobState
from tests.test_training import LARGE, wait_for, wait_until_done

TINY = TrainingConfig(code_size=8, epochs=1, batch_size=64, train_size=300, seed=3)
LECTURER = dict(session="lecturer", lecturer=True)
ALICE = dict(session="alice", lecturer=False)
BOB = dict(session="bob", lecturer=False)


@pytest.fixture
def room(cache_dir, managers, monkeypatch):
    monkeypatch.setenv("AE_LECTURER_KEY", "a key for the tests")
    monkeypatch.setenv("AE_STUDENT_JOBS", "4")
    return managers(cache_dir)


def busy(manager, **who):
    """The one slot trains a long run: whatever is asked for next stays queued."""
    job = manager.request(LARGE, **who)
    wait_for(job, lambda s: s.state is JobState.RUNNING, "running")
    return job


def places(jobs) -> list[int | None]:
    for job in jobs:  # the service's snapshots arrive as they change
        wait_for(job, lambda s: s.queue_position is not None, "a place in line", timeout=30)
    return [job.snapshot().queue_position for job in jobs]


def test_a_student_cannot_change_a_pinned_model_and_gets_a_copy(room):
    preset = room.request(TINY, pin=True)  # the warm-up's way: the engine pins it
    assert wait_until_done(preset).state is JobState.FINISHED
    snapshot = wait_for(preset, lambda s: s.pinned, "pinned", timeout=10)
    assert room.change_refusal(preset.key, **ALICE).startswith("The lecturer pinned this model")
    with pytest.raises(ValueError, match="pinned this model"):
        preset.extend(2, **ALICE)
    with pytest.raises(ValueError, match="only the lecturer may delete it"):
        room.delete(preset.key, **ALICE)
    with pytest.raises(ValueError, match="Only the lecturer may pin"):
        room.pin(preset.key, False, **ALICE)

    copy = room.own_copy(preset, "alice", snapshot.history.epochs_done + 2, lecturer=False)
    assert copy.key != preset.key and copy.config == TINY.with_changes(epochs=3)
    assert wait_until_done(copy).state is JobState.FINISHED
    assert copy.snapshot().owners and room.change_refusal(copy.key, **ALICE) is None  # hers to continue
    assert "Another session" in room.change_refusal(copy.key, **BOB)
    assert preset.snapshot().history.epochs_done == 1  # the pinned model is as it was

    preset.extend(1, **LECTURER)  # the lecturer may
    assert wait_until_done(preset).history.epochs_done == 2
    room.pin(preset.key, False, **LECTURER)
    wait_for(preset, lambda s: not s.pinned, "unpinned", timeout=10)


def test_the_lecturer_stops_a_students_run(room):
    run = busy(room, **ALICE)
    refused = run.stop(**BOB)
    assert not refused.allowed and run.snapshot().is_active
    assert run.stop_permission(**LECTURER).stops
    assert run.stop(**LECTURER).stops
    assert wait_until_done(run, timeout=30).state is JobState.STOPPED


def test_the_lecturers_run_goes_before_a_students_sweep_and_students_alternate(room, monkeypatch):
    from ae.analysis.code_size import Sweep

    busy(room, **LECTURER)
    alice_sweep = Sweep.start(room, TINY, [2, 3, 4], **ALICE)
    bob = [room.request(TINY.with_changes(code_size=size), **BOB) for size in (5, 6)]
    lecture = room.request(TINY.with_changes(code_size=7), **LECTURER)
    alice = alice_sweep.jobs()
    assert places([lecture, alice[0], bob[0], alice[1], bob[1], alice[2]]) == [1, 2, 3, 4, 5, 6]

    room.run_next(alice[2].key, **LECTURER)
    wait_for(alice[2], lambda s: s.queue_position == 1, "the front of the line", timeout=30)
    with pytest.raises(ValueError, match="Only the lecturer may reorder"):
        room.run_next(bob[1].key, **BOB)
    with pytest.raises(ValueError, match="Only the lecturer may clear"):
        room.clear_queue(**ALICE)
    assert room.clear_queue(**LECTURER) == 6
    for job in [lecture, *bob, *alice]:
        wait_for(job, lambda s: s.state is not JobState.QUEUED, "leaving the queue", timeout=30)


def test_the_cap_answers_in_words_and_a_sweep_that_does_not_fit_queues_nothing(room):
    from ae.analysis.code_size import Sweep

    busy(room, **LECTURER)
    mine = [room.request(TINY.with_changes(code_size=size), **ALICE) for size in (2, 3, 4, 5)]
    with pytest.raises(ValueError) as refused:
        room.request(TINY.with_changes(code_size=6), **ALICE)
    assert str(refused.value).startswith("You already have 4 models queued or training, the most a student may have")
    assert "4 jobs ahead of your next one" in str(refused.value) and str(refused.value).endswith(".")
    assert room.get(TINY.with_changes(code_size=6).key) is None  # nothing queued, nothing shown

    before = len(room.queued_jobs())
    with pytest.raises(ValueError, match=r"This sweep would queue 16 models, but a student may have at most 4"):
        Sweep.start(room, TINY, list(range(10, 26)), **BOB)
    assert len(room.queued_jobs()) == before
    room.request(TINY.with_changes(code_size=6), **LECTURER)  # the lecturer has no cap
    assert mine[0].snapshot().is_active


def test_queue_places_come_with_a_start_time_once_a_run_was_measured(room):
    import time

    from ae.display.texts import queue_note

    assert wait_until_done(room.request(TINY.with_changes(seed=9), **LECTURER)).state is JobState.FINISHED
    long = room.request(TINY.with_changes(code_size=9, train_size=2000, epochs=50), **LECTURER)
    running = wait_for(long, lambda s: s.state is JobState.RUNNING and s.eta_seconds is not None, "its speed measured")
    queued = room.request(TINY, **ALICE)
    estimated = wait_for(queued, lambda s: s.starts_at is not None, "a start time", timeout=30)
    wait = estimated.starts_at - time.time()
    assert 0 < wait <= running.eta_seconds + 30
    assert "Starts in about" in queue_note(estimated, long) and "measured on this server" in queue_note(estimated, long)
    long.stop(**LECTURER)
    assert wait_until_done(queued).state is JobState.FINISHED


def test_over_the_quota_a_long_unused_model_is_evicted_after_a_run_but_never_a_pinned_one(cache_dir, managers,
                                                                                           monkeypatch):
    import json
    import time

    from ae.storage.store import RECORD_FILE
    from tests.conftest import wait_for_condition

    old, pinned = (TINY.with_changes(code_size=256, seed=seed) for seed in (4, 5))  # 1.6 MB of weights each
    first = managers(cache_dir)
    for job in (first.request(old), first.request(pinned, pin=True)):
        assert wait_until_done(job).state is JobState.FINISHED
    first.close()
    for config in (old, pinned):  # both last used three days ago
        record_path = first.store.entry_dir(config.key) / RECORD_FILE
        record = json.loads(record_path.read_text())
        record["saved_at"] = time.time() - 3 * 24 * 3600
        record_path.write_text(json.dumps(record))

    monkeypatch.setenv("AE_CACHE_QUOTA_MB", "1")
    monkeypatch.setenv("AE_EVICT_UNUSED_HOURS", "24")
    again = managers(cache_dir)
    assert again.get(old.key) is not None
    wait_for_condition(lambda: again.get(pinned.key).snapshot().pinned, 30)  # the service's snapshots arrived
    assert "over it by" in again.disk_use_line() and "(1 pinned)" in again.disk_use_line()
    assert wait_until_done(again.request(TINY)).state is JobState.FINISHED  # a run ends: eviction looks
    wait_for_condition(lambda: again.get(old.key) is None, 30)
    assert not first.store.entry_dir(old.key).exists()
    assert again.get(pinned.key) is not None and again.get(TINY.key) is not None
