"""The training service on a Ray cluster: one named, detached actor, and a Ray task per run.

`TrainingServiceActor` runs the same `TrainingService` as a local service process does: the
queue, the askers, the snapshots and the checkpoints are the same objects. Only its slots
differ: a `RaySlot` sends each run to the cluster as a Ray task that asks for the job's CPUs
(a GPU too where a node has one and the model is big enough to gain from it), so Ray places
it on a node with room. The task trains with `ae.training.worker.Worker`, reports `Progress`
to the actor, and hears a Stop in the actor's reply. If its node dies, Ray runs the task again
elsewhere (`max_retries`), and the worker resumes from the run's last checkpoint in the shared
store, saying so: at most the epoch in flight is lost.

Web processes on any machine attach to the actor by name (`ae.jobs.ray_backend`): each one
holds one subscription, an `Outbox` it drains with long polls, and fans it out to its sessions.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from collections import deque
from pathlib import Path

from ae.cluster import NAMESPACE, node_name, python_path
from ae.training.protocol import RunOrder
from ae.training.slots import Slot, SlotLost, run_key

log = logging.getLogger(__name__)

SERVICE_NAME = "training-service"
MAX_RETRIES = 3  # a run's task is tried again this often when its worker or node dies
CLIENT_SILENCE = 60.0  # a web process that has not polled for this long has gone
OUTBOX_LIMIT = 10_000  # messages; a web process this far behind is dropped (it reattaches)


class Outbox:
    """One attached web process, as the service's `Clients` see it: messages wait here until
    its next long poll collects them."""

    def __init__(self):
        self._messages: deque = deque()
        self._ready = threading.Condition()
        self.closed = False
        self.last_poll = time.monotonic()

    def send(self, message) -> None:
        with self._ready:
            if self.closed or len(self._messages) >= OUTBOX_LIMIT:
                self.closed = True
                raise OSError("this web process stopped collecting its messages")
            self._messages.append(message)
            self._ready.notify_all()

    def take(self, timeout: float) -> list:
        with self._ready:
            self.last_poll = time.monotonic()
            self._ready.wait_for(lambda: self._messages or self.closed, timeout=timeout)
            taken, self._messages = list(self._messages), deque()
            return taken

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()


def _task_environment(threads: int) -> dict:
    return {"env_vars": {"PYTHONPATH": python_path(),
                         "TF_NUM_INTRAOP_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                         "TF_NUM_INTEROP_THREADS": str(min(2, threads)), "AE_TRAINING_SLOTS": "1"}}


_idle_workers: list = []  # this Ray worker process's idle Workers: TensorFlow, data, kept models stay loaded
_idle_lock = threading.Lock()


def train_run(order: RunOrder, service, data_path: str, store_root: str) -> str:
    """A run as a Ray task, on whichever node Ray chose; returns its final state. A Worker is
    never shared by two runs: while one blocks in `ray.get`, Ray may start another task in the
    same process, so each run takes an idle Worker (or makes one) and gives it back."""
    import ray

    from ae.model.data import load_dataset
    from ae.storage.store import ModelStore
    from ae.training.worker import Worker

    key = run_key(order)

    def send(message) -> bool:
        return ray.get(service.report.remote(key, message))

    with _idle_lock:
        worker = next((idle for idle in _idle_workers if idle.store.root == Path(store_root)), None)
        if worker is not None:
            _idle_workers.remove(worker)
    if worker is None:
        worker = Worker(load_dataset(data_path), ModelStore(Path(store_root)), send, node_name())
    worker.send, worker.where = send, node_name()
    try:
        return worker.run(order).state.value
    finally:
        with _idle_lock:
            _idle_workers[:] = [worker]  # one kept: memory stays that of one Worker


class RaySlot(Slot):
    """A slot whose runs are Ray tasks: Ray picks the node, retries on another if one dies."""

    def __init__(self, number: int, routes: dict, service_handle, data_path: str, store_root: str, threads: int):
        self.name = f"cluster slot {number}"
        self.routes, self.service_handle = routes, service_handle
        self.data_path, self.store_root, self.threads = data_path, store_root, threads

    def run(self, order: RunOrder, on_message, stop_requested) -> None:
        import ray

        key = run_key(order)
        self.routes[key] = LatestTry(on_message)
        resources = {"num_cpus": self.threads}
        if _wants_gpu(order):
            resources["num_gpus"] = 1
        task = _remote(ray, train_run).options(**resources, max_retries=MAX_RETRIES, retry_exceptions=False,
                                               runtime_env=_task_environment(self.threads))
        try:
            ray.get(task.remote(order, self.service_handle, self.data_path, self.store_root))
        except ray.exceptions.RayError as error:
            raise SlotLost(f"its Ray task was lost {MAX_RETRIES + 1} times ({type(error).__name__})") from None
        finally:
            self.routes.pop(key, None)


class LatestTry:
    """Routes one run's reports to its job, following only its latest try. When Ray runs a run
    again after its node was lost, the first report from the new node makes that try the one
    followed; the old try, if its process lives on, is told to abandon (`ABANDON`), so two
    tries never train, report or save the same model at once."""

    ABANDON = "abandon"  # ae.training.worker.ABANDON (not imported: the service has no Keras)

    def __init__(self, on_message):
        self.on_message = on_message
        self.where: str | None = None  # the node of the try followed
        self.given_up: set[str] = set()  # the nodes of earlier tries
        self._lock = threading.Lock()

    def __call__(self, message):
        where = getattr(message, "where", None)
        with self._lock:
            if where is not None:
                if where in self.given_up:
                    return self.ABANDON
                if self.where is not None and where != self.where:
                    self.given_up.add(self.where)
                self.where = where
        return self.on_message(message)


_remotes: dict = {}


def _remote(ray, function):
    """`ray.remote(function)`, made once per process (Ray exports a function once per handle)."""
    if function not in _remotes:
        _remotes[function] = ray.remote(function)
    return _remotes[function]


def _wants_gpu(order: RunOrder) -> bool:
    """A GPU only where the cluster has one, for a convolutional model: the dense ones (at most
    1.2 M weights, at code 784) train as fast on one CPU core under XLA (issue 10)."""
    import ray

    return bool(ray.cluster_resources().get("GPU")) and order.config.get("architecture") == "conv"


class TrainingServiceActor:
    """The cluster's training service (a named, detached Ray actor, threaded)."""

    def __init__(self, data_path: str, store_root: str):
        import ray

        from ae.training.process import TrainingService
        from ae.runtime import env_setting
        from ae.training.slots import SLOTS_VARIABLE, THREADS_VARIABLE

        threads = env_setting(THREADS_VARIABLE) or 1
        count = env_setting(SLOTS_VARIABLE) or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        self._routes: dict = {}  # job key -> its slot's on_message
        handle = ray.get_runtime_context().current_actor
        slots = [RaySlot(number, self._routes, handle, data_path, store_root, threads) for number in range(1, count + 1)]
        self.service = TrainingService(data_path, store_root, {}, slots=slots)
        self._outboxes: dict[str, Outbox] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        threading.Thread(target=self._drop_silent_clients, name="ae-reaper", daemon=True).start()
        log.warning("Training service on the cluster: %d slot(s) of %d CPU(s)", count, threads)

    # ---- web processes -------------------------------------------------------------------------
    def attach(self) -> str:
        client, outbox = f"web-{next(self._ids)}", Outbox()
        with self._lock:
            self._outboxes[client] = outbox
        self.service.attach(outbox)
        return client

    def receive(self, client: str, timeout: float = 5.0) -> list | None:
        """The messages waiting for `client` (a long poll); None: it is not attached (any more)."""
        outbox = self._outboxes.get(client)
        if outbox is None or outbox.closed:
            return None
        return outbox.take(timeout)

    def call(self, client: str, call) -> None:
        outbox = self._outboxes.get(client)
        if outbox is not None:
            self.service.answer(outbox, call)  # the reply arrives with the next poll

    def detach(self, client: str) -> None:
        with self._lock:
            outbox = self._outboxes.pop(client, None)
        if outbox is not None:
            outbox.close()
            self.service.detach(outbox)

    def _drop_silent_clients(self) -> None:
        while True:
            time.sleep(5)
            now = time.monotonic()
            for client, outbox in list(self._outboxes.items()):
                if outbox.closed or now - outbox.last_poll > CLIENT_SILENCE:
                    self.detach(client)

    # ---- runs ------------------------------------------------------------------------------------
    def report(self, key: str, message) -> bool:
        """A run's task reports; True asks it to stop."""
        on_message = self._routes.get(key)
        return bool(on_message(message)) if on_message is not None else False


def service_name(store_root: str) -> str:
    """One service per model store (and so per dataset): its name carries the store's path."""
    return f"{SERVICE_NAME}-{hashlib.sha256(str(Path(store_root).resolve()).encode()).hexdigest()[:12]}"


def service_actor(ray, data_path: str, store_root: str):
    """The cluster's training service of this store: found by name, or started (on the head
    node, detached, restarted by Ray if its process dies)."""
    actor_class = ray.remote(TrainingServiceActor)
    return actor_class.options(name=service_name(store_root), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                               max_restarts=-1, max_concurrency=256, num_cpus=0,
                               resources={"node:__internal_head__": 0.001}).remote(data_path, store_root)
