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
