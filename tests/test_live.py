"""ae.display.live: the live Train view's pieces are built once per snapshot version, for every session."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ae.display import live
from ae.model.config import TrainingConfig
from ae.model.history import History
from ae.training.snapshot import JobSnapshot, JobState


def snapshot(version: int, panel_version: int = 1, steps: int = 5000) -> JobSnapshot:
    config = TrainingConfig(code_size=7, epochs=3)
    return JobSnapshot(
        key=config.key, config=config, state=JobState.RUNNING, version=version, panel_version=panel_version,
        history=History(step_losses=tuple((i / 1000, 0.3 - i / 1e5) for i in range(steps)), epoch_ends=(1.0, 2.0),
                        train_loss=(0.2, 0.15), val_loss=(0.21, 0.16)),
        panel_reconstructions=np.full((16, 28, 28), 0.5, dtype=np.float32),
    )


def test_twenty_sessions_reading_one_version_build_the_figure_once():
    before = live.build_counts["loss"]
    first = snapshot(version=101)
    figures = [live.live_loss_figure(first) for _ in range(20)]
    assert live.build_counts["loss"] == before + 1
    assert all(figure is figures[0] for figure in figures)
    live.live_loss_figure(snapshot(version=102))
    assert live.build_counts["loss"] == before + 2


def test_the_loss_chart_point_count_is_bounded_and_keeps_the_newest_point():
    figure = live.live_loss_figure(snapshot(version=103, steps=5000))
    recent = figure.data[0]
    assert len(recent.x) == live.MAX_LOSS_POINTS
    assert recent.x[-1] == 4.999  # the newest step is always drawn
    assert live.thin([1, 2, 3]) == [1, 2, 3]


def test_the_panel_picture_is_encoded_once_per_panel_and_shows_both_rows():
    test_images, test_labels = np.zeros((16, 28, 28, 1), dtype=np.float32), np.arange(16) % 10
    before = live.build_counts["panel"]
    pictures = {live.panel_png(snapshot(version=v, panel_version=7), test_images, test_labels) for v in range(200, 220)}
    assert live.build_counts["panel"] == before + 1 and len(pictures) == 1
    image = np.asarray(Image.open(io.BytesIO(pictures.pop())))
    assert image.shape[1] == (8 * 30 + 2) * 4  # 8 digits a row, 4x
    assert image.max() >= 127  # the reconstructions (0.5 grey) are drawn, not black


def test_the_chart_and_digits_are_renewed_every_two_seconds_at_most_and_at_once_when_the_job_ends():
    first, second, third = snapshot(version=301), snapshot(version=302), snapshot(version=303)
    assert live.picture_snapshot(first, now=100.0) is first
    assert live.picture_snapshot(second, now=101.0) is first  # within 2 s: the same picture
    assert live.picture_snapshot(third, now=102.5) is third  # 2 s on: the newest
    ended = third.with_changes(state=JobState.FINISHED, version=304)
    assert live.picture_snapshot(ended, now=102.6) is ended  # the end shows at once
    bare = snapshot(version=401).with_changes(panel_reconstructions=None)
    assert live.picture_snapshot(bare, now=200.0) is bare
    newer = snapshot(version=402)
    assert live.picture_snapshot(newer, now=200.5) is newer  # the first digits are never held back
