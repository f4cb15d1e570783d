"""The process layer that the training service and the map service both stand on.

Heavy work never runs in the web server's interpreter: each service is a child process,
`python -m <module>`, that connects back over a Unix socket in a private folder, and both
sides prove they hold a random key before anything else is read. Messages are the small
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
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 30.0  # the child connects back before it loads anything heavy
KEY_VARIABLE = "AE_CHILD_KEY"
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


def start_child(module: str, arguments: dict, what: str) -> tuple[subprocess.Popen, Connection]:
    """Start `python -m <module> <json arguments>` and wait (30 s at most) for it to connect back."""
    folder = Path(tempfile.mkdtemp(prefix="ae-child-"))
    address = str(folder / "socket")
    authkey = os.urandom(32)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(1)
    server.settimeout(CONNECT_TIMEOUT)
    environment = dict(os.environ, **{KEY_VARIABLE: authkey.hex()})
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


def serve_parent(connection: Connection, dispatch: Callable[[object], None]) -> None:
    """A child's main loop: when its parent is gone, so is its reason to run."""
    receive_loop(connection, dispatch)
    os._exit(0)


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
