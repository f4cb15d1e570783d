"""What the live Train view draws, built once per snapshot version and shared by every session.

A lecture hall of 20 sessions polls the same job once a second. Building the loss figure or
encoding the digit panel per session would multiply the web process's work by the room's
size; here each is built once per new snapshot (the training process publishes about once a
second) and every session reuses it.
"""
from __future__ import annotations

import io
import time

import numpy as np

from ae.display.figures import loss_figure
from ae.lru import LRU
from ae.display.images import image_grid
from ae.training.snapshot import JobSnapshot, panel_inputs

MAX_LOSS_POINTS = 400  # the loss chart's recent-steps curve never holds more points than this
_CACHE_SIZE = 16
_cache: LRU[tuple, object] = LRU(_CACHE_SIZE)
build_counts = {"loss": 0, "panel": 0}  # how often each piece was really built (for tests and benchmarks)


def _cached(key: tuple, build):
    return _cache.get_or_build(key, build)


PICTURE_SECONDS = 2.0  # the chart and the digits are rebuilt at most this often while a job trains
_pictures: LRU[str, tuple[float, JobSnapshot]] = LRU(_CACHE_SIZE)


def picture_snapshot(snapshot: JobSnapshot, now: float | None = None) -> JobSnapshot:
    """The snapshot the chart and the digit panel show: the newest at most every
    PICTURE_SECONDS while the job trains, the newest at once when it ends. The progress line
    moves with every update; a new Plotly figure (about 0.1 s to build) and a new picture (a
    new download for every browser) every second would cost the room more than they show."""
    now = time.monotonic() if now is None else now
    shown = _pictures.get(snapshot.key)
    if shown is not None and snapshot.is_active and now - shown[0] < PICTURE_SECONDS \
            and shown[1].version <= snapshot.version and _complete(shown[1]):
        return shown[1]
    _pictures.put(snapshot.key, (now, snapshot))
    return snapshot


def _complete(snapshot: JobSnapshot) -> bool:
    """A picture worth holding: it has reconstructions and a curve; the first ones go out at once."""
    return snapshot.panel_reconstructions is not None and len(snapshot.history.step_losses) > 1


def thin(points, limit: int = MAX_LOSS_POINTS) -> list:
    """At most `limit` points, evenly spread, the last always kept."""
    points = list(points)
    if len(points) <= limit:
        return points
    chosen = np.linspace(0, len(points) - 1, limit).round().astype(int)
    return [points[i] for i in chosen]


def live_loss_figure(snapshot: JobSnapshot):
    """The loss chart for this snapshot; the same object for every session that asks."""

    def build():
        build_counts["loss"] += 1
        return loss_figure(thin(snapshot.history.step_losses), snapshot.history.epoch_ends, snapshot.history.train_loss, snapshot.history.val_loss,
                           kl_loss=snapshot.history.kl_loss)

    return _cached(("loss", snapshot.key, snapshot.version), build)


def panel_png(snapshot: JobSnapshot, test_images: np.ndarray, test_labels: np.ndarray) -> bytes:
    """16 test digits over their reconstructions (two blocks of 8), as PNG bytes encoded once
    per new panel; for a denoising model each block shows the noisy input, the reconstruction
    and the clean digit. Before the first panel the reconstruction rows are black."""

    def build():
        from PIL import Image

        build_counts["panel"] += 1
        clean, shown = panel_inputs(test_images, test_labels, snapshot.config)
        originals = clean[..., 0]
        noisy = shown[..., 0] if snapshot.config.denoising else None
        reconstructions = snapshot.panel_reconstructions
        if reconstructions is None:
            reconstructions = np.zeros_like(originals)
        rows = [originals, reconstructions] if noisy is None else [noisy, reconstructions, originals]
        half = len(originals) // 2
        blocks = [image_grid(np.concatenate([row[part] for row in rows]), columns=half, scale=4)
                  for part in (slice(0, half), slice(half, None))]
        gap = np.full((12, blocks[0].shape[1]), 255, dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(np.vstack([blocks[0], gap, blocks[1]])).save(buffer, format="PNG", optimize=False)
        return buffer.getvalue()

    return _cached(("panel", snapshot.key, snapshot.panel_version, snapshot.panel_reconstructions is None), build)
