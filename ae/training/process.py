"""The training service: `python -m ae.training.process`, training away from the web server.

It owns the queue and TensorFlow training (`ae.training.trainer`), answers the commands of
`ae.training.protocol`, and publishes the snapshots of jobs that changed about once a second
(at once for a new state, an epoch's end or a stop), so every watching session draws the same
version and a figure is built once for all of them.

Two ways to run: a child of one web process (the default; it ends with its parent), or the
shared service of a big-class server (`ae.serve`), listening in a services folder, where every
web process attaches as a client and outlives none of them. Either way it keeps who asked for
each run (`ae.askers`), so a Stop follows the room's rule whichever web process it came through.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from pathlib import Path

from ae import ipc
from ae.askers import Askers, StopAnswer
from ae.permissions import refuse_change, refuse_delete, refuse_lecturer_only, refuse_retrain
from ae.roles import Visitor
from ae.training.fair_queue import Owner
from ae.training.protocol import (HEARTBEAT_SECONDS, Call, ClearQueue, Delete, Departed, Extend, Heartbeat, Hello,
                                  Pin, Reply, Request, Resume, Room, RoomLeft, RunNext, Stop, Update, Weights)
from ae.training.snapshot import ACTIVE_STATES, JobState

log = logging.getLogger(__name__)
PUBLISH_INTERVAL = 1.0  # the rate pages poll at
DEFAULT_STUDENT_JOBS = 4  # a student's jobs queued or running at once (AE_STUDENT_JOBS), a sweep counted as its jobs


def student_job_cap() -> int:
    from ae.runtime import env_setting

    return env_setting("AE_STUDENT_JOBS") or DEFAULT_STUDENT_JOBS


def _visitor(command) -> Visitor:
    session = getattr(command, "session", None)
    return Visitor(session, lecturer=session is None or bool(getattr(command, "lecturer", False)))


class TrainingService:
    """The training process's side: commands in from every attached web process, snapshots out."""

    def __init__(self, data_path: str, store_root: str, crash_notes: dict, slots: list | None = None):
        from ae.storage.store import ModelStore
        from ae.training.slots import local_slots
        from ae.training.trainer import Trainer

        self.clients = ipc.Clients()
        self._publish_lock = threading.RLock()  # one batch at a time, so panel bookkeeping stays right
        self._changed, self._urgent = threading.Event(), threading.Event()
        self._sent_panels: dict[str, int] = {}
        self._versions = itertools.count(1)
        self._askers: dict[str, Askers] = {}  # job key -> who asked for its current run
        self._departed: set[str] = set()  # sessions that left while they held a run
        self._owners: dict[str, set[str]] = {}  # job key -> sessions that asked for the model, still here
        self._last_used: dict[str, float] = {}  # job key -> when it was last asked for (eviction's clock)
        self._sessions_of: dict[object, set[str]] = {}  # client -> the sessions it spoke for
        slots = slots if slots is not None else local_slots(data_path, store_root)
        from ae.storage.pins import Pins

        store = ModelStore(Path(store_root))
        self.pins = Pins(store)
        self.trainer = Trainer(store, slots, on_change=self._on_change, crash_notes=crash_notes,
                               send_weights=lambda key, saved_at, weights: self.clients.broadcast(
                                   Weights(key, saved_at, weights)), on_run_end=self._after_run)
        self._handlers = {Request: self._request, Stop: self._stop, Extend: self._extend, Resume: self._resume,
                          Delete: self._delete, Departed: self._departed_sessions, Pin: self._pin,
                          ClearQueue: self._clear_queue, RunNext: self._run_next, Room: self._room}
        threading.Thread(target=self._publish_forever, name="ae-publisher", daemon=True).start()
        threading.Thread(target=self._beat_forever, name="ae-heartbeat", daemon=True).start()

    def _beat_forever(self) -> None:
        """A heartbeat a second to every web process: silence means this process is stopped or hung."""
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            self.clients.broadcast(Heartbeat())

    def serve_client(self, connection) -> None:
        """One web process, from its Hello to its departure (`ipc.serve` runs one per web process)."""
        self.attach(connection)
        ipc.receive_loop(connection, lambda call: self.answer(connection, call))
        self.detach(connection)

    def attach(self, connection) -> None:
        """A web process arrives: it is told every job (Hello), then every change."""
        with self._publish_lock:  # no update may slip between its Hello and its first update
            snapshots = [self._annotated(s) for s in self.trainer.all_snapshots(lambda: next(self._versions))]
            for snapshot in snapshots:
                self._sent_panels.setdefault(snapshot.key, snapshot.panel_version)
            self.clients.send(connection, Hello(os.getpid(), snapshots))
            self.clients.add(connection)
            self._sessions_of[connection] = set()

    def detach(self, connection) -> None:
        """A web process left: its sessions left with it."""
        self.clients.remove(connection)
        with self._publish_lock:
            gone = self._sessions_of.pop(connection, set())
        if gone:
            self._departed_sessions(Departed(tuple(gone)))
            self._on_change(True)

    # ---- publishing ------------------------------------------------------------------------
    def _on_change(self, urgent: bool) -> None:
        self._changed.set()
        if urgent:
            self._urgent.set()

    def _annotated(self, snapshot):
        """The snapshot with who asked for its run and is still here (for Stop buttons), who
        asked for the model, and whether it is pinned (for the other buttons)."""
        askers = self._askers.get(snapshot.key)
        owners = frozenset(self._owners.get(snapshot.key, ()))
        return snapshot.with_changes(askers=askers.present_copy(self._present) if askers is not None else None,
                                     owners=owners, pinned=snapshot.key in self.pins)

    def _pending(self) -> tuple[list, list]:
        """Changed snapshots, without the panel arrays every web process already has."""
        snapshots, forgotten = self.trainer.snapshots_to_publish(lambda: next(self._versions))
        light = []
        for snapshot in snapshots:
            if self._sent_panels.get(snapshot.key) == snapshot.panel_version:
                snapshot = snapshot.with_changes(panel_reconstructions=None)
            self._sent_panels[snapshot.key] = snapshot.panel_version
            light.append(self._annotated(snapshot))
        for last in forgotten:
            self._askers.pop(last.key, None)
        return light, forgotten

    def _publish_forever(self) -> None:
        while True:
            self._changed.wait()
            self._urgent.wait(PUBLISH_INTERVAL)
            self._changed.clear()
            self._urgent.clear()
            with self._publish_lock:
                snapshots, forgotten = self._pending()
                if snapshots or forgotten:
                    self.clients.broadcast(Update(snapshots, forgotten))

    # ---- commands ---------------------------------------------------------------------------
    def answer(self, connection, call: Call) -> None:
        error, result = None, None
        with self._publish_lock:  # commands and askers change one at a time
            session = getattr(call.command, "session", None)
            if session is not None and connection in self._sessions_of:
                self._sessions_of[connection].add(session)
            try:
                result = self._handlers[type(call.command)](call.command)
            except (ValueError, TypeError) as problem:
                error = str(problem)
            except Exception as problem:  # answer in words; never leave a caller waiting
                log.exception("Command %s failed", type(call.command).__name__)
                error = f"{type(problem).__name__}: {problem}"
            snapshots, forgotten = self._pending()
            if snapshots or forgotten:
                self.clients.broadcast(Update(snapshots, forgotten), besides=connection)
            self.clients.send(connection, Reply(call.call_id, error, snapshots, forgotten, result))

    def _present(self, session: str) -> bool:
        return session not in self._departed

    def _asked(self, key: str, session: str | None) -> None:
        """`session` asks for the job's current or next run. A job that is not active starts a new
        run, so earlier askers and their Stops are forgotten."""
        askers = self._askers.setdefault(key, Askers())
        job = self.trainer.get(key)
        if job is None or job.state not in ACTIVE_STATES:
            askers.restart()
        self._last_used[key] = time.time()
        if session is not None:
            self._departed.discard(session)
            self._owners.setdefault(key, set()).add(session)
        askers.add(session)

    def _check_cap(self, visitor: Visitor) -> None:
        """A student over the cap of jobs queued or running is refused, in words."""
        if visitor.lecturer:
            return
        cap, held = student_job_cap(), self.trainer.held_by(visitor.session)
        if held >= cap:
            ahead = self.trainer.ahead_of_next(visitor.session)
            raise ValueError(
                f"You already have {held} model{'s' if held != 1 else ''} queued or training, the most a student may "
                f"have at once ({ahead} job{'s' if ahead != 1 else ''} ahead of your next one in the queue). "
                "Wait for one to finish, or stop one, then ask again.")

    def _room(self, command: Room) -> RoomLeft:
        visitor = _visitor(command)
        if visitor.lecturer:
            return RoomLeft(None, 0 if visitor.session is None else self.trainer.queued_count(), None)
        cap = student_job_cap()
        return RoomLeft(max(0, cap - self.trainer.held_by(visitor.session)),
                        self.trainer.ahead_of_next(visitor.session), cap)

    def _touch(self, key: str) -> None:
        job = self.trainer.get(key)
        if job is not None:
            self.trainer.mark_dirty(job)

    def _request(self, command: Request) -> None:
        from ae.model.config import TrainingConfig

        config = TrainingConfig.from_dict(command.config)
        visitor = _visitor(command)
        job = self.trainer.get(config.key)
        if job is None or job.state is JobState.FAILED:  # a new run: the rules and the cap apply
            refusal = refuse_retrain(config.key in self.pins, visitor)  # a pinned key without a job: damaged
            if refusal:
                raise ValueError(refusal)
            self._check_cap(visitor)
        self._asked(config.key, command.session)
        self.trainer.request(config, Owner(visitor.session, visitor.lecturer))
        if command.pin and visitor.lecturer:
            self.pins.set(config.key, True)
        self._touch(config.key)

    def _job(self, key: str):
        job = self.trainer.get(key)
        if job is None:
            raise ValueError("This model is no longer known to the training process; press Train again.")
        return job

    def _stop(self, command: Stop) -> StopAnswer:
        askers = self._askers.setdefault(command.key, Askers())
        if _visitor(command).lecturer:  # the lecturer overrides the askers rule
            answer = StopAnswer(stops=True)
            askers.clear_stops()
        else:
            answer = askers.stop(command.session, self._present, pressing=True)
        job = self.trainer.get(command.key)
        if answer.stops and job is not None and job.state in ACTIVE_STATES:
            job.stop()
        self._touch(command.key)
        return answer

    def _may_change(self, key: str, command) -> Visitor:
        visitor = _visitor(command)
        refusal = refuse_change(key in self.pins, self._owners.get(key, set()), visitor)
        if refusal:
            raise ValueError(refusal)
        self._check_cap(visitor)
        return visitor

    def _extend(self, command: Extend) -> None:
        job = self._job(command.key)
        visitor = self._may_change(command.key, command)
        self._asked(command.key, command.session)
        job.extend(command.epochs, Owner(visitor.session, visitor.lecturer))
        self._touch(command.key)

    def _resume(self, command: Resume) -> None:
        job = self._job(command.key)
        visitor = self._may_change(command.key, command)
        self._asked(command.key, command.session)
        job.resume_to(command.total_epochs, Owner(visitor.session, visitor.lecturer))
        self._touch(command.key)

    def _delete(self, command: Delete) -> None:
        refusal = refuse_delete(command.key in self.pins, self._owners.get(command.key, set()), _visitor(command))
        if refusal:
            raise ValueError(refusal)
        self.trainer.delete(command.key)
        if command.key in self.pins:
            self.pins.set(command.key, False)
        self._owners.pop(command.key, None)

    def _pin(self, command: Pin) -> None:
        refusal = refuse_lecturer_only("pin", _visitor(command))
        if refusal:
            raise ValueError(refusal)
        self._job(command.key)
        self.pins.set(command.key, command.pinned)
        self._touch(command.key)

    def _clear_queue(self, command: ClearQueue) -> int:
        refusal = refuse_lecturer_only("clear_queue", _visitor(command))
        if refusal:
            raise ValueError(refusal)
        return self.trainer.clear_queue()

    def _run_next(self, command: RunNext) -> None:
        refusal = refuse_lecturer_only("run_next", _visitor(command))
        if refusal:
            raise ValueError(refusal)
        self.trainer.run_next(self._job(command.key))

    def _after_run(self, job) -> None:
        """A run ended: if the model cache is over its quota (AE_CACHE_QUOTA_MB), unpinned models
        unused for long enough go, least recently used first (`ae.storage.eviction`)."""
        from ae.storage.eviction import evict_unused

        active = {key for key in self._owners.keys() | self._askers.keys()
                  if (other := self.trainer.get(key)) is not None and other.state in ACTIVE_STATES}
        try:
            lines = evict_unused(self.trainer.store, self.pins.keys(), active | {job.key}, dict(self._last_used))
        except (ValueError, OSError) as error:
            log.warning("No eviction: %s", error)
            return
        for line in lines:
            log.warning("%s", line)
        if lines:
            self.trainer.forget_removed()

    def _departed_sessions(self, command: Departed) -> list[str]:
        """Sessions left: runs whose every asker pressed Stop or left, after one pressed Stop
        (the last asker closing the tab after the others' Stops), stop now."""
        with self._publish_lock:
            self._departed.update(command.sessions)
            stopped = []
            for key, askers in self._askers.items():
                job = self.trainer.get(key)
                if job is None or job.state not in ACTIVE_STATES:
                    continue
                if askers.abandoned(self._present):
                    job.stop()
                    askers.clear_stops()
                    stopped.append(key)
                if askers.asked & set(command.sessions):
                    self._touch(key)
            for key, owners in list(self._owners.items()):  # bounded: only sessions still here own models
                if owners & set(command.sessions):
                    owners.difference_update(command.sessions)
                    if not owners:
                        del self._owners[key]
                    self._touch(key)
            still_asking = set().union(*(askers.asked for askers in self._askers.values()))
            self._departed &= still_asking  # bounded: only sessions some run still lists
            return stopped


def main() -> None:
    settings = ipc.child_arguments()
    shared = settings.get("services_folder")
    connection = None if shared else ipc.connect_back()  # `import ae` already set TensorFlow's thread counts
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s training-service %(levelname)s %(message)s")
    service = TrainingService(settings["data_path"], settings["store_root"], settings.get("crash_notes", {}))
    ipc.serve("training", service.serve_client, connection)


if __name__ == "__main__":
    main()
