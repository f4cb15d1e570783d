"""Jobs in parallel on one machine: the training service's local slots (`ae.training.slots`).

Real slot processes, real Keras, a real MNIST slice. Two slots on this 2-core machine."""
from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from ae.model.config import TrainingConfig
from ae.training.slots import SLOT_MEMORY_BYTES, slot_plan
from ae.training.snapshot import JobState
from tests.test_training import wait_for, wait_until_done

# Different code sizes, a few hundred steps each: long enough for two runs to overlap.
FIRST = TrainingConfig(code_size=6, epochs=4, batch_size=32, train_size=2000, seed=11)
SECOND = TrainingConfig(code_size=10, epochs=4, batch_size=32, train_size=2000, seed=12)
LONG = TrainingConfig(code_size=8, epochs=60, batch_size=32, train_size=2000, seed=13)


@pytest.fixture
def two_slots(monkeypatch):
    monkeypatch.setenv("AE_TRAINING_SLOTS", "2")


def running_intervals(jobs, timeout: float = 180.0) -> dict[str, list[float]]:
    """When each job was first and last seen running (or stopping), polled every 20 ms."""
    seen: dict[str, list[float]] = {}
    most_running = 0
    deadline = time.monotonic() + timeout
    while any(job.snapshot().is_active for job in jobs):
        assert time.monotonic() < deadline, "jobs still active"
        now = time.monotonic()
        states = {job.key: job.snapshot().state for job in jobs}
        running = [key for key, state in states.items() if state in (JobState.RUNNING, JobState.STOPPING)]
        most_running = max(most_running, len(running))
        for key in running:
            seen.setdefault(key, [now, now])[1] = now
        time.sleep(0.02)
    assert most_running <= 2, "more jobs ran at once than there are slots"
    return seen


def slot_processes(service_pid: int) -> dict[str, psutil.Process]:
    """The service's slot processes by slot name ('slot 1', ...), from their arguments."""
    found = {}
    for child in psutil.Process(service_pid).children():
        try:
            command = child.cmdline()
        except psutil.Error:  # a process just replaced (a zombie until reaped) or gone
            continue
        if "ae.training.slots" in command:
            found[json.loads(command[-1])["where"]] = child
    return found


def test_the_plan_follows_cores_and_memory_and_the_environment_wins(monkeypatch):
    monkeypatch.delenv("AE_TRAINING_SLOTS", raising=False)
    monkeypatch.delenv("AE_THREADS_PER_JOB", raising=False)
    assert (slot_plan(16, 64 * 10**9).slots, slot_plan(16, 64 * 10**9).threads_per_job) == (16, 1)
    small = slot_plan(16, 2_000_000_000 + 3 * SLOT_MEMORY_BYTES)  # memory for three slots only
    assert (small.slots, small.threads_per_job) == (3, 5)
    assert slot_plan(2, 10**8).slots == 1  # never none
    monkeypatch.setenv("AE_TRAINING_SLOTS", "4")
    monkeypatch.setenv("AE_THREADS_PER_JOB", "2")
    assert (slot_plan(2, 10**8).slots, slot_plan(2, 10**8).threads_per_job) == (4, 2)
    monkeypatch.setenv("AE_TRAINING_SLOTS", "many")
    with pytest.raises(ValueError, match="AE_TRAINING_SLOTS must be a whole number"):
        slot_plan()


def test_two_configs_train_at_once_and_each_ends_as_it_would_alone(two_slots, cache_dir, managers, monkeypatch):
    manager = managers(cache_dir / "together")
    jobs = [manager.request(FIRST), manager.request(SECOND)]
    intervals = running_intervals(jobs)
    finals = [wait_until_done(job) for job in jobs]
    assert all(final.state is JobState.FINISHED for final in finals), [final.error for final in finals]
    (first_start, first_end), (second_start, second_end) = intervals[FIRST.key], intervals[SECOND.key]
    assert max(first_start, second_start) < min(first_end, second_end), "the two runs did not overlap"
    assert {final.where for final in finals} == {"slot 1", "slot 2"}

    monkeypatch.setenv("AE_TRAINING_SLOTS", "1")
    alone = managers(cache_dir / "alone")
    for config, together in zip((FIRST, SECOND), finals):
        single = wait_until_done(alone.request(config))
        assert single.state is JobState.FINISHED, single.error
        assert together.test_metrics.bce == pytest.approx(single.test_metrics.bce, rel=0.01)


def test_the_queue_keeps_its_order_and_never_runs_more_than_the_slots(two_slots, cache_dir, managers):
    manager = managers(cache_dir)
    configs = [FIRST, SECOND, FIRST.with_changes(seed=21), FIRST.with_changes(seed=22)]
    jobs = [manager.request(config) for config in configs]
    for job in jobs[:2]:
        wait_for(job, lambda s: s.state is JobState.RUNNING, "running")
    for job, place in zip(jobs[2:], (1, 2)):  # snapshots arrive from the service as they change
        wait_for(job, lambda s, place=place: s.queue_position == place, f"place {place} in line", timeout=30)
    assert [job.snapshot().queue_position for job in jobs[:2]] == [None, None]
    assert [job.snapshot().state for job in jobs[2:]] == [JobState.QUEUED, JobState.QUEUED]
    intervals = running_intervals(jobs, timeout=300)
    assert all(wait_until_done(job).state is JobState.FINISHED for job in jobs)
    starts = [intervals[config.key][0] for config in configs]
    assert starts[2] < starts[3], "a later request started before an earlier one"
    assert max(starts[:2]) <= min(starts[2:]), "a queued job started before the first two"


def test_a_slot_that_dies_fails_only_its_own_job_which_then_resumes(two_slots, cache_dir, managers):
    manager = managers(cache_dir)
    doomed, other = manager.request(LONG), manager.request(FIRST)
    running = wait_for(doomed, lambda s: s.state is JobState.RUNNING and s.history.epochs_done >= 3,
                       "three epochs", timeout=120)
    victim = slot_processes(manager.worker_pid)[running.where]
    os.kill(victim.pid, signal.SIGKILL)
    failed = wait_for(doomed, lambda s: s.state is JobState.FAILED, "failing after the kill", timeout=30) \
        if doomed.snapshot().state is not JobState.FAILED else doomed.snapshot()
    assert f"The training {running.where} stopped: killed by signal 9" in failed.error
    assert "Train it again to resume from epoch" in failed.error
    checkpointed = failed.resume_from
    assert checkpointed is not None and checkpointed >= 2

    finished = wait_until_done(other)  # the other slot never noticed
    assert finished.state is JobState.FINISHED, finished.error

    again = manager.request(LONG)  # a fresh slot process takes it, from the checkpoint
    resumed = wait_for(again, lambda s: s.state is JobState.RUNNING and s.history.epoch_ends, "resuming", timeout=120)
    assert resumed.history.epoch_ends[0] == pytest.approx(1.0)  # the history continues, not restarts
    assert resumed.history.epochs_done >= checkpointed
    again.stop()
    assert wait_until_done(again, timeout=60).state is JobState.STOPPED


def test_a_slot_process_grown_past_its_limit_is_replaced_between_runs(cache_dir, managers, monkeypatch):
    monkeypatch.setenv("AE_SLOT_RECYCLE_MB", "1")  # every process is over 1 MB: replaced after each run
    manager = managers(cache_dir)
    pids = []
    for seed in (51, 52):
        job = manager.request(FIRST.with_changes(epochs=1, seed=seed))
        wait_for(job, lambda s: s.state is JobState.RUNNING and s.phase.value == "training", "training")
        pids.append(slot_processes(manager.worker_pid)["slot 1"].pid)
        assert wait_until_done(job).state is JobState.FINISHED
    assert pids[0] != pids[1]  # a fresh process trained the second run


def test_a_cluster_run_follows_only_its_latest_try():
    """After a lost node, Ray runs a run again elsewhere; if the old try's process lives on,
    its reports are refused with ABANDON, so two tries never train or save one model at once."""
    from ae.training.protocol import Progress
    from ae.training.ray_service import LatestTry
    from ae.training.snapshot import JobSnapshot
    from ae.training.worker import ABANDON

    followed = []
    route = LatestTry(lambda message: followed.append(message.where) or False)
    report = lambda where: route(Progress(JobSnapshot(key="k", config=FIRST, state=JobState.RUNNING), False, where))  # noqa: E731
    assert [report("node a"), report("node a"), report("node b"), report("node a"), report("node b")] == \
        [False, False, False, ABANDON, False]
    assert followed == ["node a", "node a", "node b", "node b"]
