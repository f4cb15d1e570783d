"""The training service on a Ray cluster: two nodes on this machine (Ray's own
`ray.cluster_utils.Cluster`), one CPU each, the head running the service actor.

Real Ray, real Keras, a real MNIST slice. In CI (CI=true) Ray must be installed: these never skip there.
The tests run in file order. Losing a node is tested on a fresh cluster of its own
(tests/test_ray_node_loss.py)."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

if os.environ.get("CI") == "true":
    import ray  # noqa: F401  (requirements-dev.txt installs requirements-ray.txt)
else:
    pytest.importorskip("ray")

from ae.model.config import TrainingConfig
from ae.training.snapshot import JobState
from tests.conftest import ROOT
from tests.test_pages import assert_clean, open_page, texts, wait_for_slow_map
from tests.test_training import wait_for, wait_until_done

QUICK = dict(batch_size=32, train_size=2000)
LONG = TrainingConfig(code_size=8, epochs=60, seed=33, **QUICK)
LONGER = TrainingConfig(code_size=12, epochs=60, seed=34, **QUICK)


@pytest.fixture(scope="module")
def nodes():
    """A head node and a worker node, one CPU each; AE_RAY_ADDRESS points every process at them."""
    import ray
    from ray.cluster_utils import Cluster

    saved = {name: os.environ.get(name) for name in ("AE_TRAINING_SLOTS", "AE_RAY_ADDRESS")}
    os.environ.pop("AE_TRAINING_SLOTS", None)  # the service sizes itself from the cluster's CPUs: two slots
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    os.environ["AE_RAY_ADDRESS"] = cluster.address
    try:
        yield cluster, cluster.head_node, worker
    finally:
        ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def short(node) -> str:
    return f"node {node.node_id[:8]}"


def wait_running_where(job, timeout: float = 180.0):
    return wait_for(job, lambda s: s.state is JobState.RUNNING and (s.where or "").startswith("node "),
                    "running on a node", timeout=timeout)


def second_web_process(small_mnist_path, store_root: Path, code: str) -> dict:
    """Another web process (a fresh interpreter) attached to the same cluster: runs `code`
    with `manager` (its JobManager) and `store_root`, and returns what it prints as JSON."""
    script = f"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
import ae
from ae.model.data import load_dataset
from ae.storage.store import ModelStore
from ae.jobs.manager import JobManager
store_root = Path({str(store_root)!r})
manager = JobManager(load_dataset({str(small_mnist_path)!r}), ModelStore(store_root))
deadline = time.monotonic() + 90
while not (manager._backend and manager._backend.ready):
    assert time.monotonic() < deadline, "never attached"
    time.sleep(0.2)
{code}
manager.close()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One model cache for the module, as a cluster has one shared store: one service actor."""
    return tmp_path_factory.mktemp("ray-cache")


@pytest.fixture
def manager(nodes, cache, dataset):
    from ae.jobs.manager import JobManager
    from ae.storage.store import ModelStore

    made = JobManager(dataset, ModelStore.for_dataset(dataset, cache))
    yield made
    made.close()


def test_a_sweep_runs_on_both_nodes_at_once_and_another_web_process_sees_it(nodes, manager, small_mnist_path):
    _, head, worker = nodes
    sweep = [manager.request(TrainingConfig(code_size=size, epochs=3, seed=40, **QUICK)) for size in (2, 4, 8, 16)]
    both_nodes = set()
    deadline = time.monotonic() + 240
    while len(both_nodes) < 2:  # two of its jobs training at the same moment, one on each node
        assert time.monotonic() < deadline, [job.snapshot().state for job in sweep]
        both_nodes = {s.where for s in (job.snapshot() for job in sweep) if s.state is JobState.RUNNING
                      and (s.where or "").startswith("node ")}
        time.sleep(0.05)
    assert both_nodes == {short(head), short(worker)}

    seen = second_web_process(small_mnist_path, manager.store.root, f"""
print(json.dumps({{key: manager.snapshot(key).state.value for key in {[job.key for job in sweep]!r}
                  if manager.snapshot(key)}}))""")
    assert set(seen) == {job.key for job in sweep}  # the other web process knows every job of the sweep

    finals = [wait_until_done(job, timeout=300) for job in sweep]
    assert all(final.state is JobState.FINISHED for final in finals), [final.error for final in finals]
    assert all(final.history.epochs_done == 3 and final.test_metrics is not None for final in finals)
    assert {final.where for final in finals} == {short(head), short(worker)}


def test_stop_works_on_the_cluster_and_the_model_is_saved_in_the_shared_store(manager):
    long = manager.request(LONG)
    wait_for(long, lambda s: s.state is JobState.RUNNING and s.history.epochs_done >= 1, "an epoch", timeout=120)
    long.stop()
    stopped = wait_until_done(long, timeout=60)
    assert stopped.state is JobState.STOPPED
    assert stopped.has_model and 1 <= stopped.history.epochs_done < 60
    assert manager.load_models(long) is not None  # saved in the shared store, readable here


def test_a_map_is_computed_on_the_cluster_and_read_by_another_web_process(manager, dataset, small_mnist_path):
    from ae.maps.files import load_map
    from ae.maps.protocol import MapSpec
    from ae.maps.service import MapService
    from ae.model.architectures import predict

    job = manager.request(TrainingConfig(code_size=4, epochs=3, seed=40, **QUICK))  # trained by the sweep
    final = wait_until_done(job, timeout=180)
    assert final.state is JobState.FINISHED, final.error
    codes = predict(manager.load_models(job).encoder, dataset.test_images)
    spec = MapSpec(job.key, final.saved_at, "umap", None)
    maps = MapService(manager.store.root)
    try:
        task = maps.request(spec, codes, session="web:student")
        texts_seen = set()
        deadline = time.monotonic() + 240
        while not task.finished.is_set():
            assert time.monotonic() < deadline, task.text
            texts_seen.add(task.text)
            time.sleep(0.1)
        assert task.state == "done", task.error
        assert any("on node " in text or "free CPU on the cluster" in text for text in texts_seen), texts_seen
    finally:
        maps.close()
    path = maps.path(spec)
    assert load_map(path, spec) is not None
    read = second_web_process(small_mnist_path, manager.store.root, f"""
from ae.maps.files import load_map
from ae.maps.protocol import MapSpec
projection = load_map(Path({str(path)!r}), MapSpec({job.key!r}, {final.saved_at!r}, "umap", None))
print(json.dumps({{"points": None if projection is None else int(len(projection.coordinates))}}))""")
    assert read["points"] == len(codes)


def test_the_app_trains_shows_progress_stops_and_maps_on_the_cluster(nodes, app_env, cache, monkeypatch):
    monkeypatch.setenv("AE_CACHE_DIR", str(cache))  # the module's store, and its service actor
    app = open_page("pages/train.py")
    app.number_input(key="code").set_value(3).run()
    app.number_input(key="epochs").set_value(200).run()
    app.select_slider(key="batch").set_value(32).run()
    app.number_input(key="digits").set_value(2000).run()
    app.button(key="train_button").click().run()

    def progress_line() -> str:
        return app.get("progress")[0].proto.text if app.get("progress") else ""

    deadline = time.monotonic() + 180
    while not re.search(r"Epoch \d+ of 200", progress_line()):
        assert time.monotonic() < deadline, texts(app) + progress_line()
        time.sleep(0.5)
        app.run()  # AppTest never fires run_every: poll by rerunning
        assert_clean(app)
    assert "Training: Dense (article), code size 3" in texts(app)
    app.button(key="stop_button").click().run()
    deadline = time.monotonic() + 90
    while "Stopped: Dense (article), code size 3" not in texts(app):
        assert time.monotonic() < deadline, texts(app)
        time.sleep(0.5)
        app.run()
        assert_clean(app)

    app = open_page("pages/latent.py")  # another session: a student opens the map of that model
    app.radio[0].set_value("umap").run()
    wait_for_slow_map(app, "UMAP")
    assert_clean(app)
