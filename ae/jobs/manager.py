"""The web process's view of training: what pages call. It never trains.

`JobManager` keeps the latest snapshot of every job, sent by the training service through its
backend (`ae.jobs.backend`), and forwards requests, Stop and Continue to it. Asking twice for the same config returns the
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
import math
import threading
import time
import uuid
from dataclasses import replace
from typing import Callable

from ae.analysis.replay import final_panel
from ae.askers import Askers, StopAnswer
from ae.ipc import ServiceGone, dispatcher
from ae.jobs.backend import TrainingBackend, default_backend
from ae.lru import LRU
from ae.model.history import History
from ae.model.config import TrainingConfig
from ae.model.data import Dataset, load_dataset
from ae.storage.checkpoint import checkpoint_epochs
from ae.storage.store import ModelStore, StoreError, StoreProblem
from ae.permissions import refuse_change, refuse_delete, refuse_lecturer_only
from ae.roles import Visitor, roles_in_use
from ae.training.estimates import run_seconds
from ae.training.protocol import (ClearQueue, Delete, Departed, Extend, Hello, Pin, Request, Resume, Room, RoomLeft,
                                  RunNext, Stop, Update, Weights)
from ae.training.snapshot import JobSnapshot, JobState, Phase, continued_total

log = logging.getLogger(__name__)
LOADED_MODELS_KEPT = 4  # Keras models held for the pages' inference, least recently used dropped
MEMORY_MODELS_KEPT = 4  # models the disk refused, kept in memory instead
DEPARTURES_EVERY = 3.0  # seconds between checks for sessions that closed their tabs
WEB_ID = uuid.uuid4().hex[:8]  # this web process: session ids sent to a shared service are WEB_ID:session


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
        current = self.manager.snapshot(self.key)
        if current is not None:
            self._last = current
        return self._last

    def remember(self, last: JobSnapshot) -> None:
        """The job was removed: whoever holds this handle keeps its last snapshot."""
        self._last = last

    @property
    def saved_at(self) -> float | None:
        return self.snapshot().saved_at

    def stop(self, session: str | None = None, lecturer: bool | None = None) -> StopAnswer:
        """Stop within one execution step (16 steps); the model trained so far is saved.

        A job shared by a room stops only when every session that asked for it has pressed
        Stop or left (`ae.askers`): `session` names who presses (None: the engine itself).
        The lecturer's Stop stops any run.
        """
        return self.manager.stop(self.key, session, lecturer)

    def stop_permission(self, session: str | None, lecturer: bool | None = None) -> StopAnswer:
        """What pressing Stop would do for this session, without pressing it (for the button)."""
        return self.manager.stop_permission(self.key, session, lecturer)

    def asked_by(self, session: str | None) -> bool:
        """Whether this session asked for this job (trained, continued or resumed it)."""
        return self.manager.asked_by(self.key, session)

    def extend(self, extra_epochs: int, session: str | None = None, lecturer: bool | None = None) -> None:
        """Queue `extra_epochs` more epochs on the model trained so far; ValueError says why not."""
        self.manager.continue_job(self, session, extra_epochs=extra_epochs, lecturer=lecturer)

    def resume_to(self, total_epochs: float, session: str | None = None, lecturer: bool | None = None) -> None:
        """Train on until the model has `total_epochs` in all, e.g. the planned run after a stop."""
        self.manager.continue_job(self, session, total_epochs=total_epochs, lecturer=lecturer)

    def models(self):
        """The saved model, for pages' inference. Raises StoreError if none or the file is bad."""
        return self.manager.load_models(self)

    def __repr__(self) -> str:
        return f"JobHandle({self.key})"


class JobManager:
    """All jobs of one dataset and model store, as the web process sees them."""

    def __init__(self, dataset: Dataset, store: ModelStore, start_worker: bool = True,
                 backend: Callable[..., TrainingBackend] = default_backend):
        self.dataset = dataset
        self.store = store
        self._make_backend = backend  # (data_path, store_root, on_message, on_exit) -> TrainingBackend
        self._lock = threading.RLock()
        self._snapshots: dict[str, JobSnapshot] = {}
        self._handles: dict[str, JobHandle] = {}
        self._damaged: dict[str, StoreProblem] = {}
        self._versions = itertools.count(1)
        self._crash_notes: dict[str, str] = {}
        self._memory_weights: LRU[str, tuple[float, list]] = LRU(MEMORY_MODELS_KEPT)
        self._loaded: LRU[tuple, object] = LRU(LOADED_MODELS_KEPT)
        self._backend: TrainingBackend | None = None
        self._cache_check: tuple[float, str | None] = (-1e9, None)
        self._disk_use: tuple[float, str] = (-1e9, "")
        self.worker_exits: list[str] = []  # each unexpected end of the training process, in words
        self._spoke_for: set[str] = set()  # sessions this process sent commands for, until they leave
        self._listeners: list[Callable[[], None]] = []
        self._closed = threading.Event()
        self.session_present = lambda session: True  # pages set this: is a browser session still open?
        self._read_store()
        self._dispatch = dispatcher({Hello: self._on_hello, Update: self._on_update, Weights: self._on_weights})
        if start_worker:
            try:
                self._ensure_backend()
            except ServiceGone as error:  # the next request tries again
                log.error("%s", error)
            threading.Thread(target=self._watch_departures, name="ae-departures", daemon=True).start()

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
        architecture and batch size (`ae.training.estimates`); None when nothing comparable ran yet."""
        with self._lock:
            measured = [(snapshot.config, snapshot.history) for snapshot in self._snapshots.values()]
        return run_seconds(config, config.epochs, measured)

    def most_trained(self) -> JobHandle | None:
        """The default model for a session that has not chosen one: the finished model with the
        most epochs (then the lowest test loss), not whichever was saved last, which may be
        someone's run stopped after a fifth of an epoch. Stopped models only if nothing finished."""
        def rank(handle: JobHandle):
            snapshot = handle.snapshot()
            loss = snapshot.test_metrics.bce if snapshot.test_metrics else float("inf")
            return (snapshot.state is JobState.FINISHED, snapshot.history.epochs_done, -loss)

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
        """The training process's id, where the backend has one on this machine."""
        return self._backend.pid if self._backend is not None else None

    def snapshot(self, key: str) -> JobSnapshot | None:
        with self._lock:
            return self._snapshots.get(key)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` is called after every change of the jobs' snapshots (e.g. the live feed)."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a listener's failure must not stop updates
                log.exception("A snapshot listener failed")

    # ---- who asked for a job, and so who may stop it (ae.askers) ------------------------------
    # The training service keeps the askers, so the rule holds across web processes; each
    # snapshot carries those still present, and the buttons are decided from it here.
    @staticmethod
    def _qualified(session: str | None) -> str | None:
        """The id the service knows this session by: unique across web processes."""
        return None if session is None else f"{WEB_ID}:{session}"

    def _speak_for(self, session: str | None) -> str | None:
        """`_qualified`, remembering the session so its departure is reported."""
        if session is not None:
            with self._lock:
                self._spoke_for.add(session)
        return self._qualified(session)

    def _askers_of(self, key: str) -> Askers:
        snapshot = self.snapshot(key)
        if snapshot is None or not snapshot.is_active or snapshot.askers is None:
            return Askers()
        return snapshot.askers

    def asked_by(self, key: str, session: str | None) -> bool:
        return self._askers_of(key).includes(self._qualified(session))

    def stop_permission(self, key: str, session: str | None, lecturer: bool | None = None) -> StopAnswer:
        """What pressing Stop would do for this session, without pressing it (for the button)."""
        if self._stops_anything(session, lecturer):
            return StopAnswer(stops=True)
        self.report_departures()
        return self._askers_of(key).stop(self._qualified(session), lambda other: True, pressing=False)

    def stop(self, key: str, session: str | None = None, lecturer: bool | None = None) -> StopAnswer:
        """`session` presses Stop: the job stops if nobody else present still wants it, or at
        once if the lecturer presses."""
        self.report_departures()
        snapshot = self.snapshot(key)
        if snapshot is None or not snapshot.is_active:
            return StopAnswer(stops=True)
        return self._call(Stop(key, self._speak_for(session), self._stops_anything(session, lecturer)))

    def _stops_anything(self, session: str | None, lecturer: bool | None) -> bool:
        """The lecturer's Stop overrides the askers rule, where roles are in use: on a server
        without a lecturer key the room's rule holds for everyone, as it did before roles."""
        return session is not None and roles_in_use() and self._visitor(session, lecturer).lecturer

    # ---- roles (ae.roles, ae.permissions) ---------------------------------------------------
    def _visitor(self, session: str | None, lecturer: bool | None) -> Visitor:
        """Who acts, as the service knows them. `lecturer=None`: as configured, i.e. everyone is
        the lecturer unless a lecturer key is set."""
        if session is None:
            return Visitor(None, True)
        return Visitor(self._qualified(session), (not roles_in_use()) if lecturer is None else lecturer)

    def change_refusal(self, key: str, session: str | None, lecturer: bool | None = None) -> str | None:
        """Why this session may not Continue or Resume the model, or None."""
        snapshot = self.snapshot(key)
        if snapshot is None:
            return None
        return refuse_change(snapshot.pinned, snapshot.owners, self._visitor(session, lecturer))

    def delete_refusal(self, key: str, session: str | None, lecturer: bool | None = None) -> str | None:
        """Why this session may not delete the model (a damaged one has no snapshot: nobody owns it)."""
        snapshot = self.snapshot(key)
        if snapshot is not None and snapshot.is_active:
            return "This model is training; stop it before deleting it."
        pinned, owners = (snapshot.pinned, snapshot.owners) if snapshot is not None else (False, frozenset())
        return refuse_delete(pinned, owners, self._visitor(session, lecturer))

    def is_lecturer(self, session: str | None, lecturer: bool | None = None) -> bool:
        return self._visitor(session, lecturer).lecturer

    def room_left(self, session: str | None, lecturer: bool | None = None) -> RoomLeft:
        """How many more jobs this session may queue, and how many jobs are ahead of its next."""
        visitor = self._visitor(session, lecturer)
        return self._call(Room(visitor.session, visitor.lecturer))

    def pin(self, key: str, pinned: bool, session: str | None, lecturer: bool | None = None) -> None:
        visitor = self._lecturer_only("pin", session, lecturer)
        self._call(Pin(key, pinned, self._speak_for(session), visitor.lecturer))

    def clear_queue(self, session: str | None, lecturer: bool | None = None) -> int:
        """The lecturer empties the queue; returns how many jobs were taken out."""
        visitor = self._lecturer_only("clear_queue", session, lecturer)
        return self._call(ClearQueue(self._speak_for(session), visitor.lecturer))

    def run_next(self, key: str, session: str | None, lecturer: bool | None = None) -> None:
        visitor = self._lecturer_only("run_next", session, lecturer)
        self._call(RunNext(key, self._speak_for(session), visitor.lecturer))

    def _lecturer_only(self, action: str, session: str | None, lecturer: bool | None) -> Visitor:
        visitor = self._visitor(session, lecturer)
        refusal = refuse_lecturer_only(action, visitor)
        if refusal:
            raise ValueError(refusal)
        return visitor

    def disk_use_line(self) -> str:
        """The model cache's disk use in one line, for the lecturer (measured every 10 s at most)."""
        from ae.storage.disk_use import disk_use_line
        from ae.storage.eviction import eviction_settings

        measured_at, line = self._disk_use
        if time.monotonic() - measured_at > 10:
            with self._lock:
                pinned = {key for key, snapshot in self._snapshots.items() if snapshot.pinned}
            try:
                quota = eviction_settings().quota_bytes
            except ValueError as error:
                quota, line = None, f" ({error})"
            else:
                line = ""
            line = disk_use_line(self.store, pinned, quota) + line
            self._disk_use = (time.monotonic(), line)
        return line

    def queued_jobs(self) -> list[JobHandle]:
        """Queued jobs in the order they will run."""
        with self._lock:
            queued = [(s.queue_position or 0, key) for key, s in self._snapshots.items() if s.state is JobState.QUEUED]
            return [self._handles[key] for _, key in sorted(queued)]

    def report_departures(self) -> list[str]:
        """Tell the training service which sessions closed their tabs; returns the runs that
        stopped because of it (every asker left after one pressed Stop). A thread calls this
        every few seconds; Stop calls it first, so a tab closed a moment ago no longer counts."""
        with self._lock:
            gone = [session for session in self._spoke_for if not self.session_present(session)]
            self._spoke_for.difference_update(gone)
        if not gone:
            return []
        return self._call(Departed(tuple(self._qualified(session) for session in gone))) or []

    def _watch_departures(self) -> None:
        while not self._closed.wait(DEPARTURES_EVERY):
            try:
                self.report_departures()
            except ValueError as error:  # the service is restarting: the next check tells it
                log.warning("Sessions that left were not reported: %s", error)

    # ---- commands ---------------------------------------------------------------------------
    def request(self, config: TrainingConfig, session: str | None = None, lecturer: bool | None = None,
                pin: bool = False) -> JobHandle:
        """The job for this config: the running or saved one if any, else a new queued one.
        `session` (a browser session's id) is remembered as one of those who asked for it; a
        student's new run counts against their cap (refused in words, ValueError). `pin`: the
        lecturer's (or the engine's) model is pinned as it is asked for."""
        visitor = self._visitor(session, lecturer)
        with self._lock:
            snapshot = self._snapshots.get(config.key)
            handle = self._handles.setdefault(config.key, JobHandle(self, config))
            damaged = config.key in self._damaged
            share = snapshot is not None and snapshot.state is not JobState.FAILED and not damaged
        if share:
            if snapshot.is_active and session is not None:  # the run is this session's too
                self._call(Request(config.to_dict(), self._speak_for(session), visitor.lecturer))
            if pin and visitor.lecturer and not snapshot.pinned:
                self._call(Pin(config.key, True, self._speak_for(session), True))
            return handle
        if not visitor.lecturer:  # the service may refuse: ask it before showing the job as queued
            self._call(Request(config.to_dict(), self._speak_for(session), False))
            with self._lock:
                self._damaged.pop(config.key, None)  # trained over: the new save replaces the entry
            self._notify()
            return handle
        with self._lock:
            if snapshot is None or damaged:
                self._put(JobSnapshot(key=config.key, config=config, state=JobState.QUEUED,
                                      history=History(epochs_total=config.epochs)))
            else:  # failed: shown as queued again at once, the training process confirms
                self._put(replace(snapshot, state=JobState.QUEUED, error=None, phase=Phase.WAITING))
        if damaged:
            self.delete(config.key)
        request = Request(config.to_dict(), self._speak_for(session), True, pin)
        backend = self._backend_or_refuse()
        if backend.ready:  # answered within milliseconds: the snapshot then has its queue place
            self._call(request)
        else:  # still starting (seconds): the queued snapshot above shows at once, the real one follows
            backend.post(request)
        self._notify()
        return handle

    def continue_job(self, job: JobHandle, session: str | None, extra_epochs: int | None = None,
                     total_epochs: float | None = None, lecturer: bool | None = None) -> None:
        """Continue +`extra_epochs`, or Resume to `total_epochs` in all; ValueError says why not."""
        key, snapshot = job.key, job.snapshot()
        continued_total(snapshot.state, snapshot.has_model, snapshot.resume_from, snapshot.history.epochs_done,
                        extra_epochs=extra_epochs, total_epochs=total_epochs)  # refused here at once, in words
        asker, role = self._speak_for(session), self._visitor(session, lecturer).lecturer
        self._call(Extend(key, extra_epochs, asker, role) if extra_epochs is not None
                   else Resume(key, float(total_epochs), asker, role))

    def own_copy(self, job: JobHandle, session: str | None, total_epochs: float,
                 lecturer: bool | None = None) -> JobHandle:
        """A model this session may not change, trained as its own copy: the same settings for
        `total_epochs` epochs, from scratch (a different key, so the original stays as it is)."""
        epochs = max(1, math.ceil(total_epochs - 1e-9))
        return self.request(job.config.with_changes(epochs=epochs), session, lecturer)

    def delete(self, key: str, session: str | None = None, lecturer: bool | None = None) -> None:
        """Remove a saved model (a damaged one, say) from disk and from every list."""
        visitor = self._visitor(session, lecturer)
        self._call(Delete(key, self._speak_for(session), visitor.lecturer))
        with self._lock:
            self._damaged.pop(key, None)
        self._memory_weights.pop(key)

    def close(self) -> None:
        """Stop the training service, or detach from a shared one (used by tests and at shutdown)."""
        self._closed.set()
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    # ---- inference --------------------------------------------------------------------------
    def load_models(self, handle: JobHandle):
        """A job's saved model for the pages' inference, loaded once per save and kept (a few)."""
        snapshot = handle.snapshot()
        if snapshot is None or snapshot.saved_at is None:
            raise StoreError(f"Model {handle.key} has no trained weights yet.")

        def load():
            in_memory = self._memory_weights.get(handle.key)
            try:
                if in_memory is not None and in_memory[0] == snapshot.saved_at:
                    from ae.model.architectures import build_models

                    models = build_models(handle.config.architecture, handle.config.code_size, handle.config.training_options())
                    models.autoencoder.set_weights(in_memory[1])
                    return models
                return self.store.load_models(handle.config)
            except StoreError as error:
                self._mark_damaged(handle.config, str(error))
                raise

        return self._loaded.get_or_build((handle.key, snapshot.saved_at), load)

    def _mark_damaged(self, config: TrainingConfig, message: str) -> None:
        with self._lock:
            self._damaged[config.key] = StoreProblem(config.key, message, config)

    # ---- the training service ----------------------------------------------------------------
    def _ensure_backend(self) -> TrainingBackend:
        with self._lock:
            if self._backend is None or not self._backend.is_alive():
                backend = self._make_backend(self.dataset.path, self.store.root, self._dispatch,
                                             lambda reason: self._on_backend_exit(backend, reason))
                backend.start(self._crash_notes)
                self._backend = backend
            return self._backend

    def _backend_or_refuse(self) -> TrainingBackend:
        try:
            return self._ensure_backend()
        except ServiceGone as error:
            raise ValueError(f"{error} Please try again in a few seconds.") from None

    def _call(self, command):
        """Send a command and return its result; the answer's snapshots are applied before this returns."""
        backend = self._backend_or_refuse()
        try:
            reply = backend.call(command)  # ServiceBusy (a ValueError, in words) if it does not answer in time
        except ServiceGone as gone:
            again = "Please try again in a few seconds."
            if not backend.is_alive():
                try:
                    self._ensure_backend()  # a fresh process for the next try
                    again = "A fresh training process is starting; please try again in a few seconds."
                except ServiceGone:
                    pass
            raise ValueError(f"{gone} {again}") from None
        if reply.error:
            raise ValueError(reply.error)
        return reply.result

    def _on_update(self, update: Update) -> None:
        with self._lock:
            for snapshot in update.snapshots:
                self._put(snapshot)
            for last in update.forgotten:
                self._snapshots.pop(last.key, None)
                if last.key in self._handles:
                    self._handles[last.key].remember(last)
        self._notify()

    def _on_weights(self, message: Weights) -> None:
        self._memory_weights.put(message.key, (message.saved_at, message.weights))

    def _on_hello(self, hello: Hello) -> None:
        """A (new) training process lists its jobs. Failures it cannot know about stay shown, and
        so do requests made while it started (queued here, not yet read by it)."""
        snapshots = hello.snapshots
        with self._lock:
            kept = {key: s for key, s in self._snapshots.items() if s.state in (JobState.FAILED, JobState.QUEUED)}
            self._snapshots = {}
            for snapshot in snapshots:
                mine = kept.pop(snapshot.key, None)
                self._put(mine if mine is not None and mine.state is JobState.QUEUED else snapshot)
            self._snapshots.update(kept)
        self._notify()

    def _put(self, snapshot: JobSnapshot) -> None:
        """Caller holds `_lock`. Versions are numbered here, so they grow across restarts."""
        previous = self._snapshots.get(snapshot.key)
        if snapshot.panel_reconstructions is None and previous is not None and previous.panel_version == snapshot.panel_version:
            snapshot = replace(snapshot, panel_reconstructions=previous.panel_reconstructions)
        self._snapshots[snapshot.key] = replace(snapshot, version=next(self._versions))
        self._handles.setdefault(snapshot.key, JobHandle(self, snapshot.config))

    def _on_backend_exit(self, backend: TrainingBackend, reason: str) -> None:
        """The training process died: its jobs fail with the reason; the next request restarts it."""
        log.error("The training process stopped: %s", reason)
        with self._lock:
            if self._backend is backend:
                self._backend = None
            self.worker_exits.append(reason)
            for key, snapshot in list(self._snapshots.items()):
                if not snapshot.is_active:
                    continue
                if snapshot.state is JobState.QUEUED:
                    error = f"The training process stopped ({reason}) before this job started. Press Train to queue it again."
                    resume = checkpoint_epochs(self.store, key)
                else:
                    when = {Phase.EVALUATING: "while it evaluated the model", Phase.SAVING: "while it saved the model"}.get(
                        snapshot.phase, f"during epoch {snapshot.epoch + 1}")
                    note = f"The training process stopped unexpectedly ({reason}) {when}. Models saved before are intact."
                    self._crash_notes[key] = note
                    resume = checkpoint_epochs(self.store, key)
                    error = note + (f" Train it again to resume from epoch {resume:g}." if resume else
                                    " Train it again to start over.")
                self._put(replace(snapshot, state=JobState.FAILED, error=error, phase=Phase.DONE, queue_position=None,
                                  eta_seconds=None, resume_from=resume))
        self._notify()
        if backend.hung_for:  # ended for its silence: a fresh one starts now, not at the next command
            threading.Thread(target=self._start_again, name="ae-training-restart", daemon=True).start()

    def _start_again(self) -> None:
        try:
            self._ensure_backend()
        except ServiceGone as error:  # the next command tries again
            log.error("The training service did not start again: %s", error)

    def _read_store(self) -> None:
        """Saved models, read here so pages list them before the training process is up."""
        for record in self.store.records():
            config = record["config"]
            panel = final_panel(self.store.entry_dir(config.key), record["history"].epochs_done)  # as the service reads it
            self._put(JobSnapshot(
                key=config.key, config=config, state=JobState.STOPPED if record["stopped_early"] else JobState.FINISHED,
                history=record["history"], test_metrics=record["test_metrics"], saved_at=record["saved_at"],
                phase=Phase.DONE, **({} if panel is None else dict(panel_epoch=panel[0], panel_reconstructions=panel[1],
                                                                   panel_version=1)),
            ))
        for problem in self.store.problems:
            self._damaged[problem.key] = problem


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
