"""Faults and bad state, each as a fault run found it: a killed training process, kills
during Stop and during a save, damaged records, data files that lie, racing sessions.
Real training processes, real Keras, a real MNIST slice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ae.model.config import TrainingConfig
from ae.model.data import DataError, load_dataset
from ae.model.history import History
from ae.training.protocol import RunOrder
from ae.training.snapshot import JobState
from ae.jobs.manager import JobManager
from ae.storage.store import RECORD_FILE, ModelStore
from tests.conftest import ROOT
from tests.test_training import entry_names, wait_for, wait_until_done

SMALL = TrainingConfig(code_size=8, epochs=1, batch_size=64, train_size=500, seed=4)
# Many short epochs: a kill lands mid-run, after some checkpoints.
LONG = TrainingConfig(code_size=8, epochs=100, batch_size=32, train_size=2000, seed=5)


@pytest.fixture
def manager(dataset, cache_dir):
    made = JobManager(dataset, ModelStore(cache_dir))
    yield made
    made.close()


def kill_worker(manager: JobManager) -> int:
    pid = manager.worker_pid
    os.kill(pid, signal.SIGKILL)
    return pid


def test_killing_the_training_process_mid_run_fails_the_job_in_words_and_resumes_from_its_last_epoch(manager, dataset):
    saved = manager.request(SMALL)
    assert wait_until_done(saved).state is JobState.FINISHED
    saved_weights = saved.models().autoencoder.get_weights()

    job = manager.request(LONG)
    wait_for(job, lambda s: s.history.epochs_done >= 3, "three epochs")
    killed_pid = kill_worker(manager)
    failed = wait_for(job, lambda s: s.state is JobState.FAILED, "failing after the kill", timeout=30) \
        if job.snapshot().state is not JobState.FAILED else job.snapshot()
    assert "killed by signal 9" in failed.error and "SIGKILL" in failed.error
    assert "resume from epoch" in failed.error
    assert failed.resume_from is not None and failed.resume_from >= 2
    assert manager.worker_exits and "signal 9" in manager.worker_exits[-1]

    # Every model saved before is intact, and the web side never stopped answering.
    for before, after in zip(saved_weights, manager.get(SMALL.key).models().autoencoder.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert manager.trained_jobs() == [manager.get(SMALL.key)]

    # Asking again starts a fresh training process, which resumes from the checkpoint.
    again = manager.request(LONG)
    assert again is job
    resumed = wait_for(job, lambda s: s.state is JobState.RUNNING and s.position > failed.resume_from,
                       "training again", timeout=60)
    assert manager.worker_pid != killed_pid
    # The epochs before the kill come back as they were. The failed job's last snapshot may lag
    # its checkpoint by an epoch (epochs are shorter than the snapshot interval), so only the
    # epochs both saw are compared.
    before = failed.history.epoch_ends[: int(failed.resume_from)]
    assert before and resumed.history.epoch_ends[: len(before)] == before
    job.stop()
    stopped = wait_until_done(job, timeout=60)
    assert stopped.state is JobState.STOPPED and stopped.history.epochs_done > failed.resume_from
    # Its loss went on from where it was, not from an untrained model.
    assert stopped.history.train_loss[int(failed.resume_from)] < stopped.history.train_loss[0]


def test_a_new_request_after_a_kill_trains_normally(manager):
    job = manager.request(LONG)
    wait_for(job, lambda s: s.state is JobState.RUNNING, "running")
    queued = manager.request(SMALL)
    assert queued.snapshot().state is JobState.QUEUED
    kill_worker(manager)
    wait_for(queued, lambda s: s.state is JobState.FAILED, "failing after the kill", timeout=30)
    assert "before this job started" in queued.snapshot().error
    again = manager.request(SMALL)
    assert wait_until_done(again).state is JobState.FINISHED


@pytest.mark.parametrize("delay", [0.0, 0.4])
def test_once_stopped_shows_the_model_is_on_disk_even_if_killed_right_after(manager, delay):
    job = manager.request(LONG)
    wait_for(job, lambda s: s.state is JobState.RUNNING and s.position > 0.5, "some progress")
    job.stop()
    seen_stopped = None
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if job.snapshot().state is JobState.STOPPED:
            seen_stopped = job.snapshot()
        time.sleep(0.01)
    kill_worker(manager)
    time.sleep(0.5)
    final = job.snapshot()
    if final.state is JobState.STOPPED or seen_stopped is not None:
        stopped = seen_stopped or final
        record = json.loads((manager.store.entry_dir(LONG.key) / RECORD_FILE).read_text())
        assert record["epochs_done"] == stopped.history.epochs_done
        assert manager.get(LONG.key).models() is not None
    else:  # killed before the save finished: reported as a failure, never as "Stopped"
        assert final.state is JobState.FAILED
        assert not (manager.store.entry_dir(LONG.key) / RECORD_FILE).exists() or final.has_model


SAVE_LOOP = """
import sys, time
sys.path.insert(0, {root!r})
import ae
from pathlib import Path
from ae.model.config import TrainingConfig
from ae.model.architectures import build_models
from ae.storage.store import ModelStore
store = ModelStore(Path({cache!r}))
config = TrainingConfig(code_size=8, epochs=1, train_size=100)
models = build_models("dense", 8)
print("ready", flush=True)
for number in range(100000):
    store.save(config, models, {{"saved_at": time.time(), "epochs_done": number}})
"""


def test_kills_during_saves_never_lose_the_entry_and_leftovers_are_cleaned(cache_dir):
    store = ModelStore(cache_dir)
    config = TrainingConfig(code_size=8, epochs=1, train_size=100)
    rng = np.random.default_rng(0)
    for _ in range(6):
        process = subprocess.Popen([sys.executable, "-c", SAVE_LOOP.format(root=str(ROOT), cache=str(cache_dir))],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.05 + rng.uniform(0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        # Listed, whole, and loadable at every kill.
        [record] = store.records()
        assert record["config"] == config
        assert store.load_models(config) is not None
    store.clean_leftovers()
    assert entry_names(cache_dir) == [config.key]
    files = sorted(path.name for path in store.entry_dir(config.key).iterdir())
    assert len(files) == 2 and RECORD_FILE in files, files


def test_an_entry_left_half_renamed_by_the_old_layout_is_restored(cache_dir):
    store = ModelStore(cache_dir)
    config = TrainingConfig(code_size=8, epochs=1, train_size=100)
    from ae.model.architectures import build_models

    store.save(config, build_models("dense", 8), {"saved_at": 1.0})
    os.replace(store.entry_dir(config.key), cache_dir / f".old-{config.key}-1234abcd")
    (cache_dir / f".tmp-{config.key}-99999999").mkdir()
    assert store.records() == []
    store.clean_leftovers()
    assert entry_names(cache_dir) == [config.key]
    assert [record["config"] for record in store.records()] == [config]


@pytest.mark.parametrize("field, value, phrase", [
    ("test_metrics", {"bce": "x", "mse": 0.1, "bce_per_digit": [], "mse_per_digit": [], "count_per_digit": []}, "test_metrics"),
    ("step_losses", [[1, 2, 3], [4]], "step_losses"),
    ("train_loss", ["a"], "train_loss"),
    ("epochs_done", -3, "epochs_done"),
    ("stopped_early", "yes", "stopped_early"),
])
def test_bad_values_in_a_record_make_it_a_damaged_entry_not_a_broken_page(cache_dir, field, value, phrase):
    from ae.model.architectures import build_models

    store = ModelStore(cache_dir)
    config = TrainingConfig(code_size=3, epochs=1, train_size=100)
    store.save(config, build_models("dense", 3), {"saved_at": 1.0, "epochs_done": 1})
    path = store.entry_dir(config.key) / RECORD_FILE
    record = json.loads(path.read_text())
    record[field] = value
    path.write_text(json.dumps(record))
    assert store.records() == []
    [problem] = store.problems
    assert problem.key == config.key and phrase in problem.message and problem.config == config


def test_stop_and_continue_pressed_at_once_end_consistent(manager):
    job = manager.request(LONG)
    wait_for(job, lambda s: s.state is JobState.RUNNING and s.position > 0, "progress")
    job.stop()
    stopped = wait_until_done(job, timeout=60)
    assert stopped.state is JobState.STOPPED
    job.extend(50)
    wait_for(job, lambda s: s.state is JobState.RUNNING, "running again")
    outcomes: list[str] = []

    def press(action) -> None:
        try:
            action()
            outcomes.append("ok")
        except ValueError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=press, args=(job.stop,)), threading.Thread(target=press, args=(lambda: job.extend(3),))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = wait_until_done(job, timeout=60)
    assert final.state in (JobState.STOPPED, JobState.FINISHED), final.error
    assert final.history.epochs_total >= final.history.epochs_done
    assert final.history.epoch_ends[-1] == pytest.approx(final.history.epochs_done)
    record = json.loads((manager.store.entry_dir(LONG.key) / RECORD_FILE).read_text())
    assert record["epochs_done"] == final.history.epochs_done  # what the page says is what is on disk
    assert len(outcomes) == 2


def test_training_models_kept_in_memory_are_bounded(dataset, cache_dir):
    """A slot's worker keeps at most two training copies, however many configs a room tries."""
    from ae.storage.store import ModelStore as Store
    from ae.training.protocol import Progress
    from ae.training.worker import TRAINING_MODELS_KEPT, Worker

    sent = []
    worker = Worker(dataset, Store(cache_dir), lambda message: sent.append(message) and False, "this test")
    for size in (2, 3, 4, 5):
        config = SMALL.with_changes(code_size=size)
        order = RunOrder(config.to_dict(), History(epochs_total=config.epochs).to_dict(), None, True, None)
        job = worker.run(order)
        assert job.state is JobState.FINISHED, job.error
    assert len(worker._kept) == TRAINING_MODELS_KEPT == 2
    finals = [message.snapshot for message in sent if isinstance(message, Progress) and not message.snapshot.is_active]
    assert [snapshot.config.code_size for snapshot in finals] == [2, 3, 4, 5]  # each run's end went out
    assert all(message.where == "this test" for message in sent)


def test_numba_cache_is_outside_the_model_cache(cache_dir):
    code = ("import os, ae; print(os.environ['NUMBA_CACHE_DIR'])")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["AE_CACHE_DIR"] = str(cache_dir)
    numba_dir = Path(subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout.strip())
    assert cache_dir.resolve() not in numba_dir.resolve().parents


def _npy_header_only(shape) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_2_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_an_archive_claiming_huge_arrays_is_refused_before_loading(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", _npy_header_only((1_000_000_000, 28, 28)))
        for key in ("y_train", "x_test", "y_test"):
            archive.writestr(f"{key}.npy", _npy_header_only((10,)))
    with pytest.raises(DataError, match="declares .* GiB of arrays; the limit is"):
        load_dataset(path)


def test_a_plain_npy_renamed_npz_gets_a_data_file_sentence(tmp_path):
    path = tmp_path / "images.npz"
    np.save(path.with_suffix(".npy"), np.zeros((3, 28, 28), dtype=np.uint8))
    path.with_suffix(".npy").rename(path)
    with pytest.raises(DataError, match="single .npy array, not an .npz archive"):
        load_dataset(path)


def test_training_digits_offered_never_exceed_what_a_config_accepts(tmp_path):
    from ae.model.config import MAX_TRAIN_SIZE, usable_training_digits

    class Big:
        x_train = np.zeros((70_000, 28, 28), dtype=np.uint8)

    assert usable_training_digits(Big) == MAX_TRAIN_SIZE
    TrainingConfig(train_size=usable_training_digits(Big))  # valid


def test_a_subset_of_training_digits_is_converted_alone(dataset):
    from ae.model.data import Dataset

    fresh = Dataset(dataset.path, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    indices = np.arange(0, 2000, 10)
    images = fresh.training_images(indices)
    assert images.shape == (200, 28, 28, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images[:, :, :, 0], dataset.x_train[indices] / np.float32(255))
    assert "train_images" not in fresh.__dict__  # the other 1,800 digits were never converted
