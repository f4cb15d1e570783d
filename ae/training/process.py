"""The training process and the web process's end of the pipe to it.

Why a process: a training thread inside the Streamlit server shares the interpreter lock with
every session's script runs; with one browser watching, an epoch took ~10x longer. Here the
web process only sends small commands and receives snapshots; TensorFlow training runs in a
process started with "spawn" (TensorFlow does not survive fork).

The boundary is `TrainingBackend`: made with `on_message` and `on_exit` callbacks, it has
`start(crash_notes)`, `call(*command)` (waits for the answer), `post(*command)` and `close()`. `LocalWorker` implements it with one local process; a backend that trains on a
cluster (Ray, say) would implement the same three calls and the same messages, and pages
would not change.

Messages from the training process:
- ("hello", pid, [snapshots])           all jobs it knows, once, at start
- ("update", [snapshots], [forgotten])  jobs that changed (panel arrays only when new), and the
                                        last snapshots of jobs removed
- ("reply", call_id, error, [snapshots], [forgotten])  the answer to one command (call_id 0: posted)
- ("weights", key, saved_at, [arrays])  a model the disk refused, kept in memory instead
Commands: ("request", config_dict), ("stop", key), ("extend", key, epochs), ("resume", key, total epochs),
("delete", key).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Callable, Protocol

log = logging.getLogger(__name__)

# Progress goes out once a second, the rate pages poll at, so every watching session draws
# the same version and a figure is built once for all of them; state changes go out at once.
PUBLISH_INTERVAL = 1.0
CALL_TIMEOUT = 60.0  # a command waits this long for its answer (covers the process's start)
CONNECT_TIMEOUT = 30.0  # the new process connects back before it loads anything heavy


class WorkerGone(RuntimeError):
    """The training process stopped before it answered."""


class TrainingBackend(Protocol):
    def start(self, crash_notes: dict[str, str]) -> None: ...
    def call(self, *command) -> tuple[str | None, list, list]: ...
    def post(self, *command) -> None: ...
    def close(self) -> None: ...


def describe_exit(exitcode: int | None) -> str:
    """A process's end in words: 'killed by signal 9 (SIGKILL: out of memory, or killed by hand)'."""
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hint = {"SIGKILL": ": out of memory, or killed by hand", "SIGABRT": ": TensorFlow aborted",
                "SIGSEGV": ": a crash in native code"}.get(name, "")
        return f"killed by signal {number} ({name}{hint})"
    return f"it exited with code {exitcode}"


def start_connected_process(module: str, arguments: dict, what: str) -> tuple[subprocess.Popen, Connection]:
    """Start `python -m <module> <json arguments>` and wait (30 s at most) for it to connect back.

    Not multiprocessing's "spawn": under Streamlit, `__main__` is the app script, and spawn
    would run the whole app again in the child. The child connects over a Unix socket in a
    private folder (`connect_back`) and both sides prove they hold a random key.
    """
    folder = Path(tempfile.mkdtemp(prefix="ae-worker-"))
    address = str(folder / "socket")
    authkey = os.urandom(32)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(1)
    server.settimeout(CONNECT_TIMEOUT)
    environment = dict(os.environ, AE_WORKER_KEY=authkey.hex())
    process = subprocess.Popen([sys.executable, "-m", module, json.dumps({"address": address, **arguments})],
                               env=environment, cwd=Path(__file__).resolve().parents[2], stdin=subprocess.DEVNULL)
    try:
        accepted, _ = server.accept()
    except OSError as error:
        process.kill()
        raise WorkerGone(f"The {what} did not start ({error}).") from None
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)
    accepted.settimeout(None)
    connection = Connection(accepted.detach())
    deliver_challenge(connection, authkey)
    answer_challenge(connection, authkey)
    return process, connection


class LocalWorker:
    """One training process on this machine, and the thread that reads what it sends."""

    def __init__(self, data_path: Path, store_root: Path, on_message: Callable, on_exit: Callable[[str], None]):
        self.data_path = Path(data_path)
        self.store_root = Path(store_root)
        self.on_message = on_message
        self.on_exit = on_exit
        self.process = None
        self._connection = None
        self._send_lock = threading.Lock()
        self._calls: dict[int, dict] = {}
        self._call_ids = itertools.count(1)
        self._closing = False
        self.ready = False  # set by the owner when the process's hello arrives

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, crash_notes: dict[str, str]) -> None:
        """Start `python -m ae.training.process` and wait (30 s at most) for it to connect back."""
        arguments = {"data_path": str(self.data_path), "store_root": str(self.store_root), "crash_notes": dict(crash_notes)}
        self.process, self._connection = start_connected_process("ae.training.process", arguments, "training process")
        threading.Thread(target=self._receive, name="ae-worker-receiver", daemon=True).start()

    def call(self, *command) -> tuple[str | None, list, list]:
        """Send a command and wait for its answer: (error or None, snapshots, forgotten keys)."""
        call_id = next(self._call_ids)
        slot = {"event": threading.Event(), "answer": None}
        self._calls[call_id] = slot
        try:
            self.send((command[0], call_id, *command[1:]))
            if not slot["event"].wait(CALL_TIMEOUT):
                raise WorkerGone("The training process did not answer in time.")
            if slot["answer"] is None:
                raise WorkerGone("The training process stopped before it answered.")
            return slot["answer"]
        finally:
            self._calls.pop(call_id, None)

    def post(self, *command) -> None:
        """Send a command without waiting: its answer arrives as an ordinary update."""
        self.send((command[0], 0, *command[1:]))

    def send(self, message) -> None:
        try:
            with self._send_lock:
                self._connection.send(message)
        except (OSError, ValueError, AttributeError) as error:
            raise WorkerGone(f"The training process is not running ({error}).") from None

    def _receive(self) -> None:
        connection = self._connection
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            if message[0] == "reply":
                _, call_id, error, snapshots, forgotten = message
                self.on_message(("update", snapshots, forgotten))
                slot = self._calls.get(call_id)
                if slot is not None:
                    slot["answer"] = (error, snapshots, forgotten)
                    slot["event"].set()
            else:
                self.on_message(message)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if not self._closing:
            self.on_exit(describe_exit(self.process.returncode))
        for slot in list(self._calls.values()):
            slot["event"].set()  # answer None: the caller raises WorkerGone

    def close(self) -> None:
        """Stop the training process (jobs in flight are lost; their checkpoints stay)."""
        self._closing = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._connection is not None:
            self._connection.close()

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


# ---- inside the training process ------------------------------------------------------------
def connect_back(address: str) -> Connection:
    """The training process's first act: connect to the web process, before loading TensorFlow."""
    return Client(address, family="AF_UNIX", authkey=bytes.fromhex(os.environ.pop("AE_WORKER_KEY")))


def worker_main(connection, data_path: str, store_root: str, crash_notes: dict) -> None:
    """Entry point of the training process: train, publish snapshots, answer commands."""
    import ae  # noqa: F401  (thread settings before TensorFlow loads)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s training-process %(levelname)s %(message)s")
    from ae.model.config import TrainingConfig
    from ae.model.data import load_dataset
    from ae.storage.store import ModelStore
    from ae.training.trainer import Trainer

    send_lock = threading.Lock()

    def send(message) -> None:
        with send_lock:
            connection.send(message)

    changed, urgent = threading.Event(), threading.Event()
    dataset = load_dataset(data_path)
    def on_change(is_urgent: bool) -> None:
        changed.set()
        if is_urgent:
            urgent.set()

    trainer = Trainer(dataset, ModelStore(Path(store_root)), on_change=on_change, crash_notes=crash_notes,
                      send_weights=lambda key, saved_at, weights: send(("weights", key, saved_at, weights)))
    sent_panels: dict[str, int] = {}
    counter = itertools.count(1)

    def pending() -> tuple[list, list]:
        """Changed snapshots, without the panel arrays the web process already has."""
        snapshots, forgotten = trainer.snapshots_to_publish(lambda: next(counter))
        light = []
        for snapshot in snapshots:
            if sent_panels.get(snapshot.key) == snapshot.panel_version:
                snapshot = snapshot.with_changes(panel_reconstructions=None)
            sent_panels[snapshot.key] = snapshot.panel_version
            light.append(snapshot)
        return light, forgotten

    publish_lock = threading.Lock()  # one batch at a time, so panel bookkeeping stays right
    with publish_lock:
        send(("hello", os.getpid(), pending()[0]))

    def publish_forever() -> None:
        while True:
            changed.wait()
            urgent.wait(PUBLISH_INTERVAL)
            changed.clear()
            urgent.clear()
            with publish_lock:
                snapshots, forgotten = pending()
                if snapshots or forgotten:
                    send(("update", snapshots, forgotten))

    threading.Thread(target=publish_forever, name="ae-publisher", daemon=True).start()

    def handle(command: str, *arguments) -> None:
        if command == "request":
            trainer.request(TrainingConfig.from_dict(arguments[0]))
            return
        job = trainer.get(arguments[0])
        if command == "delete":
            trainer.delete(arguments[0])
        elif job is None:
            raise ValueError("This model is no longer known to the training process; press Train again.")
        elif command == "stop":
            job.stop()
        elif command == "extend":
            job.extend(arguments[1])
        elif command == "resume":
            job.resume_to(arguments[1])
        else:
            raise ValueError(f"Unknown command {command!r}.")

    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            os._exit(0)  # the web process is gone: so is our reason to run
        command, call_id, *arguments = message
        error = None
        try:
            handle(command, *arguments)
        except (ValueError, TypeError) as problem:
            error = str(problem)
        except Exception as problem:  # answer in words; never leave a caller waiting
            log.exception("Command %s failed", command)
            error = f"{type(problem).__name__}: {problem}"
        with publish_lock:
            snapshots, forgotten = pending()
            send(("reply", call_id, error, snapshots, forgotten))


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    worker_main(connect_back(settings["address"]), settings["data_path"], settings["store_root"], settings["crash_notes"])
