"""Where the training service trains: its slots, each one job at a time.

One job cannot use a big machine: XLA on CPU runs this model's small matrix products on about
one core (measured in issue 10). So the service trains S jobs at once, each in a slot of its
own with its own thread budget: on this machine a `LocalSlot`, a process (`python -m
ae.training.slots`) running an `ae.training.worker.Worker`; on a Ray cluster a
`ae.training.ray_slots.RaySlot`. A slot that dies fails only its own job (`SlotLost`), and
the next job gets a fresh process. `slot_plan` picks S and the threads per job from the
machine's cores and memory; `AE_TRAINING_SLOTS` and `AE_THREADS_PER_JOB` override it.
"""
from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from ae import ipc
from ae.runtime import env_setting
from ae.training.protocol import HEARTBEAT_SECONDS, Heartbeat, Progress, RunEnded, RunOrder, StopRun, Weights

log = logging.getLogger(__name__)
SLOT_HUNG_SECONDS = 30  # a slot's heartbeat runs through compiles (the longest gap measured: see the README)


def slot_hung_seconds() -> float:
    return float(env_setting("AE_SLOT_HUNG_SECONDS") or SLOT_HUNG_SECONDS)

SLOTS_VARIABLE = "AE_TRAINING_SLOTS"
THREADS_VARIABLE = "AE_THREADS_PER_JOB"
# A slot's process grows with every config it trains (XLA's compiled code, kept models): 2.2 GB
# after 4 dense configs, 3.0 GB after 8 (`python -m ae.bench --queue`). So a process past
# RECYCLE_BYTES after a run is replaced by a fresh one (TensorFlow loads again, ~5 s of one core,
# while the slot is idle), and a slot is planned at that plus one run's growth.
RECYCLE_BYTES = 2_000_000_000
RECYCLE_VARIABLE = "AE_SLOT_RECYCLE_MB"  # overrides RECYCLE_BYTES, in megabytes
SLOT_MEMORY_BYTES = 2_500_000_000
RESERVED_BYTES = 2_000_000_000  # the web processes, the map service and the system keep this much


class SlotLost(RuntimeError):
    """The slot's process or node died during a run; the message says how, in words."""


@dataclass(frozen=True)
class SlotPlan:
    slots: int
    threads_per_job: int
    why: str  # in words, for the log and the README's sizing


def slot_plan(cpus: int | None = None, available_bytes: int | None = None) -> SlotPlan:
    """S slots and threads per job: one slot per core (a job uses about one), as many as
    memory allows without swapping; the environment's settings win."""
    import psutil

    cpus = cpus or os.cpu_count() or 1
    available = available_bytes if available_bytes is not None else psutil.virtual_memory().available
    by_memory = max(1, (available - RESERVED_BYTES) // SLOT_MEMORY_BYTES)
    configured = env_setting(SLOTS_VARIABLE)
    slots = configured or int(min(cpus, by_memory))
    threads = env_setting(THREADS_VARIABLE) or max(1, cpus // slots)
    why = (f"{slots} slot(s) from {SLOTS_VARIABLE}" if configured else
           f"{slots} slot(s): {cpus} core(s), memory for {by_memory} at {SLOT_MEMORY_BYTES / 1e9:.1f} GB each")
    return SlotPlan(slots, threads, f"{why}; {threads} thread(s) per job")


class Slot(ABC):
    """One place where one job trains at a time."""

    name: str

    def prepare(self) -> None:
        """Get ready for the next run (start a process ahead of time); never raises."""

    @abstractmethod
    def run(self, order: RunOrder, on_message: Callable[[object], bool], stop_requested: Callable[[], bool]) -> None:
        """Train one run to its end. Every `Progress` and `Weights` goes to `on_message`,
        which returns True when the run is to stop. Raises SlotLost if the slot dies."""

    def stop(self, key: str) -> None:
        """Ask the run of `key`, if this slot is training it, to stop."""


class LocalSlot(Slot):
    """A process of its own on this machine, kept between runs (TensorFlow loads once)."""

    def __init__(self, number: int, data_path: str, store_root: str, threads: int):
        self.name = f"slot {number}"
        self.data_path, self.store_root, self.threads = data_path, store_root, threads
        self.process: subprocess.Popen | None = None
        self._connection = None
        self._lock = threading.Lock()  # one message at a time; the running key with its order
        self._key: str | None = None
        self._ended = threading.Event()
        self._gone = False  # the current process's connection closed
        self._starting = threading.Lock()  # one process at a time, whoever starts it
        self._on_message: Callable[[object], bool] = lambda message: False
        self._last_heard = time.monotonic()
        self.longest_silence = 0.0  # the longest gap between two messages in the last run (for the hang bound)

    def prepare(self) -> None:
        try:
            self._start()
        except SlotLost as problem:
            log.warning("%s did not start: %s", self.name, problem)

    def _start(self) -> None:
        with self._starting:
            if self.process is None or self.process.poll() is not None:
                self._start_process()

    def _start_process(self) -> None:
        environment = {"TF_NUM_INTRAOP_THREADS": str(self.threads), "OMP_NUM_THREADS": str(self.threads),
                       "TF_NUM_INTEROP_THREADS": str(min(2, self.threads))}
        arguments = {"data_path": self.data_path, "store_root": self.store_root, "where": self.name}
        try:
            self.process, self._connection = ipc.start_child("ae.training.slots", arguments, f"training {self.name}",
                                                             environment)
        except ipc.ServiceGone as problem:
            raise SlotLost(str(problem)) from None
        connection, self._gone = self._connection, False
        threading.Thread(target=self._receive, args=(connection, self.process), name=f"ae-{self.name}-receiver",
                         daemon=True).start()

    def _receive(self, connection, process) -> None:
        handle = ipc.dispatcher({Progress: self._relay, Weights: self._relay, Heartbeat: lambda beat: None,
                                 RunEnded: lambda ended: self._ended.set()})

        def dispatch(message) -> None:
            now = time.monotonic()
            self.longest_silence = max(self.longest_silence, now - self._last_heard)
            self._last_heard = now
            handle(message)

        ipc.receive_loop(connection, dispatch)
        if process is self.process:
            self._gone = True
            self._ended.set()  # run() sees that the process is gone

    def _relay(self, message) -> None:
        if self._on_message(message):
            self.stop(self._key)

    def run(self, order: RunOrder, on_message, stop_requested) -> None:
        self._start()
        self._ended.clear()
        self._on_message = on_message
        with self._lock:
            self._key = run_key(order)
            self._send(order)
        if stop_requested():  # pressed before the order went out
            self.stop(self._key)
        hung_for = self._wait_for_the_end()
        with self._lock:
            self._key = None
        if not self._gone and _resident_bytes(self.process) > recycle_bytes():
            self._recycle()
        if self._gone:
            try:
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = None
            raise SlotLost(f"it was silent for {hung_for:.0f} s (stopped or hung) and was ended" if hung_for
                           else ipc.describe_exit(code))

    def _wait_for_the_end(self) -> float | None:
        """Until the run ends; a process silent for `slot_hung_seconds()` (its heartbeat thread too:
        stopped, or hung) is killed, and the seconds of silence returned."""
        hung_after = slot_hung_seconds()
        self._last_heard, self.longest_silence = time.monotonic(), 0.0
        while not self._ended.wait(1.0):
            silent = time.monotonic() - self._last_heard
            if silent > hung_after and self.process is not None and self.process.poll() is None:
                log.error("%s has been silent for %.0f s: ending its process", self.name, silent)
                self.process.kill()
                self._ended.wait(10.0)
                return silent
        return None

    def _recycle(self) -> None:
        """Replace a process grown past `recycle_bytes()` by a fresh one, started at once."""
        log.info("%s: replacing its process (%.1f GB) with a fresh one", self.name,
                 _resident_bytes(self.process) / 1e9)
        with self._starting:
            old, self.process = self.process, None
            ipc.end_process(old, grace=5.0)
        threading.Thread(target=self.prepare, name=f"ae-{self.name}-start", daemon=True).start()

    def _send(self, message) -> None:
        try:
            self._connection.send(message)
        except (OSError, ValueError) as error:
            raise SlotLost(f"its process is not running ({error})") from None

    def stop(self, key: str | None) -> None:
        with self._lock:
            if key is not None and key == self._key:
                try:
                    self._connection.send(StopRun(key))
                except (OSError, ValueError):
                    pass  # gone: run() reports it


def recycle_bytes() -> int:
    configured = env_setting(RECYCLE_VARIABLE)
    return configured * 1_000_000 if configured else RECYCLE_BYTES


def _resident_bytes(process: subprocess.Popen | None) -> int:
    import psutil

    try:
        return psutil.Process(process.pid).memory_info().rss if process is not None else 0
    except psutil.NoSuchProcess:
        return 0


def run_key(order: RunOrder) -> str:
    from ae.model.config import TrainingConfig

    return TrainingConfig.from_dict(order.config).key


def local_slots(data_path: str, store_root: str, plan: SlotPlan | None = None) -> list[LocalSlot]:
    plan = plan or slot_plan()
    log.info("Training slots: %s", plan.why)
    return [LocalSlot(number, data_path, store_root, plan.threads_per_job) for number in range(1, plan.slots + 1)]


def main() -> None:
    """A local slot's process: connect back first, then load TensorFlow and run the orders
    its training service sends, one at a time; exit with the service (`ipc`'s child rule)."""
    from pathlib import Path

    try:
        connection = ipc.connect_back()
    except OSError:  # the service stopped while this process started: nothing to do
        os._exit(0)
    settings = ipc.child_arguments()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s training-slot %(levelname)s %(message)s")
    send_lock = threading.Lock()

    def send(message) -> bool:
        with send_lock:
            connection.send(message)
        return False  # a Stop arrives as a StopRun message

    def beat_forever() -> None:  # silence means this process is stopped or hung (LocalSlot._wait_for_the_end)
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            try:
                send(Heartbeat())
            except (OSError, ValueError):
                return

    threading.Thread(target=beat_forever, name="ae-heartbeat", daemon=True).start()  # before TensorFlow loads
    from ae.model.data import load_dataset
    from ae.storage.store import ModelStore
    from ae.training.worker import Worker

    worker = Worker(load_dataset(settings["data_path"]), ModelStore(Path(settings["store_root"])), send,
                    settings.get("where", "a training slot"))

    def start(order: RunOrder) -> None:
        job = worker.prepare(order)  # before the next message is read, so a StopRun finds it

        def train() -> None:
            worker.run(job)
            send(RunEnded(job.key))

        threading.Thread(target=train, name="ae-training", daemon=True).start()

    ipc.receive_loop(connection, ipc.dispatcher({RunOrder: start, StopRun: lambda stop: worker.stop(stop.key)}))
    os._exit(0)


if __name__ == "__main__":
    main()
