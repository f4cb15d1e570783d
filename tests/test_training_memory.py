"""What a trained model costs on disk and in the training process: its file holds the weights
only (the optimizer's state lives in checkpoints), and a replay is stored compressed."""
from __future__ import annotations

import numpy as np

from ae.analysis.replay import REPLAY_FILE, load_replay
from ae.model.config import TrainingConfig
from ae.training.snapshot import JobState
from tests.test_training import wait_until_done


def test_a_saved_model_holds_its_weights_only_and_its_replay_compressed(cache_dir, managers):
    config = TrainingConfig(code_size=784, epochs=1, batch_size=64, train_size=1000, seed=13)
    manager = managers(cache_dir)
    job = manager.request(config)
    assert wait_until_done(job).state is JobState.FINISHED
    weights_bytes = 4 * (784 * 784 * 2 + 784 * 2)  # two dense layers, float32
    size = manager.store.weights_path(config.key).stat().st_size
    assert size < 1.1 * weights_bytes, f"{size:,} bytes for {weights_bytes:,} bytes of weights"
    models = job.models()  # and it loads
    assert len(models.autoencoder.get_weights()) == 4

    entry = manager.store.entry_dir(config.key)
    frames = load_replay(entry)
    raw = sum(frame.codes.nbytes + frame.reconstructions.nbytes for frame in frames)
    assert frames and all(frame.codes.dtype == np.float16 for frame in frames)
    assert (entry / REPLAY_FILE).stat().st_size < raw


def test_the_training_processes_stay_under_a_stated_bound_over_many_configs(cache_dir, managers, monkeypatch):
    """A slot's process grows with each distinct config (XLA keeps what it compiled); past
    AE_SLOT_RECYCLE_MB it is replaced between runs, so it never holds more than the limit plus
    one run's growth, and the service, which never loads TensorFlow, stays small."""
    import time

    import psutil

    from tests.test_slots import slot_processes

    limit_mb, one_run_mb = 800, 400
    monkeypatch.setenv("AE_SLOT_RECYCLE_MB", str(limit_mb))
    manager = managers(cache_dir)
    seen, pids = [], set()
    for index in range(4):
        config = TrainingConfig(architecture=("dense", "deep_dense")[index % 2], code_size=4 + 8 * index,
                                epochs=1, batch_size=128, train_size=2000, seed=index)
        assert wait_until_done(manager.request(config)).state is JobState.FINISHED
        time.sleep(1.0)
        slot = slot_processes(manager.worker_pid).get("slot 1")
        if slot is not None:
            pids.add(slot.pid)
            seen.append(slot.memory_info().rss / 2**20)
    assert max(seen) < limit_mb + one_run_mb, [f"{mib:.0f}" for mib in seen]
    assert psutil.Process(manager.worker_pid).memory_info().rss / 2**20 < 400
    assert len(pids) >= 2, f"the slot process was never replaced ({[round(m) for m in seen]} MiB)"
