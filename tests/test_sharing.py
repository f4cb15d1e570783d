"""A job shared by a room: who may stop it, resuming the planned run, which model a session
sees first, and the measured time estimate. Real training process, real Keras, small MNIST.
"""
from __future__ import annotations

import pytest

from ae.model.config import TrainingConfig
from ae.training.snapshot import JobState
from tests.test_training import LARGE, wait_for, wait_until_done

RESUMABLE = TrainingConfig(code_size=16, epochs=3, batch_size=16, train_size=2000, seed=5)


def running(manager, config, session):
    job = manager.request(config, session=session)
    wait_for(job, lambda s: s.state is JobState.RUNNING and s.position > 0, "its first progress")
    return job


def test_a_shared_job_stops_only_when_everyone_who_asked_pressed_stop(cache_dir, managers):
    manager = managers(cache_dir)
    job = running(manager, LARGE, "alice")
    assert manager.request(LARGE, session="bob") is job  # Bob asks for the same run: it is his too

    stranger = job.stop_permission("carol")
    assert not stranger.allowed and not stranger.stops
    assert "2 sessions" in stranger.reason and "press Train with the same settings" in stranger.reason
    refused = job.stop("carol")
    assert not refused.allowed and job.snapshot().state is JobState.RUNNING

    first = job.stop("alice")
    assert first.allowed and not first.stops
    assert "1 other session" in first.reason and "Your Stop is counted" in first.reason
    assert job.snapshot().state is JobState.RUNNING
    assert job.stop_permission("alice").reason.endswith("Your Stop is counted.")

    last = job.stop("bob")
    assert last.stops
    assert wait_until_done(job, timeout=30).state is JobState.STOPPED


def test_a_session_that_left_no_longer_holds_the_job(cache_dir, managers):
    manager = managers(cache_dir)
    present = {"alice", "bob"}
    manager.session_present = lambda session: session in present
    job = running(manager, LARGE, "alice")
    manager.request(LARGE, session="bob")

    assert not job.stop("alice").stops  # Bob is still here
    assert manager.report_departures() == []
    present.discard("bob")  # Bob closes his tab: only Alice's Stop is left, and it counts
    assert manager.report_departures() == [LARGE.key]
    assert wait_until_done(job, timeout=30).state is JobState.STOPPED


def test_anyone_may_stop_a_run_whose_askers_all_left(cache_dir, managers):
    manager = managers(cache_dir)
    present = {"carol"}
    manager.session_present = lambda session: session in present
    job = running(manager, LARGE, "alice")  # Alice has gone: nobody holds the run any more
    permission = job.stop_permission("carol")
    assert permission.allowed and permission.stops
    assert job.stop("carol").stops
    assert wait_until_done(job, timeout=30).state is JobState.STOPPED


def test_the_engine_itself_may_always_stop(cache_dir, managers):
    manager = managers(cache_dir)
    job = running(manager, LARGE, "alice")
    assert job.stop().stops  # no session: the engine, a sweep, a test
    assert wait_until_done(job, timeout=30).state is JobState.STOPPED


def test_resume_trains_on_to_the_planned_epochs(cache_dir, managers):
    manager = managers(cache_dir)
    job = manager.request(RESUMABLE, session="alice")
    wait_for(job, lambda s: s.state is JobState.RUNNING and 0.3 < s.position < 2, "training part-way")
    job.stop("alice")
    stopped = wait_until_done(job, timeout=30)
    assert stopped.state is JobState.STOPPED and stopped.history.epochs_done < 3

    with pytest.raises(ValueError, match="already has"):
        job.resume_to(stopped.history.epochs_done)
    job.resume_to(3, session="alice")
    resumed = wait_until_done(job)
    assert resumed.state is JobState.FINISHED, resumed.error
    assert resumed.history.epochs_total == 3
    # The last epoch ends part-way, at the first execution (16 steps of 125) past 3 epochs.
    assert 3 <= resumed.history.epochs_done < 3 + 16 / 125 + 1e-6
    assert resumed.history.train_loss[: len(stopped.history.train_loss)] == stopped.history.train_loss
    assert resumed.test_metrics.bce < stopped.test_metrics.bce


def test_the_default_model_is_the_most_trained_finished_one(cache_dir, managers):
    manager = managers(cache_dir)
    assert manager.most_trained() is None and manager.estimate_seconds(RESUMABLE) is None
    short = manager.request(TrainingConfig(code_size=8, epochs=1, batch_size=32, train_size=1000, seed=1))
    wait_until_done(short)
    longer = manager.request(TrainingConfig(code_size=8, epochs=3, batch_size=64, train_size=1000, seed=2))
    wait_until_done(longer)
    stopped = running(manager, LARGE, "alice")  # saved last, but stopped after a fraction of an epoch
    stopped.stop()
    wait_until_done(stopped, timeout=30)
    assert manager.latest() is stopped
    assert manager.most_trained() is longer

    # Measured from the one comparable run (same architecture and batch size): twice the
    # digits and 2 epochs of its steady epoch, plus its first epoch's extra (compilation).
    estimate = manager.estimate_seconds(TrainingConfig(code_size=8, epochs=2, batch_size=64, train_size=2000))
    seconds = longer.snapshot().history.epoch_seconds
    steady = sorted(seconds[1:])[1]
    assert estimate == pytest.approx(steady * 2 * 2 + max(0.0, seconds[0] - steady))
    assert manager.estimate_seconds(TrainingConfig(batch_size=1024)) is None
