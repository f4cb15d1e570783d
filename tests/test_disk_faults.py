"""A full or read-only disk, and models kept in memory only: nothing left behind, nothing
read as damaged later, and a map computed all the same is kept in memory and shown.

A small tmpfs the test mounts stands in for a full disk (root is needed: without it these
tests skip); a model with no saved entry is the in-memory case.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ae.maps.service import MapService, MapSpec
from ae.storage.checkpoint import save_checkpoint
from ae.storage.store import RECORD_FILE, ModelStore, StoreError
from tests.conftest import wait_for_condition


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB filesystem, unmounted afterwards; skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the filesystem of `folder` until about `leave_bytes` are free."""
    import shutil

    free = shutil.disk_usage(folder).free
    (folder / "ballast").write_bytes(b"\0" * max(0, free - leave_bytes))


def stray_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.name.startswith((".tmp-", ".probe-")) or ".tmp-" in path.name)


def codes() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(scale=5.0, size=(10, 8))[np.arange(1200) % 10] + rng.normal(size=(1200, 8))).astype(np.float32)


def finished(task, seconds: float = 150):
    wait_for_condition(lambda: not task.active, seconds)
    return task


def test_a_map_of_a_model_kept_in_memory_is_shown_and_leaves_no_folder(tmp_path):
    service = MapService(tmp_path / "store")
    try:
        task = finished(service.request(MapSpec("dense-c8-e2-memory", 1.0, "umap", 400), codes(), "session-a"))
    finally:
        service.close()
    assert task.state == "done", task.error
    assert task.projection.coordinates.shape == (400, 2)
    assert task.note.startswith("This map is kept in memory only, as its model is")
    assert not (tmp_path / "store" / "dense-c8-e2-memory").exists()  # no folder to read as a damaged model


def test_a_map_on_a_full_disk_is_kept_in_memory_with_one_sentence_and_no_leftovers(small_disk):
    entry = small_disk / "dense-c8-e2-full"
    entry.mkdir()
    (entry / RECORD_FILE).write_text("{}")  # the model is on disk
    fill(small_disk, leave_bytes=4096)
    service = MapService(small_disk)
    try:
        task = finished(service.request(MapSpec("dense-c8-e2-full", 1.0, "umap", 1000), codes(), "session-a"))
    finally:
        service.close()
    assert task.state == "done", task.error
    assert task.projection is not None and "No space left on device" in task.note
    assert task.note.startswith("This map is kept in memory only: the model cache") and task.note.endswith("restart.")
    assert stray_files(small_disk) == []


def test_failed_writes_leave_no_probe_partial_checkpoint_or_first_save_folder(small_disk):
    from ae.model.architectures import build_models
    from ae.model.config import TrainingConfig

    store = ModelStore(small_disk / "runs")
    store.root.mkdir()
    fill(small_disk, leave_bytes=2048)
    assert "No space left on device" in store.writable_problem()
    with pytest.raises(OSError):
        save_checkpoint(store, "dense-c784-e1-abc", [np.zeros((784, 784), np.float32)], [], {"epochs_done": 1})
    config = TrainingConfig(code_size=256, epochs=1)
    with pytest.raises(StoreError, match="No space left on device"):
        store.save(config, build_models("dense", 256), {"saved_at": 1.0})
    assert stray_files(small_disk) == []
    assert list((store.root / ".checkpoints" / "dense-c784-e1-abc").glob("state-*")) == []
    assert not store.entry_dir(config.key).exists()  # a failed first save leaves no folder
    assert store.records() == [] and store.problems == []


def test_folders_of_models_kept_in_memory_are_not_damaged_models_after_a_restart(tmp_path):
    root = tmp_path / "store"
    (root / "dense-c8-e2-empty").mkdir(parents=True)  # a first save that failed before anything was written
    (root / "dense-c8-e2-mapped" / "maps").mkdir(parents=True)  # maps of an in-memory model, before this fix
    (root / "dense-c8-e2-mapped" / "maps" / "umap.npz").write_bytes(b"old")
    (root / "dense-c8-e2-torn").mkdir()
    (root / "dense-c8-e2-torn" / "notes.txt").write_text("someone's file")  # not ours: a damaged entry, named
    store = ModelStore(root)
    assert store.records() == []
    assert [problem.key for problem in store.problems] == ["dense-c8-e2-torn"]
    store.clean_leftovers()
    assert sorted(path.name for path in root.iterdir()) == ["dense-c8-e2-torn"]


def test_a_replay_the_disk_refuses_never_fails_a_saved_model(cache_dir, managers):
    from ae.model.config import TrainingConfig
    from ae.training.snapshot import JobState
    from tests.test_training import wait_for, wait_until_done

    config = TrainingConfig(code_size=8, epochs=3, batch_size=16, train_size=2000, seed=6)
    manager = managers(cache_dir)
    job = manager.request(config)
    wait_for(job, lambda s: s.state is JobState.RUNNING, "running")
    (manager.store.entry_dir(config.key) / "replay.npz").mkdir(parents=True)  # the replay cannot be written there
    final = wait_until_done(job)
    assert final.state is JobState.FINISHED and final.saved_to_disk, final.error
    assert final.warning.startswith("The model is saved, but its training replay is not")
    record = json.loads((manager.store.entry_dir(config.key) / RECORD_FILE).read_text())
    assert record["saved_at"] == pytest.approx(final.saved_at)
