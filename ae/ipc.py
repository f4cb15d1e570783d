"""The process layer that the training service and the map service both stand on.

Heavy work never runs in the web server's interpreter. By default each service is a child of
the one web process, `python -m <module>`, that connects back over a Unix socket in a private
folder. For a big class (`python -m ae.serve`) each service runs once, listening in a shared
services folder (`AE_SERVICES`), and every web process attaches to it as one of its `Clients`.
Either way both sides prove they hold a random key before anything else is read. Messages are the small
dataclasses of each service's protocol module (`ae.training.protocol`, `ae.maps.protocol`),
dispatched by type through `dispatcher`, read by the one `receive_loop`.

Not multiprocessing's "spawn": under Streamlit, `__main__` is the app script, and spawn would
run the whole app again in the child.
"""
from __future__ import annotations

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
from multiprocessing.connection import (AuthenticationError, Client, Connection, Listener, answer_challenge,
                                        deliver_challenge)
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 30.0  # the child connects back before it loads anything heavy
KEY_VARIABLE = "AE_CHILD_KEY"
SERVICES_VARIABLE = "AE_SERVICES"  # a services folder: web processes attach to the services there
ROOT = Path(__file__).resolve().parent.parent  # the child runs `python -m` from here


class ServiceGone(RuntimeError):
    """A service's process stopped (or never started) before it answered."""


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


def start_child(module: str, arguments: dict, what: str,
                environment: dict[str, str] | None = None) -> tuple[subprocess.Popen, Connection]:
    """Start `python -m <module> <json arguments>` (with `environment`'s variables on top of ours)
    and wait (30 s at most) for it to connect back."""
    folder = Path(tempfile.mkdtemp(prefix="ae-child-"))
    address = str(folder / "socket")
    authkey = os.urandom(32)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(1)
    server.settimeout(CONNECT_TIMEOUT)
    environment = dict(os.environ, **(environment or {}), **{KEY_VARIABLE: authkey.hex()})
    process = subprocess.Popen([sys.executable, "-m", module, json.dumps({"address": address, **arguments})],
                               env=environment, cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        accepted, _ = server.accept()
    except OSError as error:
        process.kill()
        raise ServiceGone(f"The {what} did not start ({error}).") from None
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)
    accepted.settimeout(None)
    connection = Connection(accepted.detach())
    deliver_challenge(connection, authkey)
    answer_challenge(connection, authkey)
    return process, connection


def child_arguments() -> dict:
    """The JSON arguments `start_child` gave this process."""
    return json.loads(sys.argv[1])


def connect_back() -> Connection:
    """A child's first act: connect to its parent, before loading anything heavy."""
    return Client(child_arguments()["address"], family="AF_UNIX", authkey=bytes.fromhex(os.environ.pop(KEY_VARIABLE)))


def dispatcher(handlers: dict[type, Callable]) -> Callable[[object], None]:
    """One function that hands each message to the handler for its type."""
    def dispatch(message) -> None:
        handler = handlers.get(type(message))
        if handler is None:
            raise TypeError(f"No handler for {type(message).__name__} messages.")
        handler(message)

    return dispatch


def receive_loop(connection: Connection, dispatch: Callable[[object], None]) -> None:
    """Read and dispatch messages until the other side hangs up; then return."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        dispatch(message)


def serve(name: str, serve_client: Callable[[Connection], None], parent: Connection | None) -> None:
    """A service's main loop. A child (`parent` given) serves the web process that started it,
    and exits when it is gone: so is its reason to run. A shared service (`ae.serve`) serves
    every web process that attaches to `<services folder>/<name>.sock`, for as long as it runs."""
    if parent is not None:
        serve_client(parent)
        os._exit(0)
    accept_forever(listen(Path(child_arguments()["services_folder"]), name), serve_client)


def end_process(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Terminate a child, and kill it if it has not gone within `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# ---- shared services: one service, several web processes ---------------------------------------
def services_folder() -> Path | None:
    """The shared services folder this web process attaches to; None: it starts its own children."""
    value = os.environ.get(SERVICES_VARIABLE)
    return Path(value) if value else None


def make_services_folder() -> Path:
    """A private folder (0700) with a random key (0600) for the services' sockets."""
    folder = Path(tempfile.mkdtemp(prefix="ae-services-"))
    key_file = folder / "key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(os.urandom(32))
    return folder


def listen(folder: Path, name: str) -> Listener:
    """A service's listening socket, `<folder>/<name>.sock`; `accept` checks the folder's key.
    A socket file left by a predecessor that was killed (nobody accepts on it) is replaced, so
    ae.serve can start the service again; a live one is never taken over."""
    path = Path(folder) / f"{name}.sock"
    if path.exists() and not _accepting(path):
        path.unlink(missing_ok=True)
    return Listener(str(path), family="AF_UNIX", authkey=(Path(folder) / "key").read_bytes())


def _accepting(path: Path) -> bool:
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:  # refused: a stale file
        return False
    finally:
        probe.close()


def connect(folder: Path, name: str) -> Connection:
    """Attach to the service listening in `folder`; ServiceGone, in words, if it cannot be reached."""
    try:
        return Client(str(Path(folder) / f"{name}.sock"), family="AF_UNIX",
                      authkey=(Path(folder) / "key").read_bytes())
    except (OSError, EOFError, AuthenticationError) as error:
        raise ServiceGone(f"The {name} service is not reachable ({error}).") from None


def accept_forever(listener: Listener, serve_client: Callable[[Connection], None]) -> None:
    """Serve each web process that attaches on a thread of its own; a wrong key is turned away."""
    while True:
        try:
            connection = listener.accept()
        except (AuthenticationError, EOFError, ConnectionError):
            continue
        threading.Thread(target=serve_client, args=(connection,), name="ae-client", daemon=True).start()


class Clients:
    """The web processes attached to a service: a message to one, or to every one.

    A client whose socket fails is dropped (its receive loop ends on its own)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._connections: list[Connection] = []

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._connections.append(connection)

    def remove(self, connection: Connection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)

    def __len__(self) -> int:
        return len(self._connections)

    def send(self, connection: Connection, message) -> None:
        with self._lock:
            self._send(connection, message)

    def broadcast(self, message, besides: Connection | None = None) -> None:
        with self._lock:
            for connection in list(self._connections):
                if connection is not besides:
                    self._send(connection, message)

    def _send(self, connection: Connection, message) -> None:
        try:
            connection.send(message)
        except (OSError, ValueError):
            if connection in self._connections:
                self._connections.remove(connection)
