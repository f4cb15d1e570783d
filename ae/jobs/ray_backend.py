"""The web side of a Ray cluster's training service (`ae.training.ray_service`).

`RayTrainingBackend` is the shared backend of `ae.jobs.backend` over Ray instead of a Unix
socket: it joins the cluster (`ae.cluster.connect`), finds or starts the named service actor,
attaches once, and drains its one subscription with long polls on one thread, handing every
message to the manager, which fans it out to all of this web process's sessions. Commands
travel as actor calls; their replies come back with the next poll, like every update.
"""
from __future__ import annotations

from collections import deque

from ae import cluster
from ae.ipc import ServiceGone
from ae.jobs.backend import SharedTrainingBackend

POLL_SECONDS = 5.0  # one long poll waits this long for news
ATTACH_TIMEOUT = 120.0  # the actor's first start loads no TensorFlow, but Ray may be busy


class RayConnection:
    """One web process's subscription to the service actor, with a connection's send/recv/close."""

    def __init__(self, ray, actor):
        self.ray, self.actor = ray, actor
        self.client = ray.get(actor.attach.remote(), timeout=ATTACH_TIMEOUT)
        self._buffer: deque = deque()
        self._closed = False

    def send(self, message) -> None:
        if self._closed:
            raise OSError("detached from the cluster's training service")
        self.actor.call.remote(self.client, message)  # the reply comes back through recv

    def recv(self):
        while not self._buffer:
            if self._closed:
                raise EOFError
            try:
                batch = self.ray.get(self.actor.receive.remote(self.client, POLL_SECONDS), timeout=POLL_SECONDS + 30)
            except Exception:  # the actor died or the cluster went away: like a closed socket
                raise EOFError from None
            if batch is None:  # the service no longer knows this web process (it restarted)
                raise EOFError
            self._buffer.extend(batch)
        return self._buffer.popleft()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.actor.detach.remote(self.client)
            except Exception:
                pass


class RayTrainingBackend(SharedTrainingBackend):
    """The training service of a Ray cluster, shared by every web process on any machine."""

    kills_when_hung = False  # the actor may live on another machine; Ray restarts it if its process dies

    def __init__(self, data_path, store_root, on_message, on_exit):
        super().__init__(data_path, store_root, on_message, on_exit, folder=None)
        self.address = cluster.ray_address()

    def start(self, crash_notes: dict[str, str]) -> None:
        from ae.training.ray_service import service_actor

        ray = cluster.connect(self.address)
        try:
            self._connection = RayConnection(ray, service_actor(ray, str(self.data_path), str(self.store_root)))
        except Exception as error:
            raise ServiceGone(f"The cluster's training service did not answer ({type(error).__name__}: {error}).") \
                from None
        self._start_receiving("the cluster's training service went away; it is started again on the next request")
