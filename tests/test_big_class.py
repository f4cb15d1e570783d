"""A big-class server (`ae.serve`): two real Streamlit web processes over one training service
and one map service, behind a real nginx on loopback. Sessions are protocol-level clients
(`ae.loadclient`); a JobManager in this test process attaches to the same training service as a
third web process would, to read what the service knows. Small MNIST, a fresh model cache.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request

import pytest

from ae.jobs.backend import SharedTrainingBackend
from ae.jobs.manager import JobManager
from ae.loadclient import ProtocolSession
from ae.model.data import load_dataset
from ae.serve import BigClassServer, free_port, nginx_path
from ae.storage.store import ModelStore
from ae.training.snapshot import JobState
from tests.conftest import run_async

pytestmark = pytest.mark.skipif(nginx_path() is None and not os.environ.get("CI"),
                                reason="nginx is not installed (.ci/run installs it)")
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
    visitors = [served_by(big_class.url) for _ in range(16)]
    webs = {f"127.0.0.1:{port}" for port in big_class.web_ports}
    assert {web for web, _ in visitors} == webs  # new visitors spread over both (2 ** -15 to fail by chance)
    web, cookie = visitors[0]
    assert cookie.startswith("AE_WEB=")
    assert all(served_by(big_class.url, cookie.split(";")[0])[0] == web for _ in range(4))  # sticky

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
    with urllib.request.urlopen(f"{big_class.url}/live/room.json", timeout=10) as answer:  # nginx serves the feed
        assert json.loads(answer.read()) == {"running": None}


def sticky_cookies(big_class) -> list[str]:
    """A sticky cookie for each web process, in order: what nginx gave new visitors."""
    found = {}
    for _ in range(64):
        web, cookie = served_by(big_class.url)
        found.setdefault(web, cookie.split(";")[0])
        if len(found) == len(big_class.web_ports):
            break
    return [found[f"127.0.0.1:{port}"] for port in big_class.web_ports]


def test_a_run_is_shared_and_stopped_across_web_processes_and_survives_one_dying(big_class, observer):
    web1, web2 = sticky_cookies(big_class)  # every session goes through nginx, as a browser's would

    async def scenario():
        alice = ProtocolSession(big_class.url, SHARED_RUN, name="alice", cookie=web1)
        bob = ProtocolSession(big_class.url, SHARED_RUN, name="bob", cookie=web2)
        carol = ProtocolSession(big_class.url, "/train", name="carol", cookie=web2)  # watching only
        sessions = [alice, bob, carol]
        try:
            for session in sessions:
                await session.open()
                assert await session.wait_ready(90) is not None, session.stats.errors

            # Alice presses Train in web process 1; Bob and Carol, in web process 2, see it start.
            await alice.press("train_button")
            await until(lambda: observer.running() is not None, 60, "the run to start")
            key = observer.running().key
            for watcher in (bob, carol):  # they opened the page before the run started
                assert await watcher.wait_until(lambda w=watcher: "Epoch" in w.progress_text, 60), watcher.stats

            # Bob shares the run. Alice's Stop only withdraws her request; Bob's stops it.
            await bob.press("train_button")
            await until(lambda: len(observer.snapshot(key).askers.asked) == 2, 30,
                        f"both askers ({observer.snapshot(key).askers.asked}, Bob's page: {bob.stats})")
            assert len({asker.split(":")[0] for asker in observer.snapshot(key).askers.asked}) == 2  # two web processes
            await alice.press("stop_button")
            await until(lambda: len(observer.snapshot(key).askers.withdrawn) == 1, 30, "Alice's Stop to count")
            await asyncio.sleep(2)
            assert observer.snapshot(key).state is JobState.RUNNING
            await bob.press("stop_button")
            await until(lambda: observer.snapshot(key).state is JobState.STOPPED, 60, "the run to stop")

            # Alice starts another run; her web process is killed; the run and web process 2 go on.
            second = ProtocolSession(big_class.url, SECOND_RUN, name="alice-again", cookie=web1)
            sessions.append(second)
            await second.open()
            assert await second.wait_ready(90) is not None
            await second.press("train_button")
            await until(lambda: observer.running() is not None and observer.running().key != key, 60,
                        "the second run to start")
            run = observer.running()
            started = time.monotonic()  # Carol's view follows the new run by itself
            assert await carol.wait_until(lambda: len(carol.stats.updates_between(started, time.monotonic())) >= 2, 60)
            big_class.webs[0].process.send_signal(signal.SIGKILL)
            big_class.webs[0].process.wait(10)
            position = run.snapshot().position
            killed_at = time.monotonic()
            await until(lambda: run.snapshot().position > position, 60, "training to go on")
            assert run.snapshot().state is JobState.RUNNING
            await asyncio.sleep(3)
            assert any(at > killed_at for at in carol.stats.updates), "web process 2 stopped updating"
            assert not carol.stats.errors and not bob.stats.errors
            assert carol.stats.feed_polls > 0 and bob.stats.feed_polls > 0  # the browser-drawn view, from nginx
            assert run.stop().stops  # the engine may always stop
            await until(lambda: run.snapshot().state is JobState.STOPPED, 60, "the second run to stop")
        finally:
            await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)

    run_async(scenario())

