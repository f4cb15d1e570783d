"""The web process's view of training: what pages call. It never trains.

`JobManager` keeps the latest snapshot of every job, sent by the training process (ae.training.process),
and forwards requests, Stop and Continue to it. Asking twice for the same config returns the
same `JobHandle`, so a lecture hall shares one run. Reading a snapshot is a dictionary lookup:
a page polling every second costs the training nothing.

If the training process dies (killed, out of memory, a TensorFlow abort) the web app stays
up: the jobs it was running or holding in its queue show as failed with the reason, and the
next request starts a fresh process, which resumes an interrupted run from its last epoch.
Trained models are loaded here, from disk, for the pages' inference: a few at a time.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from ae.storage.checkpoint import checkpoint_epochs
from ae.model.config import TrainingConfig
from ae.model.data import Dataset, load_dataset
from ae.training.snapshot import JobSnapshot, JobState, Phase
from ae.storage.store import ModelStore, StoreError, StoreProblem
from ae.training.process import LocalWorker, WorkerGone

log = logging.getLogger(__name__)
LOADED_MODELS_KEPT = 4  # Keras models held for the pages' inference, least recently used dropped
MEMORY_MODELS_KEPT = 4  # models the disk refused, kept in memory instead


class JobHandle:
    """One job as pages see it: its latest snapshot, and the commands that act on it."""

    def __init__(self, manager: "JobManager", config: TrainingConfig):
        self.manager = manager
        self.config = config
        self._last: JobSnapshot | None = None

    @property
    def key(self) -> str:
        return self.config.key

    def snapshot(self) -> JobSnapshot:
        current = self.manager._snapshot(self.key)
        if current is not None:
            self._last = current
        return self._last

    @property
    def saved_at(self) -> float | None:
        return self.snapshot().saved_at

    def stop(self, session: str | None = None) -> "StopAnswer":
        """Stop within one execution step (16 steps); the model trained so far is saved.

        A job shared by a room stops only when every session that asked for it has pressed
        Stop or left: `session` names who presses (None: the engine itself, which always may).
        """
        answer = self.manager._may_stop(self.key, session, pressing=True)
        if answer.stops and self.snapshot().is_active:
            self.manager._call("stop", self.key)
        return answer

    def stop_permission(self, session: str | None) -> "StopAnswer":
        """What pressing Stop would do for this session, without pressing it (for the button)."""
        return self.manager._may_stop(self.key, session, pressing=False)

    def asked_by(self, session: str | None) -> bool:
        """Whether this session asked for this job (trained, continued or resumed it)."""
        return self.manager._asked_by(self.key, session)

    def extend(self, extra_epochs: int, session: str | None = None) -> None:
        """Queue `extra_epochs` more epochs on the model trained so far; ValueError says why not."""
        if not isinstance(extra_epochs, int) or isinstance(extra_epochs, bool) or extra_epochs < 1:
            raise ValueError(f"Extra epochs must be a whole number of at least 1; got {extra_epochs!r}.")
        self._check_can_continue()
        self.manager._note_request(self.key, session)
        self.manager._call("extend", self.key, extra_epochs)

    def resume_to(self, total_epochs: float, session: str | None = None) -> None:
        """Train on until the model has `total_epochs` in all, e.g. the planned run after a stop."""
        self._check_can_continue()
        if not total_epochs > self.snapshot().epochs_done + 1e-6:
            raise ValueError(f"This model already has {self.snapshot().epochs_done:g} epochs; use Continue to train more.")
        self.manager._note_request(self.key, session)
        self.manager._call("resume", self.key, float(total_epochs))

    def _check_can_continue(self) -> None:
        snapshot = self.snapshot()
        if snapshot.is_active:
            raise ValueError("This model is still training; stop it or wait before continuing.")
        if not snapshot.has_model and snapshot.resume_from is None:
            raise ValueError("This model has no trained epochs to continue from; train it first.")

    def models(self):
        """The saved model, for pages' inference. Raises StoreError if none or the file is bad."""
        return self.manager._load_models(self)

    def __repr__(self) -> str:
        return f"JobHandle({self.key})"


@dataclass(frozen=True)
class StopAnswer:
    """What a session's Stop does to a shared job: stop it, or only withdraw this session's
    request while others still want it; `reason` says which, in words, for the page."""

    stops: bool
    allowed: bool = True
    reason: str | None = None


class JobManager:
    """All jobs of one dataset and model store, as the web process sees them."""

    def __init__(self, dataset: Dataset, store: ModelStore, start_worker: bool = True):
        self.dataset = dataset
        self.store = store
        self._lock = threading.RLock()
        self._snapshots: dict[str, JobSnapshot] = {}
        self._handles: dict[str, JobHandle] = {}
        self._damaged: dict[str, StoreProblem] = {}
        self._versions = itertools.count(1)
        self._crash_notes: dict[str, str] = {}
        self._memory_weights: OrderedDict[str, tuple[float, list]] = OrderedDict()
        self._loaded: OrderedDict[tuple, object] = OrderedDict()
        self._load_locks: dict[str, threading.Lock] = {}
        self._worker: LocalWorker | None = None
        self._cache_check: tuple[float, str | None] = (-1e9, None)
        self.worker_exits: list[str] = []  # each unexpected end of the training process, in words
        self._asked: dict[str, set[str]] = {}  # job key -> sessions that asked for its current run
        self._withdrawn: dict[str, set[str]] = {}  # job key -> those of them that pressed Stop
        self.session_present = lambda session: True  # pages set this: is a browser session still open?
        self._read_store()
        if start_worker:
            self._ensure_worker()

    # ---- reading (cheap: pages call these on every rerun) ---------------------------------
    def get(self, key: str) -> JobHandle | None:
        with self._lock:
            return self._handles.get(key) if key in self._snapshots else None

    def jobs(self) -> list[JobHandle]:
        with self._lock:
            return [self._handles[key] for key in self._snapshots]

    def trained_jobs(self) -> list[JobHandle]:
        """Jobs with a usable model, newest first; damaged entries are left out."""
        with self._lock:
            found = [(s.saved_at, key) for key, s in self._snapshots.items() if s.has_model and key not in self._damaged]
            return [self._handles[key] for _, key in sorted(found, reverse=True)]

    def latest(self) -> JobHandle | None:
        """The most recently saved usable model."""
        trained = self.trained_jobs()
        return trained[0] if trained else None

    def estimate_seconds(self, config: TrainingConfig) -> float | None:
        """Training time for `config` measured from this server's earlier runs of the same
        architecture and batch size (scaled by digits and epochs, the first epoch's compilation
        included); None when nothing comparable ran yet: better no promise than a wrong one."""
        per_digit, first_extra = [], []
        with self._lock:
            snapshots = list(self._snapshots.values())
        for snapshot in snapshots:
            seconds = snapshot.epoch_seconds
            same_kind = (snapshot.config.architecture, snapshot.config.batch_size) == (config.architecture, config.batch_size)
            if not same_kind or not seconds:
                continue
            steady = sorted(seconds[1:])[len(seconds[1:]) // 2] if len(seconds) > 1 else seconds[0]
            per_digit.append(steady / snapshot.config.train_size)
            first_extra.append(max(0.0, seconds[0] - steady))
        if not per_digit:
            return None
        per_digit.sort(), first_extra.sort()
        return per_digit[len(per_digit) // 2] * config.train_size * config.epochs + first_extra[len(first_extra) // 2]

    def most_trained(self) -> JobHandle | None:
        """The default model for a session that has not chosen one: the finished model with the
        most epochs (then the lowest test loss), not whichever was saved last, which may be
        someone's run stopped after a fifth of an epoch. Stopped models only if nothing finished."""
        def rank(handle: JobHandle):
            snapshot = handle.snapshot()
            loss = snapshot.test_metrics.bce if snapshot.test_metrics else float("inf")
            return (snapshot.state is JobState.FINISHED, snapshot.epochs_done, -loss)

        trained = self.trained_jobs()
        return max(trained, key=rank) if trained else None

    def running(self) -> JobHandle | None:
        with self._lock:
            for key, snapshot in self._snapshots.items():
                if snapshot.state in (JobState.RUNNING, JobState.STOPPING):
                    return self._handles[key]
        return None

    @property
    def problems(self) -> list[StoreProblem]:
        """Saved models that cannot be used, each with what to do about it."""
        with self._lock:
            return list(self._damaged.values())

    @property
    def cache_problem(self) -> str | None:
        """Why models would not be kept on disk, or None if they will be (checked every 10 s at most)."""
        checked_at, problem = self._cache_check
        if time.monotonic() - checked_at > 10:
            problem = self.store.writable_problem()
            self._cache_check = (time.monotonic(), problem)
        return problem

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker is not None else None

    # ---- who asked for a job, and so who may stop it ---------------------------------------
    def _note_request(self, key: str, session: str | None) -> None:
        """`session` asks for the job's current or next run. A job that is not active starts a
        new run, so earlier askers and their Stops are forgotten."""
        with self._lock:
            snapshot = self._snapshots.get(key)
            if snapshot is None or not snapshot.is_active:
                self._asked[key], self._withdrawn[key] = set(), set()
            if session is not None:
                self._asked.setdefault(key, set()).add(session)
                self._withdrawn.setdefault(key, set()).discard(session)

    def _asked_by(self, key: str, session: str | None) -> bool:
        with self._lock:
            return session is not None and session in self._asked.get(key, ())

    def _may_stop(self, key: str, session: str | None, pressing: bool) -> StopAnswer:
        """The room's rule: a job stops when every session that asked for it pressed Stop or left."""
        with self._lock:
            if session is None:
                return StopAnswer(stops=True)
            asked, withdrawn = self._asked.get(key, set()), self._withdrawn.setdefault(key, set())
            waiting = [other for other in asked - withdrawn - {session} if self.session_present(other)]
            if session not in asked and waiting:
                return StopAnswer(stops=False, allowed=False, reason=(
                    f"Started by {_sessions(len(waiting))}, who can stop it; press Train with the same "
                    "settings to share this run, and your Stop will count too."))
            if waiting:
                if pressing:
                    withdrawn.add(session)
                return StopAnswer(stops=False, reason=(
                    f"{_sessions(len(waiting), 'other ')} asked for this run too, so it keeps training until "
                    f"{'they press' if len(waiting) > 1 else 'it presses'} Stop or leave{'' if len(waiting) > 1 else 's'}. "
                    + ("Your Stop is counted." if pressing or session in withdrawn else "")).strip())
            return StopAnswer(stops=True)

    def stop_abandoned(self) -> list[str]:
        """Stop runs whose every asker pressed Stop or left, after at least one pressed Stop
        (the last asker leaving after the others' Stops); pages call this as they poll."""
        to_stop = []
        with self._lock:
            for key, withdrawn in self._withdrawn.items():
                snapshot = self._snapshots.get(key)
                if withdrawn and snapshot is not None and snapshot.is_active and not any(
                        self.session_present(other) for other in self._asked.get(key, set()) - withdrawn):
                    to_stop.append(key)
        for key in to_stop:
            self._call("stop", key)
            with self._lock:  # done: later polls need not stop it again
                self._withdrawn[key] = set()
        return to_stop

    # ---- commands ---------------------------------------------------------------------------
    def request(self, config: TrainingConfig, session: str | None = None) -> JobHandle:
        """The job for this config: the running or saved one if any, else a new queued one.
        `session` (a browser session's id) is remembered as one of those who asked for it."""
        with self._lock:
            snapshot = self._snapshots.get(config.key)
            handle = self._handles.setdefault(config.key, JobHandle(self, config))
            damaged = config.key in self._damaged
            if snapshot is not None and snapshot.state is not JobState.FAILED and not damaged:
                if snapshot.is_active:
                    self._note_request(config.key, session)
                return handle
            self._note_request(config.key, session)
            if snapshot is None or damaged:
                self._put(JobSnapshot(key=config.key, config=config, state=JobState.QUEUED, epochs_total=config.epochs))
            else:  # failed: shown as queued again at once, the training process confirms
                self._put(replace(snapshot, state=JobState.QUEUED, error=None, phase=Phase.WAITING))
        if damaged:
            self.delete(config.key)
        worker = self._ensure_worker()
        if worker.ready:  # answered within milliseconds: the snapshot then has its queue place
            self._call("request", config.to_dict())
        else:  # still starting (seconds): the queued snapshot above shows at once, the real one follows
            worker.post("request", config.to_dict())
        return handle

    def delete(self, key: str) -> None:
        """Remove a saved model (a damaged one, say) from disk and from every list."""
        self._call("delete", key)
        with self._lock:
            self._damaged.pop(key, None)
            self._memory_weights.pop(key, None)

    def close(self) -> None:
        """Stop the training process (used by tests and at shutdown)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    # ---- inference --------------------------------------------------------------------------
    def _load_models(self, handle: JobHandle):
        snapshot = handle.snapshot()
        if snapshot is None or snapshot.saved_at is None:
            raise StoreError(f"Model {handle.key} has no trained weights yet.")
        cache_key = (handle.key, snapshot.saved_at)
        with self._lock:
            if cache_key in self._loaded:
                self._loaded.move_to_end(cache_key)
                return self._loaded[cache_key]
            lock = self._load_locks.setdefault(handle.key, threading.Lock())
        with lock:  # one load per model; sessions asking for other models are not held up
            with self._lock:
                if cache_key in self._loaded:
                    return self._loaded[cache_key]
                in_memory = self._memory_weights.get(handle.key)
            try:
                if in_memory is not None and in_memory[0] == snapshot.saved_at:
                    from ae.model.architectures import build_models

                    models = build_models(handle.config.architecture, handle.config.code_size, handle.config.training_options())
                    models.autoencoder.set_weights(in_memory[1])
                else:
                    models = self.store.load_models(handle.config)
            except StoreError as error:
                self._mark_damaged(handle.config, str(error))
                raise
            with self._lock:
                self._loaded[cache_key] = models
                while len(self._loaded) > LOADED_MODELS_KEPT:
                    self._loaded.popitem(last=False)
            return models

    def _mark_damaged(self, config: TrainingConfig, message: str) -> None:
        with self._lock:
            self._damaged[config.key] = StoreProblem(config.key, message, config)

    # ---- the training process ----------------------------------------------------------------
    def _ensure_worker(self) -> LocalWorker:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                worker = LocalWorker(self.dataset.path, self.store.root, self._on_message,
                                     lambda reason: self._on_worker_exit(worker, reason))
                worker.start(self._crash_notes)
                self._worker = worker
            return self._worker

    def _call(self, *command) -> None:
        """Send a command; the answer's snapshots are applied before this returns."""
        try:
            error, _, _ = self._ensure_worker().call(*command)
        except WorkerGone:
            self._ensure_worker()  # a fresh process for the next try
            raise ValueError("The training process restarted; please try again.") from None
        if error:
            raise ValueError(error)

    def _on_message(self, message) -> None:
        kind = message[0]
        if kind == "hello":
            self._on_hello(message[2])
            self._worker_ready_flag(True)
        elif kind == "update":
            _, snapshots, forgotten = message
            with self._lock:
                for snapshot in snapshots:
                    self._put(snapshot)
                for last in forgotten:  # the handle keeps the last snapshot for whoever holds it
                    self._snapshots.pop(last.key, None)
                    if last.key in self._handles:
                        self._handles[last.key]._last = last
        elif kind == "weights":
            _, key, saved_at, weights = message
            with self._lock:
                self._memory_weights[key] = (saved_at, weights)
                while len(self._memory_weights) > MEMORY_MODELS_KEPT:
                    self._memory_weights.popitem(last=False)

    def _worker_ready_flag(self, ready: bool) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.ready = ready

    def _on_hello(self, snapshots: list[JobSnapshot]) -> None:
        """A (new) training process lists its jobs. Failures it cannot know about stay shown, and
        so do requests made while it started (queued here, not yet read by it)."""
        with self._lock:
            kept = {key: s for key, s in self._snapshots.items() if s.state in (JobState.FAILED, JobState.QUEUED)}
            self._snapshots = {}
            for snapshot in snapshots:
                mine = kept.pop(snapshot.key, None)
                self._put(mine if mine is not None and mine.state is JobState.QUEUED else snapshot)
            self._snapshots.update(kept)

    def _put(self, snapshot: JobSnapshot) -> None:
        """Caller holds `_lock`. Versions are numbered here, so they grow across restarts."""
        previous = self._snapshots.get(snapshot.key)
        if snapshot.panel_reconstructions is None and previous is not None and previous.panel_version == snapshot.panel_version:
            snapshot = replace(snapshot, panel_reconstructions=previous.panel_reconstructions)
        self._snapshots[snapshot.key] = replace(snapshot, version=next(self._versions))
        self._handles.setdefault(snapshot.key, JobHandle(self, snapshot.config))

    def _on_worker_exit(self, worker: LocalWorker, reason: str) -> None:
        """The training process died: its jobs fail with the reason; the next request restarts it."""
        log.error("The training process stopped: %s", reason)
        with self._lock:
            if self._worker is worker:
                self._worker = None
            self.worker_exits.append(reason)
            for key, snapshot in list(self._snapshots.items()):
                if not snapshot.is_active:
                    continue
                if snapshot.state is JobState.QUEUED:
                    error = f"The training process stopped ({reason}) before this job started. Press Train to queue it again."
                    resume = checkpoint_epochs(self.store, key)
                else:
                    note = (f"The training process stopped unexpectedly ({reason}) during epoch {snapshot.epoch + 1}. "
                            "Models saved before are intact.")
                    self._crash_notes[key] = note
                    resume = checkpoint_epochs(self.store, key)
                    error = note + (f" Train it again to resume from epoch {resume:g}." if resume else
                                    " Train it again to start over.")
                self._put(replace(snapshot, state=JobState.FAILED, error=error, phase=Phase.DONE, queue_position=None,
                                  eta_seconds=None, resume_from=resume))

    def _read_store(self) -> None:
        """Saved models, read here so pages list them before the training process is up."""
        for record in self.store.records():
            config = record["config"]
            self._put(JobSnapshot(
                key=config.key, config=config, state=JobState.STOPPED if record["stopped_early"] else JobState.FINISHED,
                epochs_done=record["epochs_done"], epochs_total=record["epochs_total"],
                train_loss=tuple(record["train_loss"]), val_loss=tuple(record["val_loss"]), kl_loss=tuple(record["kl_loss"]),
                step_losses=tuple(record["step_losses"]), epoch_ends=tuple(record["epoch_ends"]),
                epoch_seconds=tuple(record["epoch_seconds"]), samples_per_second=record["samples_per_second"],
                test_metrics=record["test_metrics"], training_seconds=record["training_seconds"],
                saved_at=record["saved_at"], phase=Phase.DONE,
            ))
        for problem in self.store.problems:
            self._damaged[problem.key] = problem

    def _snapshot(self, key: str) -> JobSnapshot | None:
        with self._lock:
            return self._snapshots.get(key)


def _sessions(count: int, other: str = "") -> str:
    return f"1 {other}session" if count == 1 else f"{count} {other}sessions"


_managers: dict[str, JobManager] = {}
_managers_lock = threading.Lock()


def get_manager(dataset: Dataset | None = None, cache_dir=None) -> JobManager:
    """The process-wide manager for a dataset (default: the configured data file)."""
    dataset = dataset or load_dataset()
    store = ModelStore.for_dataset(dataset, cache_dir)
    key = str(store.root)
    with _managers_lock:
        if key not in _managers:
            _managers[key] = JobManager(dataset, store)
        return _managers[key]
