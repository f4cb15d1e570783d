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
from pathlib import Path

from ae import ipc
from ae.askers import Askers, StopAnswer
from ae.training.protocol import (Call, Delete, Departed, Extend, Hello, Reply, Request, Resume, Stop, Update,
                                  Weights)
from ae.training.snapshot import ACTIVE_STATES

log = logging.getLogger(__name__)
PUBLISH_INTERVAL = 1.0  # the rate pages poll at


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
        self._sessions_of: dict[object, set[str]] = {}  # client -> the sessions it spoke for
        slots = slots if slots is not None else local_slots(data_path, store_root)
        self.trainer = Trainer(ModelStore(Path(store_root)), slots, on_change=self._on_change, crash_notes=crash_notes,
                               send_weights=lambda key, saved_at, weights: self.clients.broadcast(
                                   Weights(key, saved_at, weights)))
        self._handlers = {Request: self._request, Stop: self._stop, Extend: self._extend, Resume: self._resume,
                          Delete: self._delete, Departed: self._departed_sessions}
        threading.Thread(target=self._publish_forever, name="ae-publisher", daemon=True).start()

    def serve_client(self, connection) -> None:
        """One web process, from its Hello to its departure (`ipc.serve` runs one per web process)."""
        self.attach(connection)
        ipc.receive_loop(connection, lambda call: self.answer(connection, call))
        self.detach(connection)

    def attach(self, connection) -> None:
        """A web process arrives: it is told every job (Hello), then every change."""
        with self._publish_lock:  # no update may slip between its Hello and its first update
            snapshots = [self._with_askers(s) for s in self.trainer.all_snapshots(lambda: next(self._versions))]
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

    def _with_askers(self, snapshot):
        """The snapshot with who asked for its run and is still here (for Stop buttons)."""
        askers = self._askers.get(snapshot.key)
        if askers is None:
            return snapshot
        return snapshot.with_changes(askers=askers.present_copy(self._present))

    def _pending(self) -> tuple[list, list]:
        """Changed snapshots, without the panel arrays every web process already has."""
        snapshots, forgotten = self.trainer.snapshots_to_publish(lambda: next(self._versions))
        light = []
        for snapshot in snapshots:
            if self._sent_panels.get(snapshot.key) == snapshot.panel_version:
                snapshot = snapshot.with_changes(panel_reconstructions=None)
            self._sent_panels[snapshot.key] = snapshot.panel_version
            light.append(self._with_askers(snapshot))
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
        if session is not None:
            self._departed.discard(session)
        askers.add(session)

    def _touch(self, key: str) -> None:
        job = self.trainer.get(key)
        if job is not None:
            self.trainer.mark_dirty(job)

    def _request(self, command: Request) -> None:
        from ae.model.config import TrainingConfig

        config = TrainingConfig.from_dict(command.config)
        self._asked(config.key, command.session)
        self.trainer.request(config)
        self._touch(config.key)

    def _job(self, key: str):
        job = self.trainer.get(key)
        if job is None:
            raise ValueError("This model is no longer known to the training process; press Train again.")
        return job

    def _stop(self, command: Stop) -> StopAnswer:
        answer = self._askers.setdefault(command.key, Askers()).stop(command.session, self._present, pressing=True)
        job = self.trainer.get(command.key)
        if answer.stops and job is not None and job.state in ACTIVE_STATES:
            job.stop()
        self._touch(command.key)
        return answer

    def _extend(self, command: Extend) -> None:
        job = self._job(command.key)
        self._asked(command.key, command.session)
        job.extend(command.epochs)
        self._touch(command.key)

    def _resume(self, command: Resume) -> None:
        job = self._job(command.key)
        self._asked(command.key, command.session)
        job.resume_to(command.total_epochs)
        self._touch(command.key)

    def _delete(self, command: Delete) -> None:
        self.trainer.delete(command.key)

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
