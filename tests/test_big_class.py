"""A big-class server (`ae.serve`): two real Streamlit web processes over one training service
and one map service, behind a real HAProxy on loopback. Sessions are protocol-level clients
(`ae.loadclient`); a JobManager in this test process attaches to the same training service as a
third web process would, to read what the service knows. Small MNIST, a fresh model cache.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request

import pytest

from ae.jobs.backend import SharedTrainingBackend
from ae.jobs.manager import JobManager
from ae.loadclient import ProtocolSession
from ae.model.data import load_dataset
from ae.serve import BigClassServer, free_port, haproxy_path
from ae.storage.store import ModelStore
from ae.training.snapshot import JobState
from tests.conftest import run_async

pytestmark = pytest.mark.skipif(haproxy_path() is None and not os.environ.get("CI"),
                                reason="HAProxy is not installed (.ci/run installs it)")
SHARED_RUN = "/train?code=8&epochs=200&batch=32"  # long enough to outlast the test
SECOND_RUN = "/train?code=9&epochs=200&batch=32"


@pytest.fixture(scope="module")
def big_class(small_mnist_path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("ae-cache")
    server = BigClassServer(web=2, port=free_port(), proxy=True, log_folder=tmp_path_factory.mktemp("logs"),
                            environment={"AE_DATA_PATH": str(small_mnist_path), "AE_CACHE_DIR": str(cache),
                                         "AE_WARM_UMAP": "0"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def observer(big_class, small_mnist_path):
    """A JobManager attached to the shared training service: what every web process sees."""
    dataset = load_dataset(small_mnist_path)
    store = ModelStore.for_dataset(dataset, big_class.environment["AE_CACHE_DIR"])
    manager = JobManager(dataset, store, backend=lambda *parts: SharedTrainingBackend(*parts, folder=big_class.folder))
    yield manager
    manager.close()


async def until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def served_by(url: str, cookie: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.headers["X-AE-Web"], answer.headers.get("Set-Cookie", "")


def test_the_proxy_spreads_new_visitors_and_keeps_each_on_its_web_process(big_class):
    first, cookie = served_by(big_class.url)
    second, _ = served_by(big_class.url)
    assert {first, second} == {"web1", "web2"}  # round robin for visitors without a cookie
    assert cookie.startswith(f"AE_WEB={first}")
    assert all(served_by(big_class.url, cookie.split(";")[0])[0] == first for _ in range(4))  # sticky

    async def two_sessions():
        sessions = [ProtocolSession(big_class.url, "/train", name=f"room-{i}") for i in range(2)]
        try:
            for session in sessions:
                await session.open()
            return [await session.wait_ready(90) for session in sessions], sessions
        finally:
            await asyncio.gather(*(session.close() for session in sessions))

    ready, sessions = run_async(two_sessions())
    assert all(seconds is not None for seconds in ready), [s.stats.errors for s in sessions]
    assert not any(session.stats.errors for session in sessions), [s.stats.errors for s in sessions]


def test_a_run_is_shared_and_stopped_across_web_processes_and_survives_one_dying(big_class, observer):
    async def scenario():
        alice = ProtocolSession(big_class.web_url(0), SHARED_RUN, name="alice")  # web process 1
        bob = ProtocolSession(big_class.web_url(1), SHARED_RUN, name="bob")  # web process 2
        carol = ProtocolSession(big_class.web_url(1), "/train", name="carol")  # web process 2, watching only
        sessions = [alice, bob, carol]
        try:
            for session in sessions:
                await session.open()
                assert await session.wait_ready(90) is not None, session.stats.errors

            # Alice presses Train in web process 1; Bob and Carol, in web process 2, see it start.
            await alice.press("train_button")
            await until(lambda: observer.running() is not None, 60, "the run to start")
            key = observer.running().key
            for watcher in (bob, carol):
                await watcher.wait_until(lambda w=watcher: bool(w.progress_text) and "Epoch" in w.progress_text, 60)

            # Bob shares the run. Alice's Stop only withdraws her request; Bob's stops it.
            await bob.press("train_button")
            await until(lambda: len(observer.snapshot(key).asked) == 2, 30, "both askers")
            assert len({asker.split(":")[0] for asker in observer.snapshot(key).asked}) == 2  # two web processes
            await alice.press("stop_button")
            await until(lambda: len(observer.snapshot(key).withdrawn) == 1, 30, "Alice's Stop to count")
            await asyncio.sleep(2)
            assert observer.snapshot(key).state is JobState.RUNNING
            await bob.press("stop_button")
            await until(lambda: observer.snapshot(key).state is JobState.STOPPED, 60, "the run to stop")

            # Alice starts another run; her web process is killed; the run and web process 2 go on.
            second = ProtocolSession(big_class.web_url(0), SECOND_RUN, name="alice-again")
            sessions.append(second)
            await second.open()
            assert await second.wait_ready(90) is not None
            await second.press("train_button")
            await until(lambda: observer.running() is not None and observer.running().key != key, 60,
                        "the second run to start")
            run = observer.running()
            await carol.wait_until(lambda: "Epoch" in (carol.progress_text or ""), 60)
            big_class.webs[0].process.send_signal(signal.SIGKILL)
            big_class.webs[0].process.wait(10)
            position = run.snapshot().position
            killed_at = time.monotonic()
            await until(lambda: run.snapshot().position > position, 60, "training to go on")
            assert run.snapshot().state is JobState.RUNNING
            await asyncio.sleep(3)
            assert any(at > killed_at for at in carol.stats.updates), "web process 2 stopped updating"
            assert not carol.stats.errors and not bob.stats.errors
            assert run.stop().stops  # the engine may always stop
            await until(lambda: run.snapshot().state is JobState.STOPPED, 60, "the second run to stop")
        finally:
            await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)

    run_async(scenario())
