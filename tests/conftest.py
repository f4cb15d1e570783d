"""Shared fixtures: a small slice of the real MNIST and an isolated model cache per test."""
from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ae  # noqa: E402,F401  (thread settings before TensorFlow loads)

# One training slot unless a test asks for more (tests/test_slots.py): queue tests need a
# queue, and on 2 cores one slot per server keeps the many servers of the suite light.
os.environ.setdefault("AE_TRAINING_SLOTS", "1")
from ae.model.data import BUNDLED_PATH  # noqa: E402


@pytest.fixture(scope="session")
def small_mnist_path(tmp_path_factory) -> Path:
    """2,000 training and 500 test digits of the real MNIST, as an .npz with keras's keys."""
    with np.load(BUNDLED_PATH) as full:
        arrays = {
            "x_train": full["x_train"][:2000],
            "y_train": full["y_train"][:2000],
            "x_test": full["x_test"][:500],
            "y_test": full["y_test"][:500],
        }
    path = tmp_path_factory.mktemp("data") / "mnist-small.npz"
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def dataset(small_mnist_path):
    """The small slice, loaded (once per process: load_dataset caches by path)."""
    from ae.model.data import load_dataset

    return load_dataset(small_mnist_path)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh, empty model cache for this test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("AE_CACHE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def close_new_managers():
    """Each JobManager runs a training process, each MapService a map process; close those a test
    created, so processes never pile up across tests (a later test gets fresh ones)."""
    from ae.jobs import manager as manager_module
    from ae.maps import service as maps_module

    before = dict(manager_module._managers)
    maps_before = dict(maps_module._services)
    yield
    created = []
    for registry, lock, earlier in ((manager_module._managers, manager_module._managers_lock, before),
                                    (maps_module._services, maps_module._services_lock, maps_before)):
        with lock:
            for key in [key for key, made in registry.items() if earlier.get(key) is not made]:
                created.append(registry.pop(key))
    for made in created:
        made.close()


@pytest.fixture
def managers(dataset):
    """Makes JobManagers (one training process each) on given folders; closes them after the test."""
    from ae.jobs.manager import JobManager
    from ae.storage.store import ModelStore

    made = []

    def make(root: Path):
        manager = JobManager(dataset, ModelStore(root))
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


def wait_for_condition(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


# ---- pages (AppTest) ---------------------------------------------------------------------
@pytest.fixture
def app_env(monkeypatch, small_mnist_path, tmp_path):
    """Small real MNIST, an empty model cache, no UMAP warm-up."""
    monkeypatch.setenv("AE_DATA_PATH", str(small_mnist_path))
    monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AE_WARM_UMAP", "0")
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def trained_cache(small_mnist_path, tmp_path_factory):
    """A cache holding small trained models, one of each kind: dense at code sizes 1, 8 (2 epochs
    each) and 2 (3 epochs: the most trained, so every page's default); a convolutional model, a
    denoising one and a sparse one (2 epochs each)."""
    from ae.model.config import TrainingConfig
    from ae.model.data import load_dataset
    from ae.storage.store import ModelStore
    from ae.jobs.manager import get_manager

    cache = tmp_path_factory.mktemp("trained-cache")
    manager = get_manager(load_dataset(small_mnist_path), cache)
    small = dict(batch_size=64, train_size=2000)
    configs = [TrainingConfig(code_size=size, epochs=epochs, **small) for size, epochs in ((1, 2), (8, 2), (2, 3))]
    configs += [
        TrainingConfig(architecture="conv", code_size=8, epochs=2, **small),
        TrainingConfig(code_size=8, epochs=2, noise_kind="masking", noise_level=0.3, **small),
        TrainingConfig(architecture="deep_dense", code_size=16, epochs=2, sparsity=1e-3, **small),
        TrainingConfig(architecture="vae", code_size=2, epochs=2, **small),
    ]
    jobs = [manager.request(config) for config in configs]
    wait_for_condition(lambda: all(not job.snapshot().is_active for job in jobs), 300)
    assert [job.snapshot().state.value for job in jobs] == ["finished"] * len(jobs)
    assert ModelStore.for_dataset(load_dataset(small_mnist_path), cache).records()
    return cache


@pytest.fixture
def trained_env(monkeypatch, small_mnist_path, trained_cache):
    monkeypatch.setenv("AE_DATA_PATH", str(small_mnist_path))
    monkeypatch.setenv("AE_CACHE_DIR", str(trained_cache))
    monkeypatch.setenv("AE_WARM_UMAP", "0")
    return trained_cache




def run_async(coroutine):
    """asyncio.run on a thread of its own: earlier tests (Playwright's sync API, AppTest) may
    leave an event loop running on this one."""
    outcome = {}

    def target():
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
