"""The training service's jobs and queue: who trains what, where, in which order.

Only `ae.training.process` runs this module. One `Trainer` owns every job of one model store
and the queue in front of its slots (`ae.training.slots`): each slot trains one job at a
time, in a process of its own or on a cluster's node, and the rest wait as `queued`. A job's
state lives here; a slot's worker (`ae.training.worker`) trains a copy of it and sends it
back as `Progress`, which the job adopts. Whenever a job changes it is marked dirty, and the
service publishes its snapshot. No Keras here: the service stays small, its slots are heavy.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ae.analysis.metrics import ErrorSummary
from ae.analysis.replay import add_frame, final_panel
from ae.model.config import TrainingConfig
from ae.model.history import History
from ae.storage.checkpoint import checkpoint_epochs, clean_checkpoints, delete_checkpoint, load_checkpoint
from ae.storage.store import ModelStore, StoreError
from ae.training.estimates import queue_waits, run_seconds
from ae.training.fair_queue import FairQueue, Owner
from ae.training.protocol import Progress, RunOrder, Weights
from ae.training.snapshot import ACTIVE_STATES, JobSnapshot, JobState, Phase, continued_total

log = logging.getLogger(__name__)

MAX_STEP_LOSSES = 1_000  # halved when full, so the loss chart's point count stays bounded


@dataclass(eq=False)
class TrainingJob:
    """One config's model and its training. Mutable state lives behind `_lock`."""

    config: TrainingConfig
    trainer: "Trainer"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_event: threading.Event = field(default_factory=threading.Event)
    state: JobState = JobState.QUEUED
    error: str | None = None
    phase: Phase = Phase.WAITING
    warning: str | None = None
    saved_to_disk: bool = True
    resume_from: float | None = None
    history: History = History()  # replaced, never changed in place: a snapshot shares it safely
    step: int = 0
    steps_per_epoch: int = 1
    eta_seconds: float | None = None
    panel_reconstructions: np.ndarray | None = None
    panel_epoch: float | None = None
    panel_version: int = 0
    test_metrics: ErrorSummary | None = None
    saved_at: float | None = None
    replay: list = field(default_factory=list)  # ae.analysis.replay frames (in the worker), saved beside the model
    where: str | None = None  # the slot or node of its current or last run
    _state_before_queue: JobState | None = None

    def __post_init__(self) -> None:
        if not self.history.epochs_total:
            self.history = self.history.with_changes(epochs_total=self.config.epochs)

    @property
    def key(self) -> str:
        return self.config.key

    def snapshot(self, version: int, queue_position: int | None, starts_at: float | None = None) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                key=self.key, config=self.config, state=self.state, history=self.history, error=self.error,
                step=self.step, steps_per_epoch=self.steps_per_epoch, eta_seconds=self.eta_seconds,
                panel_reconstructions=self.panel_reconstructions, panel_epoch=self.panel_epoch,
                queue_position=queue_position, test_metrics=self.test_metrics,
                saved_at=self.saved_at, version=version,
                panel_version=self.panel_version, phase=self.phase, warning=self.warning,
                saved_to_disk=self.saved_to_disk, resume_from=self.resume_from, where=self.where,
                starts_at=starts_at,
            )

    def _set(self, **values) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)
        self.trainer.mark_dirty(self)

    def update_history(self, **changes) -> None:
        """Caller holds `_lock`."""
        self.history = self.history.with_changes(**changes)

    # ---- progress (training thread only, from the progress callback) ------------------------
    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    def start_epoch(self) -> None:
        with self._lock:
            self.step = 0

    def record_steps(self, step: int, position: float, recent_loss: float, rate: float | None, eta: float | None) -> None:
        """Steps done in this epoch, the recent loss, and the speed once it is measured."""
        with self._lock:
            self.step, self.phase = step, Phase.TRAINING
            if rate is not None:
                self.eta_seconds = eta
            step_losses = self.history.step_losses + ((round(position, 4), recent_loss),)
            if len(step_losses) > MAX_STEP_LOSSES:  # halved: the chart's point count stays bounded
                step_losses = step_losses[1::2]
            self.update_history(step_losses=step_losses, samples_per_second=rate or self.history.samples_per_second)
        self.trainer.mark_dirty(self, urgent=False)

    def record_epoch(self, start_position: float, epoch: int, logs: dict, seconds: float, kl_term) -> float:
        """An epoch's end (a stopped one counts the fraction of its steps done); returns the
        model's epochs now."""
        with self._lock:
            position = round(start_position + epoch + self.step / max(1, self.steps_per_epoch), 4)
            self.step = 0  # the steps are in epochs_done now
            history = self.history
            self.update_history(
                epochs_done=position, epoch_ends=history.epoch_ends + (position,),
                train_loss=history.train_loss + (float(logs.get("loss", float("nan"))),),
                val_loss=history.val_loss + (float(logs.get("val_loss", float("nan"))),),
                epoch_seconds=history.epoch_seconds + (seconds,),
                kl_loss=history.kl_loss + ((kl_term(),) if kl_term is not None else ()))
        self.trainer.mark_dirty(self)  # an epoch's end goes out at once
        return position

    def show_panel(self, reconstructions: np.ndarray, position: float, urgent: bool) -> None:
        with self._lock:
            self.panel_reconstructions, self.panel_epoch = reconstructions, position
            self.panel_version += 1
        self.trainer.mark_dirty(self, urgent=urgent)

    def add_replay_frame(self, frame) -> None:
        with self._lock:
            add_frame(self.replay, frame)

    # ---- control (called on the service's command thread) ---------------------------------
    def stop(self) -> None:
        """Stop within one execution step; the model trained so far is kept and saved."""
        with self._lock:
            if self.state is JobState.RUNNING:
                self.state = JobState.STOPPING
                self._stop_event.set()
            elif self.state is JobState.QUEUED:
                previous, self._state_before_queue = self._state_before_queue, None
                self.state = previous or JobState.STOPPED
                self.phase = Phase.DONE
                self.update_history(epochs_total=self.history.epochs_done if previous else self.config.epochs)
            else:
                return
            stopping = self.state is JobState.STOPPING
        self.trainer.mark_dirty(self)
        if stopping:
            self.trainer.stop_running(self)
        else:
            self.trainer.dequeue(self)

    def extend(self, extra_epochs: int, owner: Owner) -> None:
        """Queue `extra_epochs` more epochs on the model trained so far."""
        self._continue(owner, extra_epochs=extra_epochs)

    def resume_to(self, target_epochs: float, owner: Owner) -> None:
        """Queue training until the model has `target_epochs` in all (the planned run after a
        stop); the last epoch may end part-way, as a stop's does."""
        self._continue(owner, total_epochs=target_epochs)

    def _continue(self, owner: Owner, **plan) -> None:
        with self._lock:
            total = continued_total(self.state, self.saved_at is not None, self.resume_from, self.history.epochs_done, **plan)
            self._state_before_queue = self.state
            self.update_history(epochs_total=total)
            self.state, self.phase, self.error = JobState.QUEUED, Phase.WAITING, None
        self.trainer.enqueue(self, owner)

    def requeue_after_failure(self) -> bool:
        """A failed job asked for again is tried again: from its checkpoint if it has one."""
        with self._lock:
            if self.state is not JobState.FAILED:
                return False
            self.state, self.error, self.phase = JobState.QUEUED, None, Phase.WAITING
            self.update_history(epochs_total=max(self.history.epochs_total, self.config.epochs))
            return True

    # ---- a run in a slot (the service's side) ------------------------------------------
    def begin(self, where: str) -> bool:
        """A slot takes the job: False if it is no longer queued."""
        with self._lock:
            if self.state is not JobState.QUEUED:
                return False
            self.state, self.phase, self.where = JobState.RUNNING, Phase.STARTING, where
            self._stop_event.clear()
        self.trainer.mark_dirty(self)
        return True

    def order(self) -> RunOrder:
        with self._lock:
            return RunOrder(self.config.to_dict(), self.history.to_dict(), self.saved_at, self.saved_to_disk,
                            self.resume_from)

    def adopt(self, progress: Progress) -> None:
        """The job as its slot's worker sees it. A Stop pressed meanwhile stays pressed."""
        sent = progress.snapshot
        with self._lock:
            stopping = self.state is JobState.STOPPING and sent.state is JobState.RUNNING
            self.state = JobState.STOPPING if stopping else sent.state
            self.error, self.phase, self.warning = sent.error, sent.phase, sent.warning
            self.history, self.step, self.steps_per_epoch = sent.history, sent.step, sent.steps_per_epoch
            self.eta_seconds, self.test_metrics, self.saved_at = sent.eta_seconds, sent.test_metrics, sent.saved_at
            self.saved_to_disk, self.resume_from, self.where = sent.saved_to_disk, sent.resume_from, progress.where
            if sent.panel_reconstructions is not None:
                self.panel_reconstructions, self.panel_epoch = sent.panel_reconstructions, sent.panel_epoch
                self.panel_version += 1
            if self.state not in ACTIVE_STATES:
                self._state_before_queue = None
        self.trainer.mark_dirty(self, urgent=progress.urgent)

    def lost(self, reason: str, store: ModelStore) -> None:
        """Its slot's process or node died mid-run: the job fails in words, resumable from its
        last checkpoint (at most the epoch in flight is lost), else from its saved model."""
        epochs = checkpoint_epochs(store, self.key)
        checkpoint = load_checkpoint(store, self.key) if epochs is not None else None
        history = None
        if checkpoint is not None:
            history = History.from_dict(checkpoint.history)
            again = f"Train it again to resume from epoch {epochs:g}."
        elif self.saved_at is not None and self.saved_to_disk:
            try:
                history = store.read_record(store.entry_dir(self.key))["history"]
            except StoreError:
                history = None
            again = "Train it again to continue from the saved model."
        else:
            again = "Train it again to start over."
        with self._lock:
            if history is not None:
                self.history = history
            self.state, self.phase, self.step, self.eta_seconds = JobState.FAILED, Phase.DONE, 0, None
            self.resume_from = float(epochs) if checkpoint is not None else None
            self.error = f"The training {self.where or 'slot'} stopped: {reason}. {again}"
            self._state_before_queue = None
        self.trainer.mark_dirty(self)

    @classmethod
    def from_record(cls, record: dict, trainer: "Trainer") -> "TrainingJob":
        """A finished or stopped job read back from disk (record validated by the store)."""
        job = cls(config=record["config"], trainer=trainer,
                  state=JobState.STOPPED if record["stopped_early"] else JobState.FINISHED, phase=Phase.DONE,
                  test_metrics=record["test_metrics"], saved_at=record["saved_at"], history=record["history"])
        # The panel the run last showed is its replay's last frame: without it a model trained by
        # another process (`python -m ae.warmup`, a server before a restart) shows black digits.
        panel = final_panel(trainer.store.entry_dir(job.key), job.history.epochs_done)
        if panel is not None:
            job.panel_epoch, job.panel_reconstructions, job.panel_version = panel[0], panel[1], 1
        return job


class Trainer:
    """All jobs of one model store, the queue, and the slots that train them (one thread each)."""

    def __init__(self, store: ModelStore, slots: list, on_change=None, crash_notes: dict | None = None,
                 send_weights=None, on_run_end=None):
        self.store = store
        self._on_run_end = on_run_end  # the service's eviction check after each run
        self.slots = list(slots)
        self._on_change = on_change or (lambda urgent: None)
        self._send_weights = send_weights
        self._jobs: dict[str, TrainingJob] = {}
        self._queue = FairQueue()  # the lecturer first, then students in turn
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._running: dict[str, object] = {}  # job key -> the slot training it
        self._dirty: set[str] = set()
        self._forgotten: dict[str, TrainingJob] = {}  # removed jobs, whose last snapshot still goes out
        for line in store.clean_leftovers():
            log.info("Model store: %s", line)
        clean_checkpoints(store)
        for record in store.records():
            job = TrainingJob.from_record(record, self)
            self._jobs[job.key] = job
        self._restore_interrupted(crash_notes or {})
        self._dirty.update(self._jobs)
        for slot in self.slots:
            threading.Thread(target=self._work, args=(slot,), name=f"ae-{slot.name}", daemon=True).start()

    def _restore_interrupted(self, crash_notes: dict) -> None:
        """Runs cut short by a crash come back as failed, resumable from their last checkpoint."""
        root = self.store.root / ".checkpoints"
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            epochs = checkpoint_epochs(self.store, folder.name)
            checkpoint = load_checkpoint(self.store, folder.name) if epochs is not None else None
            job = self._jobs.get(folder.name)
            config = job.config if job else None
            if checkpoint is not None and config is None:
                try:
                    config = TrainingConfig.from_dict(checkpoint.history.get("config", {}))
                except (TypeError, ValueError):
                    config = None
            if checkpoint is None or config is None or config.key != folder.name or (job and epochs <= job.history.epochs_done):
                delete_checkpoint(self.store, folder.name)  # stale, or not ours
                continue
            job = job or TrainingJob(config=config, trainer=self)
            job.history = History.from_dict(checkpoint.history)
            note = crash_notes.get(job.key) or "The training process stopped unexpectedly."
            job.state, job.phase, job.resume_from = JobState.FAILED, Phase.DONE, float(epochs)
            job.error = f"{note} Train it again to resume from epoch {epochs:g}."
            self._jobs[job.key] = job

    # ---- what the service asks -----------------------------------------------------------------
    def request(self, config: TrainingConfig, owner: Owner = Owner(None, True)) -> TrainingJob:
        """The job for this config: the running or saved one if any, else a new queued one."""
        with self._lock:
            job = self._jobs.get(config.key)
            if job is None:
                job = self._jobs[config.key] = TrainingJob(config=config, trainer=self)
                self._append_to_queue(job, owner)
            elif job.requeue_after_failure():
                self._append_to_queue(job, owner)
            return job

    def held_by(self, session: str) -> int:
        """The session's jobs queued or running (the per-session cap counts these)."""
        with self._lock:
            return self._queue.held_by(session)

    def ahead_of_next(self, session: str) -> int:
        with self._lock:
            return self._queue.ahead_of_next(session)

    def queued_count(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear_queue(self) -> int:
        """The lecturer's Clear: every queued job is taken out, as if stopped before it began."""
        with self._lock:
            jobs = self._queue.jobs()
        for job in jobs:
            job.stop()
        return len(jobs)

    def run_next(self, job: TrainingJob) -> None:
        """The lecturer's reorder: a queued job goes to the front."""
        with self._lock:
            if job not in self._queue:
                raise ValueError("This model is not in the queue any more.")
            self._queue.move_to_front(job)
            self._dirty.update(queued.key for queued in self._queue.jobs())
        self._on_change(True)

    def get(self, key: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(key)

    def delete(self, key: str) -> None:
        """Forget a model: its saved entry and checkpoint. A running job is stopped first."""
        job = self.get(key)
        if job is not None and job.state in ACTIVE_STATES:
            raise ValueError("This model is training; stop it before deleting it.")
        self.store.delete(key)
        delete_checkpoint(self.store, key)
        with self._lock:
            if key in self._jobs:
                self._forgotten[key] = self._jobs.pop(key)
        self._on_change(True)

    def forget_removed(self) -> None:
        """Forget the saved jobs whose entries left the store (evicted)."""
        with self._lock:
            gone = [key for key, job in self._jobs.items() if job.state not in ACTIVE_STATES
                    and job.saved_at is not None and job.saved_to_disk and not self.store.entry_dir(key).exists()]
            for key in gone:
                self._forgotten[key] = self._jobs.pop(key)
        self._on_change(True)

    def snapshots_to_publish(self, next_version) -> tuple[list[JobSnapshot], list[JobSnapshot]]:
        """Snapshots of the jobs that changed since the last call, and the last snapshots of
        jobs removed since then (a queued job stopped before it began, a deleted model)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            forgotten, self._forgotten = self._forgotten, {}
            jobs = [self._jobs[key] for key in dirty if key in self._jobs]
            positions, starts = self._queue.positions(), self._expected_starts()
        return ([job.snapshot(next_version(), positions.get(job), starts.get(job)) for job in jobs],
                [job.snapshot(next_version(), None) for job in forgotten.values()])

    def all_snapshots(self, next_version) -> list[JobSnapshot]:
        """Every job's snapshot, panels included: what a web process that just attached is told."""
        with self._lock:
            jobs = list(self._jobs.values())
            positions, starts = self._queue.positions(), self._expected_starts()
        return [job.snapshot(next_version(), positions.get(job), starts.get(job)) for job in jobs]

    def _expected_starts(self) -> dict:
        """Caller holds `_lock`. job -> when it should start (seconds since the epoch), the queue
        played out over the slots with run times measured on this server."""
        queued = self._queue.jobs()
        if not queued:
            return {}
        measured = [(job.config, job.history) for job in self._jobs.values() if job.history.epoch_seconds]

        def left(job: TrainingJob, running: bool) -> float | None:
            if running and job.eta_seconds is not None:
                return job.eta_seconds
            epochs = job.history.epochs_total - job.history.epochs_done
            return run_seconds(job.config, epochs, measured)

        running = [left(self._jobs[key], True) for key in self._running if key in self._jobs]
        waits = queue_waits(running, [left(job, False) for job in queued], len(self.slots))
        now = time.time()
        return {job: now + wait for job, wait in zip(queued, waits) if wait is not None}

    def mark_dirty(self, job: TrainingJob, urgent: bool = True) -> None:
        """Progress (urgent=False) is published with the next batch; anything else at once."""
        with self._lock:
            self._dirty.add(job.key)
        self._on_change(urgent)

    def send_weights(self, key: str, saved_at: float, weights: list) -> None:
        if self._send_weights is not None:
            self._send_weights(key, saved_at, weights)

    # ---- the queue -----------------------------------------------------------------------------
    def _append_to_queue(self, job: TrainingJob, owner: Owner) -> None:
        """Caller holds `_lock`. Every queued job's place changes, so all of them are republished."""
        if job not in self._queue:
            self._queue.add(job, owner)
            self._dirty.update(queued.key for queued in self._queue.jobs())
            self._wakeup.notify_all()
        self._dirty.add(job.key)

    def enqueue(self, job: TrainingJob, owner: Owner) -> None:
        with self._lock:
            self._append_to_queue(job, owner)
        self._on_change(True)

    def dequeue(self, job: TrainingJob) -> None:
        with self._lock:
            self._queue.remove(job)
            self._dirty.update(queued.key for queued in self._queue.jobs())
            if job.saved_at is None and job.history.epochs_done == 0 and job.resume_from is None:
                self._forgotten[job.key] = self._jobs.pop(job.key, job)
        self._on_change(True)

    # ---- the slots ---------------------------------------------------------------------------
    def stop_running(self, job: TrainingJob) -> None:
        """Tell the slot training `job` that it is to stop (a cluster slot hears it in its
        next progress reply instead)."""
        with self._lock:
            slot = self._running.get(job.key)
        if slot is not None:
            slot.stop(job.key)

    def _from_slot(self, job: TrainingJob, message) -> bool:
        """A slot's message about `job`; True asks its worker to stop."""
        if isinstance(message, Progress):
            job.adopt(message)
        elif isinstance(message, Weights):
            self.send_weights(message.key, message.saved_at, message.weights)
        return job.stop_requested

    def _work(self, slot) -> None:
        """One slot's life: take the queue's first job, train it there, repeat. The first slot
        loads TensorFlow at once, so the first Train is quick; the others when a second job
        needs them, so an idle server costs what one training process did."""
        if slot is self.slots[0]:  # on a thread of its own: a request meanwhile is taken at once, not queued
            threading.Thread(target=slot.prepare, name=f"ae-{slot.name}-start", daemon=True).start()
        while True:
            with self._lock:
                while (index := self._queue.next_ready(set(self._running))) is None:
                    self._wakeup.wait()  # nothing queued, or only jobs whose last run is still ending
                job = self._queue.pop(index)
                self._running[job.key] = slot
                self._dirty.update(queued.key for queued in self._queue.jobs())
            try:
                if job.begin(slot.name):
                    self._run(slot, job)
            finally:
                with self._lock:
                    self._running.pop(job.key, None)
                    self._queue.finished(job)
                    self._wakeup.notify_all()  # a job asked for again while this run ended may go now
                    self._dirty.update(queued.key for queued in self._queue.jobs())  # their waits changed
                if self._on_run_end is not None:
                    self._on_run_end(job)
                self._on_change(True)

    def _run(self, slot, job: TrainingJob) -> None:
        from ae.training.slots import SlotLost

        try:
            slot.run(job.order(), lambda message: self._from_slot(job, message), lambda: job.stop_requested)
        except SlotLost as lost:
            log.warning("%s lost while training %s: %s", slot.name, job.key, lost)
            job.lost(str(lost), self.store)
            if slot is self.slots[0]:  # a fresh process for the next job
                threading.Thread(target=slot.prepare, name=f"ae-{slot.name}-start", daemon=True).start()
        if job.state in (JobState.RUNNING, JobState.STOPPING):  # no final state: never leave it running
            job.lost("it ended the run without a result", self.store)  # (QUEUED: asked for again meanwhile)
