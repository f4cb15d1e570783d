"""The map service: UMAP and t-SNE maps in the map process, shared, saved beside the model, stoppable."""
import time

import numpy as np
import pytest

from ae.maps.service import STOP_GRACE_SECONDS, MapService, MapSpec, load_map
from tests.conftest import wait_for_condition


@pytest.fixture
def codes():
    """Codes with ten clear groups, like a trained model's."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(10, 8))
    return (centres[np.arange(1500) % 10] + rng.normal(size=(1500, 8))).astype(np.float32)


@pytest.fixture
def service(tmp_path):
    made = MapService(tmp_path / "store")
    yield made
    made.close()


def finish(task, seconds: float = 150):
    wait_for_condition(lambda: not task.active, seconds)
    return task


def test_a_map_is_computed_shared_and_saved_beside_its_model(service, codes):
    spec = MapSpec("dense-c8-e2-abc", 12.5, "umap", 1000)
    first = service.request(spec, codes, "session-a")
    assert service.request(spec, codes, "session-b") is first  # a second session watches the same task
    assert first.askers.asked == {"session-a", "session-b"}
    finish(first)
    assert first.state == "done", first.error
    assert first.projection.coordinates.shape == (1000, 2)
    assert first.projection.settings["epochs"] > 0 and first.fraction == 1.0
    assert service.path(spec).parent == service.store_root / "dense-c8-e2-abc" / "maps"
    assert service.path(spec).is_file()


def test_saved_maps_survive_a_restart_and_a_newer_save_is_computed_again(tmp_path, codes):
    spec = MapSpec("dense-c8-e2-abc", 12.5, "tsne", 500)
    before = MapService(tmp_path / "store")
    try:
        task = finish(before.request(spec, codes))
        assert task.state == "done", task.error
    finally:
        before.close()
    after = MapService(tmp_path / "store")
    try:
        again = after.request(spec, codes)
        assert again.state == "done" and after._process is None  # read from the disk, no process started
        np.testing.assert_array_equal(again.projection.coordinates, task.projection.coordinates)
        newer = MapSpec("dense-c8-e2-abc", 99.0, "tsne", 500)  # the model was trained again
        assert load_map(after.path(newer), newer) is None
        assert after.request(newer, codes).state in ("queued", "running")
    finally:
        after.close()


def test_stop_ends_a_map_within_a_second_and_a_stopped_map_is_not_saved(service, codes):
    spec = MapSpec("dense-c8-e2-abc", 1.0, "tsne", None)
    task = service.request(spec, codes, "session-a")
    wait_for_condition(lambda: task.fraction > 0.2, 150)  # well into the iterations
    started = time.monotonic()
    assert service.stop(spec, "session-a") == "Stopped."
    assert time.monotonic() - started < STOP_GRACE_SECONDS + 0.5
    assert task.state == "stopped" and not task.active
    time.sleep(0.5)
    assert not service.path(spec).exists()
    assert service.request(spec, codes) is task  # a stopped map waits to be asked for again
    restarted = service.request(spec, codes, again=True)
    assert restarted is not task and restarted.active
    assert finish(restarted).state == "done"


def test_one_sessions_stop_leaves_a_map_others_asked_for_running(service, codes):
    spec = MapSpec("dense-c8-e2-abc", 1.0, "tsne", None, seed=1)
    task = service.request(spec, codes, "session-a")
    service.request(spec, codes, "session-b")
    answer = service.stop(spec, "session-a")
    assert "1 other session asked for this map too" in answer
    assert task.active
    service.session_present = lambda session: session != "session-b"  # b closed its tab
    assert service.stop(spec, "session-a") == "Stopped."
    assert task.state == "stopped"


def test_a_damaged_saved_map_is_computed_again(service, codes):
    spec = MapSpec("dense-c8-e2-abc", 1.0, "umap", 300)
    service.path(spec).parent.mkdir(parents=True)
    service.path(spec).write_bytes(b"not an npz file")
    task = service.request(spec, codes)
    assert task.active
    assert finish(task).state == "done"
    assert load_map(service.path(spec), spec) is not None
