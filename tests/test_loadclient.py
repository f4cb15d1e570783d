"""The protocol-level load client (ae.loadclient) against the real server: `streamlit run app.py`
on a free loopback port with the small MNIST slice and a fresh model cache."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ae.loadclient import NotLoopback, ProtocolSession, loopback_base, run_sessions
from tests.conftest import run_async

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def small_server(small_mnist_path, tmp_path_factory):
    port = _free_port()
    env = dict(os.environ, AE_CACHE_DIR=str(tmp_path_factory.mktemp("ae-cache")), AE_WARM_UMAP="0",
               AE_DATA_PATH=str(small_mnist_path))
    log = tmp_path_factory.mktemp("log") / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def test_three_sessions_open_their_pages(small_server):
    sessions = run_async(run_sessions(small_server, ["/", "/train", "/train?code=32&epochs=3"],
                                        watch_seconds=1.0, limit=60, ready_timeout=45))
    for session in sessions:
        stats = session.stats
        assert stats.errors == [], stats.errors
        assert stats.ready_s is not None and stats.ready_s < 45
        assert stats.deltas > 0 and stats.full_runs
        assert session.page_script_hash  # from the navigation message, sent on later reruns
    home, train, shared = sessions
    assert home.page_script_hash != train.page_script_hash == shared.page_script_hash
    assert train.widget_id("train_button") and train.widget_id("train_button").startswith("$$ID-")
    assert shared.query_string == "code=32&epochs=3"
    code = shared.widgets[shared.widget_id("code")]
    assert code.query_key == "code"


def test_refuses_anything_not_on_loopback():
    for url in ("http://10.0.0.1:8501", "http://example.com:8501", "http://[::2]:8501", "http://128.0.0.1:80",
                "https://127.0.0.1:8501"):
        with pytest.raises(NotLoopback):
            ProtocolSession(url, "/")
        with pytest.raises(NotLoopback):
            run_async(run_sessions(url, ["/"], limit=5))
    assert loopback_base("http://localhost:8501") == ("http://localhost:8501", "ws://localhost:8501")
    assert loopback_base("http://127.1.2.3:9") == ("http://127.1.2.3:9", "ws://127.1.2.3:9")
