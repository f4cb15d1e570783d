"""The training replay: frames while training, saved beside the model, on a stable layout."""
import time

import numpy as np

from ae.model.config import TrainingConfig
from ae.analysis.replay import (MAX_FRAMES, REPLAY_SAMPLE, Frame, add_frame, frame_layouts, load_replay, procrustes_align,
                       save_replay)
from tests.conftest import wait_for_condition


def _frame(label: str, position: float, codes=None) -> Frame:
    codes = np.zeros((REPLAY_SAMPLE, 2), dtype=np.float16) if codes is None else codes
    return Frame(position, label, codes, np.zeros((16, 28, 28), dtype=np.float16))


def test_a_rotated_reflected_scaled_shifted_copy_aligns_back():
    layout = np.random.default_rng(0).normal(size=(300, 2))
    angle = 1.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 2.5 * (layout @ rotation) @ np.diag([1, -1]) + [7.0, -3.0]
    np.testing.assert_allclose(procrustes_align(moved, layout), layout, atol=1e-9)


def test_frames_share_a_layout_that_ends_on_the_final_codes():
    rng = np.random.default_rng(1)
    final = rng.normal(size=(REPLAY_SAMPLE, 6)).astype(np.float16)
    early = (final * 0.1 + rng.normal(scale=0.01, size=final.shape)).astype(np.float16)
    layouts = frame_layouts([_frame("step 1", 0.01, early), _frame("epoch 1", 1.0, final)])
    assert [layout.shape for layout in layouts] == [(REPLAY_SAMPLE, 2)] * 2
    # the early frame is a shrunken copy of the final one: aligned, it lands near it
    assert np.abs(layouts[0] - layouts[1]).mean() < 0.2 * np.abs(layouts[1]).mean()
    two = rng.normal(size=(REPLAY_SAMPLE, 2)).astype(np.float16)
    np.testing.assert_array_equal(frame_layouts([_frame("epoch 1", 1.0, two)])[0], two.astype(np.float64))


def test_long_runs_are_thinned_but_keep_the_early_steps_and_the_last_epoch(tmp_path):
    frames: list = []
    for label in ("step 1", "step 4", "step 16", "step 64"):
        add_frame(frames, _frame(label, 0.1))
    for epoch in range(1, 201):
        add_frame(frames, _frame(f"epoch {epoch}", float(epoch)))
    labels = [frame.label for frame in frames]
    assert len(frames) <= MAX_FRAMES
    assert labels[:4] == ["step 1", "step 4", "step 16", "step 64"] and labels[-1] == "epoch 200"
    save_replay(tmp_path, frames)
    assert [frame.label for frame in load_replay(tmp_path)] == labels
    (tmp_path / "replay.npz").write_bytes(b"damaged")
    assert load_replay(tmp_path) == []


def test_training_keeps_frames_at_the_early_steps_and_each_epoch(dataset, cache_dir, managers):
    manager = managers(cache_dir)
    config = TrainingConfig(code_size=3, epochs=2, batch_size=64, train_size=2000)  # 32 steps an epoch
    job = manager.request(config)
    wait_for_condition(lambda: not job.snapshot().is_active, 180)
    assert job.snapshot().state.value == "finished"
    frames = load_replay(manager.store.entry_dir(job.key))
    assert [frame.label for frame in frames] == ["step 1", "step 4", "step 16", "epoch 1", "epoch 2"]
    np.testing.assert_allclose([frame.position for frame in frames], [1 / 32, 4 / 32, 16 / 32, 1.0, 2.0], atol=1e-4)
    assert frames[0].codes.shape == (min(REPLAY_SAMPLE, len(dataset.test_images)), 3)
    assert frames[-1].reconstructions.shape == (16, 28, 28)
    assert not np.allclose(frames[0].codes, frames[-1].codes)  # the codes moved as it learned
    job.extend(1)
    time.sleep(0.5)
    wait_for_condition(lambda: not job.snapshot().is_active, 180)
    labels = [frame.label for frame in load_replay(manager.store.entry_dir(job.key))]
    assert labels[-1] == "epoch 3" and labels[:3] == ["step 1", "step 4", "step 16"]
