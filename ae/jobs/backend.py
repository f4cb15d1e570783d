"""Where jobs train, as the web side's `JobManager` sees it: the `TrainingBackend` interface.

A backend carries the commands of `ae.training.protocol` to a training service and hands every
message it sends back to `on_message`; `on_exit` hears, in words, that the service died.
`LocalTrainingBackend` runs the web process's own training process (the default);
`SharedTrainingBackend` attaches to the one training service of a big-class server
(`ae.serve`), shared by every web process. `default_backend` picks by `AE_SERVICES`. A cluster
backend implements the same five methods with the same messages, and neither the manager nor
any page changes.
"""
from __future__ import annotations

import itertools
import logging
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

from ae import ipc
from ae.ipc import ServiceGone
from ae.training.protocol import HEARTBEAT_SECONDS, HUNG_AFTER_SECONDS, Call, Command, Heartbeat, Hello, Reply, Update, Weights

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0  # a command sent while the service starts waits this long (it loads the data)
COMMAND_SECONDS = 5.0  # once it runs, no page waits longer than this for an answer


class ServiceBusy(ValueError):
    """The service is running but did not answer in time: a sentence for the page, not a crash."""


class TrainingBackend(ABC):
    """A training service reachable from this web process."""

    def __init__(self, on_message: Callable[[object], None], on_exit: Callable[[str], None]):
        self.on_message = on_message  # Hello, Update (replies arrive as updates too), Weights
        self.on_exit = on_exit  # called once, with the reason in words, if the service dies
        self.ready = False  # the service said Hello: commands are answered within milliseconds
        self.last_heard = time.monotonic()  # any message, heartbeats included (`ae.training.protocol.Heartbeat`)
        self.hung_for: float | None = None  # the seconds of silence after which the watchdog ended the service

    @abstractmethod
    def start(self, crash_notes: dict[str, str]) -> None:
        """Start or attach to the service; `crash_notes` explain runs a crash cut short."""

    @abstractmethod
    def call(self, command: Command) -> Reply:
        """Send a command and wait for its reply; raises ServiceGone if none can come."""

    @abstractmethod
    def post(self, command: Command) -> None:
        """Send a command without waiting: its effect arrives as an ordinary update."""

    @abstractmethod
    def is_alive(self) -> bool: ...

    @abstractmethod
    def close(self) -> None:
        """Stop the service (jobs in flight are lost; their checkpoints stay)."""

    @property
    def pid(self) -> int | None:
        """The service's process id where it has one on this machine."""
        return None


class LocalTrainingBackend(TrainingBackend):
    """One training process (`python -m ae.training.process`) on this machine."""

    def __init__(self, data_path: Path, store_root: Path, on_message, on_exit):
        super().__init__(on_message, on_exit)
        self.data_path, self.store_root = Path(data_path), Path(store_root)
        self.process = None
        self._connection = None
        self._send_lock = threading.Lock()
        self._calls: dict[int, dict] = {}
        self._call_ids = itertools.count(1)
        self._closing = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, crash_notes: dict[str, str]) -> None:
        arguments = {"data_path": str(self.data_path), "store_root": str(self.store_root), "crash_notes": dict(crash_notes)}
        self.process, self._connection = ipc.start_child("ae.training.process", arguments, "training process")
        threading.Thread(target=self._receive, name="ae-training-receiver", daemon=True).start()
        threading.Thread(target=self._watch, name="ae-training-watchdog", daemon=True).start()

    def _watch(self) -> None:
        """Liveness, not only death: a service silent for HUNG_AFTER_SECONDS (SIGSTOPped, hung)
        is killed, so its jobs fail in words with their checkpoints, and a fresh one starts."""
        while self.is_alive() and not self._closing:
            time.sleep(1.0)
            silent = time.monotonic() - self.last_heard
            if self.ready and silent > HUNG_AFTER_SECONDS and self.is_alive() and not self._closing:
                log.error("The training service has been silent for %.0f s: ending it", silent)
                self.hung_for = silent
                self._kill()
                return

    def _kill(self) -> None:
        self.process.kill()

    def call(self, command: Command) -> Reply:
        """The reply within COMMAND_SECONDS once the service runs (START_TIMEOUT while it starts);
        else ServiceBusy, saying whether it is silent (and will be restarted) or only busy."""
        call_id = next(self._call_ids)
        slot = {"event": threading.Event(), "answer": None}
        self._calls[call_id] = slot
        sent = time.monotonic()
        try:
            self._send(Call(call_id, command))
            while not slot["event"].wait(0.2):
                waited = time.monotonic() - sent
                if not self.ready and waited > START_TIMEOUT:
                    raise ServiceGone("The training process did not start in time.")
                if self.ready and waited > COMMAND_SECONDS:
                    raise ServiceBusy(self._busy_sentence(waited))
            if slot["answer"] is None:
                raise ServiceGone("The training process stopped before it answered.")
            return slot["answer"]
        finally:
            self._calls.pop(call_id, None)

    def _busy_sentence(self, waited: float) -> str:
        silent = time.monotonic() - self.last_heard
        if silent > 2 * HEARTBEAT_SECONDS:  # no heartbeat: not busy, stopped
            return (f"The training service has not answered for {waited:.0f} s and has been silent for {silent:.0f} s: "
                    f"it is stopped or hung, and is ended and started afresh once silent for {HUNG_AFTER_SECONDS:.0f} s. "
                    "Try again in a few seconds; nothing was changed.")
        return (f"The training service is busy and did not answer within {waited:.0f} s; nothing was changed. "
                "Try again in a moment.")

    def post(self, command: Command) -> None:
        self._send(Call(0, command))

    def _send(self, message) -> None:
        try:
            with self._send_lock:
                self._connection.send(message)
        except (OSError, ValueError, AttributeError) as error:
            raise ServiceGone(f"The training process is not running ({error}).") from None

    def _on_hello(self, hello: Hello) -> None:
        self.on_message(hello)
        self.ready = True

    def _dispatcher(self):
        """Every message counts as a sign of life; heartbeats carry nothing else."""
        handle = ipc.dispatcher({Hello: self._on_hello, Reply: self._on_reply, Update: self.on_message,
                                 Weights: self.on_message, Heartbeat: lambda beat: None})

        def dispatch(message) -> None:
            self.last_heard = time.monotonic()
            handle(message)

        return dispatch

    def _on_reply(self, reply: Reply) -> None:
        self.on_message(Update(reply.snapshots, reply.forgotten))
        slot = self._calls.get(reply.call_id)
        if slot is not None:
            slot["answer"] = reply
            slot["event"].set()

    def _receive(self) -> None:
        ipc.receive_loop(self._connection, self._dispatcher())
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if not self._closing:
            self.on_exit(self._hung_words() or ipc.describe_exit(self.process.returncode))
        for slot in list(self._calls.values()):
            slot["event"].set()  # answer None: the caller raises ServiceGone

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _hung_words(self) -> str | None:
        return f"it was silent for {self.hung_for:.0f} s (stopped or hung) and was ended" if self.hung_for else None

    def close(self) -> None:
        self._closing = True
        ipc.end_process(self.process)
        if self._connection is not None:
            self._connection.close()


class SharedTrainingBackend(LocalTrainingBackend):
    """The training service of a big-class server: started and supervised by `ae.serve`, not by
    this web process, which attaches to its socket and leaves it running when it closes."""

    def __init__(self, data_path: Path, store_root: Path, on_message, on_exit, folder: Path | None = None):
        super().__init__(data_path, store_root, on_message, on_exit)
        self.folder = folder or ipc.services_folder()
        self._attached = False
        self._service_pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self._service_pid

    kills_when_hung = True  # the service runs on this machine under ae.serve, which starts it again

    def start(self, crash_notes: dict[str, str]) -> None:
        self._connection = ipc.connect(self.folder, "training")
        self._start_receiving("the shared training service went away; ae.serve starts it again")

    def _start_receiving(self, gone: str) -> None:
        self._attached = True
        threading.Thread(target=self._receive, args=(gone,), name="ae-training-receiver", daemon=True).start()
        if self.kills_when_hung:
            threading.Thread(target=self._watch, name="ae-training-watchdog", daemon=True).start()

    def _kill(self) -> None:
        """The shared service is ae.serve's child on this machine: killed by its id, ae.serve
        starts it again (every web process watching may try; the first one does it)."""
        import os
        import signal

        if self._service_pid is not None:
            try:
                os.kill(self._service_pid, signal.SIGKILL)
            except OSError:
                pass

    def _on_hello(self, hello: Hello) -> None:
        self._service_pid = hello.pid
        super()._on_hello(hello)

    def _receive(self, gone: str) -> None:
        ipc.receive_loop(self._connection, self._dispatcher())
        self._attached = False
        if not self._closing:
            self.on_exit(self._hung_words() or gone)
        for slot in list(self._calls.values()):
            slot["event"].set()

    def is_alive(self) -> bool:
        return self._attached

    def close(self) -> None:
        self._closing = True
        self._attached = False
        if self._connection is not None:
            self._connection.close()


def default_backend(data_path: Path, store_root: Path, on_message, on_exit) -> TrainingBackend:
    """The Ray cluster's service when `AE_RAY_ADDRESS` is set; under `ae.serve`, the shared
    service; else this web process's own training process."""
    from ae import cluster

    if cluster.ray_address() is not None:
        from ae.jobs.ray_backend import RayTrainingBackend

        return RayTrainingBackend(data_path, store_root, on_message, on_exit)
    if ipc.services_folder() is not None:
        return SharedTrainingBackend(data_path, store_root, on_message, on_exit)
    return LocalTrainingBackend(data_path, store_root, on_message, on_exit)
