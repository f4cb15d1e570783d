"""Liveness, not only death: a training service that stops answering (SIGSTOP, a hang) is
noticed within a bound, killed, and its job fails in words with a resume; meanwhile another
session's command gets a true sentence within seconds instead of a minute's wait."""
from __future__ import annotations

import os
import signal
import time

import pytest

from ae.jobs.backend import COMMAND_SECONDS
from ae.model.config import TrainingConfig
from ae.training.protocol import HUNG_AFTER_SECONDS
from ae.training.snapshot import JobState
from tests.test_training import wait_for

LONG = TrainingConfig(code_size=16, epochs=200, batch_size=32, train_size=1000, seed=8)  # an epoch a second or less
OTHER = TrainingConfig(code_size=12, epochs=1, batch_size=64, train_size=500, seed=8)


def test_a_stopped_training_service_is_found_hung_its_job_resumable_and_others_told_the_truth(cache_dir, managers):
    manager = managers(cache_dir)
    job = manager.request(LONG)
    wait_for(job, lambda s: s.history.epochs_done >= 2, "two epochs and a checkpoint", timeout=120)
    service = manager.worker_pid
    os.kill(service, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        asked = time.monotonic()
        with pytest.raises(ValueError) as busy:
            manager.request(OTHER, session="another-tab")
        answered = time.monotonic() - asked
        assert answered < COMMAND_SECONDS + 2, f"the page waited {answered:.1f} s"
        assert "has not answered" in str(busy.value) and "stopped or hung" in str(busy.value)
        assert "restarted" not in str(busy.value).split("once silent")[0]  # nothing restarted yet, and none said so

        failed = wait_for(job, lambda s: s.state is JobState.FAILED, "failing as hung", timeout=HUNG_AFTER_SECONDS + 15)
        detected = time.monotonic() - stopped_at
        assert detected < HUNG_AFTER_SECONDS + 5, f"found hung after {detected:.1f} s"
        assert "was silent for" in failed.error and "stopped or hung" in failed.error
        assert "Train it again to resume from epoch" in failed.error and failed.resume_from >= 1
    finally:
        try:
            os.kill(service, signal.SIGCONT)
        except ProcessLookupError:
            pass

    again = manager.request(LONG)  # a fresh service, resuming from the checkpoint
    resumed = wait_for(again, lambda s: s.state is JobState.RUNNING and s.history.epoch_ends, "resuming", timeout=120)
    assert resumed.history.epoch_ends[0] == pytest.approx(1.0)  # the loss history continues
    again.stop()


def test_a_stopped_training_slot_is_found_hung_and_only_its_job_fails(cache_dir, managers, monkeypatch):
    from tests.test_slots import slot_processes

    monkeypatch.setenv("AE_SLOT_HUNG_SECONDS", "5")  # the default is 30 s; the longest silence measured is about 2 s
    manager = managers(cache_dir)
    job = manager.request(LONG)
    running = wait_for(job, lambda s: s.history.epochs_done >= 2, "two epochs and a checkpoint", timeout=120)
    slot = slot_processes(manager.worker_pid)[running.where]
    os.kill(slot.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    failed = wait_for(job, lambda s: s.state is JobState.FAILED, "failing as hung", timeout=30)
    assert time.monotonic() - stopped_at < 5 + 5
    assert f"The training {running.where} stopped: it was silent for" in failed.error
    assert "Train it again to resume from epoch" in failed.error
    assert not slot.is_running() or slot.status() == "zombie"
    again = manager.request(LONG)  # the service lives on: a fresh slot process takes it
    wait_for(again, lambda s: s.state is JobState.RUNNING and s.history.epoch_ends, "resuming", timeout=120)
    again.stop()
