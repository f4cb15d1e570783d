"""The training process: `python -m ae.training.process`, started by the web side's backend.

It owns the queue and TensorFlow training (`ae.training.trainer`), answers the commands of
`ae.training.protocol`, and publishes the snapshots of jobs that changed about once a second
(at once for a new state, an epoch's end or a stop), so every watching session draws the same
version and a figure is built once for all of them.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
from pathlib import Path

from ae import ipc
from ae.training.protocol import Call, Delete, Extend, Hello, Reply, Request, Resume, Stop, Update, Weights

log = logging.getLogger(__name__)
PUBLISH_INTERVAL = 1.0  # the rate pages poll at


class TrainingService:
    """The training process's side of the connection: commands in, snapshots out."""

    def __init__(self, connection, data_path: str, store_root: str, crash_notes: dict):
        from ae.model.data import load_dataset
        from ae.storage.store import ModelStore
        from ae.training.trainer import Trainer

        self.connection = connection
        self._send_lock = threading.Lock()
        self._publish_lock = threading.Lock()  # one batch at a time, so panel bookkeeping stays right
        self._changed, self._urgent = threading.Event(), threading.Event()
        self._sent_panels: dict[str, int] = {}
        self._versions = itertools.count(1)
        self.trainer = Trainer(load_dataset(data_path), ModelStore(Path(store_root)), on_change=self._on_change,
                               crash_notes=crash_notes,
                               send_weights=lambda key, saved_at, weights: self.send(Weights(key, saved_at, weights)))
        self._handlers = {Request: self._request, Stop: self._stop, Extend: self._extend, Resume: self._resume,
                          Delete: self._delete}

    def send(self, message) -> None:
        with self._send_lock:
            self.connection.send(message)

    def run(self) -> None:
        with self._publish_lock:
            self.send(Hello(os.getpid(), self._pending()[0]))
        threading.Thread(target=self._publish_forever, name="ae-publisher", daemon=True).start()
        ipc.serve_parent(self.connection, ipc.dispatcher({Call: self._answer}))

    # ---- publishing ------------------------------------------------------------------------
    def _on_change(self, urgent: bool) -> None:
        self._changed.set()
        if urgent:
            self._urgent.set()

    def _pending(self) -> tuple[list, list]:
        """Changed snapshots, without the panel arrays the web side already has."""
        snapshots, forgotten = self.trainer.snapshots_to_publish(lambda: next(self._versions))
        light = []
        for snapshot in snapshots:
            if self._sent_panels.get(snapshot.key) == snapshot.panel_version:
                snapshot = snapshot.with_changes(panel_reconstructions=None)
            self._sent_panels[snapshot.key] = snapshot.panel_version
            light.append(snapshot)
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
                    self.send(Update(snapshots, forgotten))

    # ---- commands ---------------------------------------------------------------------------
    def _answer(self, call: Call) -> None:
        error = None
        try:
            self._handlers[type(call.command)](call.command)
        except (ValueError, TypeError) as problem:
            error = str(problem)
        except Exception as problem:  # answer in words; never leave a caller waiting
            log.exception("Command %s failed", type(call.command).__name__)
            error = f"{type(problem).__name__}: {problem}"
        with self._publish_lock:
            snapshots, forgotten = self._pending()
            self.send(Reply(call.call_id, error, snapshots, forgotten))

    def _request(self, command: Request) -> None:
        from ae.model.config import TrainingConfig

        self.trainer.request(TrainingConfig.from_dict(command.config))

    def _job(self, key: str):
        job = self.trainer.get(key)
        if job is None:
            raise ValueError("This model is no longer known to the training process; press Train again.")
        return job

    def _stop(self, command: Stop) -> None:
        self._job(command.key).stop()

    def _extend(self, command: Extend) -> None:
        self._job(command.key).extend(command.epochs)

    def _resume(self, command: Resume) -> None:
        self._job(command.key).resume_to(command.total_epochs)

    def _delete(self, command: Delete) -> None:
        self.trainer.delete(command.key)


def main() -> None:
    connection = ipc.connect_back()  # `import ae` already set the thread counts TensorFlow reads
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s training-process %(levelname)s %(message)s")
    settings = ipc.child_arguments()
    TrainingService(connection, settings["data_path"], settings["store_root"], settings["crash_notes"]).run()


if __name__ == "__main__":
    main()
