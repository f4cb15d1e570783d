"""The map service: UMAP and t-SNE maps in the map process, shared, saved beside the model, stoppable."""
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from ae import ipc
from ae.analysis.projection import Projection
from ae.maps.bounds import IN_ALL_VARIABLE, PER_SESSION_VARIABLE, MapRefused
from ae.maps.files import save_map
from ae.maps.protocol import ComputeMap
from ae.maps.service import STOP_GRACE_SECONDS, MapService, MapSpec, load_map
from tests.conftest import ROOT, wait_for_condition


@pytest.fixture
def codes():
    """Codes with ten clear groups, like a trained model's."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(10, 8))
    return (centres[np.arange(1500) % 10] + rng.normal(size=(1500, 8))).astype(np.float32)


def saved_models(root, *keys):
    """Model entries with a record: maps are saved only beside a model that is on disk."""
    from ae.storage.store import RECORD_FILE

    for key in keys:
        (root / key).mkdir(parents=True, exist_ok=True)
        (root / key / RECORD_FILE).write_text("{}")


@pytest.fixture
def service(tmp_path):
    saved_models(tmp_path / "store", "dense-c8-e2-abc", "dense-c16-e2-abc")
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
    saved_models(tmp_path / "store", spec.model_key)
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
    service.path(spec).parent.mkdir(parents=True, exist_ok=True)
    service.path(spec).write_bytes(b"not an npz file")
    task = service.request(spec, codes)
    assert task.active
    assert finish(task).state == "done"
    assert load_map(service.path(spec), spec) is not None


# ---- bounds (issue 20): maps per session, and maps queued or computing in all ------------------
@pytest.fixture
def slow_codes():
    """Enough codes for a t-SNE of 5,000 points: seconds of work, so the maps asked stay queued."""
    return np.random.default_rng(1).normal(size=(6000, 16)).astype(np.float32)


@pytest.fixture
def bounded(tmp_path, monkeypatch):
    """A map service whose bounds come from the environment, as in production."""
    made = []

    def make(per_session: int, in_all: int, root=None) -> MapService:
        monkeypatch.setenv(PER_SESSION_VARIABLE, str(per_session))
        monkeypatch.setenv(IN_ALL_VARIABLE, str(in_all))
        saved_models(root or tmp_path / "store", "dense-c8-e2-abc", "dense-c16-e2-abc")
        made.append(MapService(root or tmp_path / "store"))
        return made[-1]

    yield make
    for service in made:
        service.close()


def slow(seed: int, key: str = "dense-c16-e2-abc") -> MapSpec:
    return MapSpec(key, 1.0, "tsne", None, seed=seed)


def test_a_session_may_have_two_maps_waiting_and_is_told_why_not_a_third(bounded, slow_codes):
    service = bounded(per_session=2, in_all=8)
    mine = [service.request(slow(seed), slow_codes, "session-a") for seed in (1, 2)]
    with pytest.raises(MapRefused) as refused:
        service.request(slow(3), slow_codes, "session-a")
    assert str(refused.value) == ("You already have 2 maps queued or computing, the most one session may have; "
                                  "wait for one to finish or stop it.")
    assert all(task.active for task in mine)  # they were waiting when the third was refused
    theirs = service.request(slow(3), slow_codes, "session-b")  # nothing of the refusal was kept
    assert theirs.active and theirs.started_by == "session-b"
    assert service.request(slow(3), slow_codes, "session-a") is theirs  # sharing a map costs nothing: allowed
    assert service.request(slow(4), slow_codes).active  # the engine's own maps have no session to cap
    saved = MapSpec("dense-c16-e2-abc", 1.0, "umap", 300)  # a saved map is read, never refused
    save_map(service.path(saved), Projection(np.zeros((300, 2), np.float32), np.arange(300), "umap"), 1.0)
    assert service.request(saved, slow_codes, "session-a").state == "done"
    assert service.stop(slow(1), "session-a") == "Stopped."  # a Stop makes room
    assert service.request(slow(5), slow_codes, "session-a").active


def test_the_queue_holds_a_bounded_number_of_maps_in_all(bounded, slow_codes):
    service = bounded(per_session=2, in_all=2)
    waiting = [service.request(slow(1), slow_codes, "session-a"), service.request(slow(2), slow_codes)]
    with pytest.raises(MapRefused, match=r"^The map queue is full \(2 maps ahead\); try again in a minute\.$"):
        service.request(slow(3), slow_codes, "session-b")
    assert all(task.active for task in waiting)
    assert service.request(slow(1), slow_codes, "session-b") is waiting[0]  # the same map is shared, not refused


def test_a_shared_map_process_bounds_the_maps_of_every_web_process_together(bounded, slow_codes, tmp_path,
                                                                            monkeypatch):
    """With `ae.serve`, web processes each count only their own maps: the map process counts them all."""
    monkeypatch.setenv("AE_WARM_UMAP", "0")
    monkeypatch.setenv(IN_ALL_VARIABLE, "1")
    folder = ipc.make_services_folder()
    process = subprocess.Popen([sys.executable, "-m", "ae.maps.process", json.dumps({"services_folder": str(folder)})],
                               cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        wait_for_condition(lambda: (folder / "maps.sock").exists(), 60)
        monkeypatch.setenv(ipc.SERVICES_VARIABLE, str(folder))
        first, second = bounded(2, 1, tmp_path / "store"), bounded(2, 1, tmp_path / "store")
        running = first.request(slow(1), slow_codes, "session-a")
        wait_for_condition(lambda: running.state == "running", 60)  # in the map process's queue
        refused = finish(second.request(slow(2), slow_codes, "session-b"), 30)
        assert refused.state == "refused" and refused.projection is None
        assert refused.error == "The map queue is full (1 map ahead); try again in a minute."
        shared = second.request(slow(1), slow_codes, "session-b")  # the same map: shared, not refused
        wait_for_condition(lambda: shared.state == "running", 60)
        assert running.active
    finally:
        ipc.end_process(process)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_request_carries_only_the_codes_its_map_uses(slow_codes):
    """A map of 1,000 of 6,000 codes sends 1,000 rows of float32, and is the map of all the codes
    (`project` picks the same rows for every method; PCA keeps this test fast)."""
    from ae.analysis.projection import project

    message = ComputeMap.of_codes(1, MapSpec("k", 1.0, "pca", 1000, seed=3), slow_codes.astype(np.float64), "x.npz")
    assert message.codes.shape == (1000, 16) and message.codes.dtype == np.float32 and message.of == 6000
    sent, whole = message.project(None), project(slow_codes, "pca", max_points=1000, seed=3)
    np.testing.assert_array_equal(sent.indices, whole.indices)
    np.testing.assert_allclose(np.abs(sent.coordinates), np.abs(whole.coordinates), atol=1e-4)
    assert len(ComputeMap.of_codes(1, MapSpec("k", 1.0, "tsne", None), slow_codes, "x.npz").codes) == 5000  # the default
    assert sent.settings["of"] == 6000 and sent.settings["points"] == 1000


# ---- faults (issue 21): one session's Stop, or one map's crash, ends nobody else's map ----------
def test_a_stop_that_ends_the_map_process_leaves_other_sessions_maps_finishing(service, codes):
    import os
    import signal

    first = service.request(MapSpec("dense-c8-e2-abc", 1.0, "tsne", None, seed=3), codes, "session-a")
    other = service.request(MapSpec("dense-c8-e2-abc", 1.0, "umap", 500), codes, "session-b")
    wait_for_condition(lambda: first.state == "running", 150)
    process = service._process
    os.kill(process.pid, signal.SIGSTOP)  # a map that cannot hear its Stop (t-SNE's affinities, say)
    try:
        started = time.monotonic()
        assert service.stop(first.spec, "session-a") == "Stopped."
        assert time.monotonic() - started < STOP_GRACE_SECONDS + 1.0
    finally:
        os.kill(process.pid, signal.SIGCONT)  # already killed: nothing to resume
    assert first.state == "stopped"
    assert finish(other).state == "done", other.error  # sent again to a fresh map process
    assert other.resends == 1 and service._process is not process


def test_a_map_process_that_dies_fails_only_the_map_it_was_computing(service, codes):
    import os
    import signal

    computing = service.request(MapSpec("dense-c8-e2-abc", 1.0, "tsne", None, seed=4), codes, "session-a")
    queued = service.request(MapSpec("dense-c8-e2-abc", 1.0, "umap", 400), codes, "session-b")
    wait_for_condition(lambda: computing.state == "running", 150)
    os.kill(service._process.pid, signal.SIGKILL)
    assert finish(computing, 30).state == "failed"
    assert "while computing this map" in computing.error and computing.error.endswith("press Compute again.")
    assert finish(queued).state == "done", queued.error


def test_the_lecturers_map_is_computed_before_the_students_queued_ones(bounded, slow_codes):
    service = bounded(per_session=2, in_all=8)
    busy = service.request(slow(1), slow_codes, "student-a")  # computing: nothing overtakes a running map
    wait_for_condition(lambda: busy.state == "running", 150)
    students = [service.request(slow(seed), slow_codes, session) for seed, session in ((2, "student-a"), (3, "student-b"))]
    lecture = service.request(MapSpec("dense-c16-e2-abc", 1.0, "umap", 3000), slow_codes, "lecturer", lecturer=True)
    service.stop(busy.spec, "student-a")  # frees the map process at once
    wait_for_condition(lambda: lecture.state != "queued", 60)
    assert [task.state for task in students] == ["queued", "queued"]  # the lecturer's went first
    assert finish(lecture).state == "done", lecture.error


def test_a_map_process_that_stops_answering_is_ended_and_only_its_map_fails(service, codes, monkeypatch):
    import os
    import signal

    monkeypatch.setenv("AE_MAP_HUNG_SECONDS", "3")  # the default is 60 s, for numba's long compiled loops
    computing = service.request(MapSpec("dense-c8-e2-abc", 1.0, "tsne", None, seed=5), codes, "session-a")
    queued = service.request(MapSpec("dense-c8-e2-abc", 1.0, "umap", 300, seed=5), codes, "session-b")
    wait_for_condition(lambda: computing.state == "running", 150)
    process = service._process
    os.kill(process.pid, signal.SIGSTOP)
    try:
        assert finish(computing, 20).state == "failed"
    finally:
        try:
            os.kill(process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert "was silent for" in computing.error and "stopped or hung" in computing.error
    assert finish(queued).state == "done", queued.error
