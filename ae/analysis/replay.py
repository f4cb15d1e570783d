"""The training replay: how the codes organise themselves while a model learns.

While a model trains, the training process keeps frames: the codes of a fixed sample of test
digits and the panel's reconstructions, after the first 1, 4, 16 and 64 steps and at every
epoch's end. They are saved beside the model (`replay.npz`), and the Latent page plays them.
For a stable picture the frames share one layout: the codes themselves at code size 2; else
one PCA fitted on the final codes, each frame then aligned to the final one by orthogonal
Procrustes (rotation, reflection, scale and shift), so points move rather than jump.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPLAY_SAMPLE = 2_000  # test digits whose codes every frame keeps
REPLAY_STEPS = (1, 4, 16, 64)  # early frames, in optimizer steps from a fresh model
MAX_FRAMES = 64  # epoch frames are thinned beyond this, so a 200-epoch replay stays small
REPLAY_FILE = "replay.npz"


@dataclass(frozen=True)
class Frame:
    position: float  # epochs trained when it was taken
    label: str  # "step 4", "epoch 3"
    codes: np.ndarray  # (REPLAY_SAMPLE, code size) float16
    reconstructions: np.ndarray  # (16, 28, 28) float16


def sample_indices(test_count: int) -> np.ndarray:
    """The fixed sample: the same test digits for every model and frame."""
    from ae.analysis.projection import subsample

    return subsample(test_count, REPLAY_SAMPLE, seed=0)


def add_frame(frames: list, frame: Frame) -> None:
    """Append; beyond MAX_FRAMES drop every other epoch frame (the early steps and the last stay)."""
    frames.append(frame)
    if len(frames) > MAX_FRAMES:
        epoch_positions = [i for i, kept in enumerate(frames[:-1]) if kept.label.startswith("epoch")]
        for index in reversed(epoch_positions[1::2]):
            del frames[index]


def save_replay(folder: Path, frames: list) -> None:
    if not frames:
        return
    from ae.storage.atomic import write_atomically

    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / REPLAY_FILE, lambda file: np.savez_compressed(
        file, positions=np.array([f.position for f in frames]), labels=np.array(json.dumps([f.label for f in frames])),
        codes=np.stack([f.codes for f in frames]), reconstructions=np.stack([f.reconstructions for f in frames])))


def load_replay(folder: Path) -> list[Frame]:
    """The saved frames, or [] when there are none or the file is damaged (never unpickled)."""
    path = folder / REPLAY_FILE
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as saved:
            labels = json.loads(str(saved["labels"]))
            positions, codes, reconstructions = saved["positions"], saved["codes"], saved["reconstructions"]
            if not (len(labels) == len(positions) == len(codes) == len(reconstructions)) or codes.ndim != 3:
                return []
            return [Frame(float(p), str(l), c, r) for p, l, c, r in zip(positions, labels, codes, reconstructions)]
    except Exception:  # damaged: the page simply has no replay to offer
        return []


def final_panel(folder: Path, epochs_done: float) -> tuple[float, np.ndarray] | None:
    """The last frame's position and panel reconstructions, read without the codes: what the
    Train page shows for a model saved before this process started. None if there is no usable
    replay, or it is not of the weights at `epochs_done` (a Continue whose replay was not saved)."""
    from ae.model.history import EPOCH_TOLERANCE

    path = folder / REPLAY_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            positions, reconstructions = saved["positions"], saved["reconstructions"]
        if len(positions) == 0 or len(positions) != len(reconstructions) or reconstructions.ndim != 4 \
                or abs(float(positions[-1]) - epochs_done) > EPOCH_TOLERANCE:
            return None
        return float(positions[-1]), reconstructions[-1].astype(np.float32)
    except Exception:  # damaged: no panel, as before
        return None


def procrustes_align(layout: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`layout` rotated (or reflected), scaled and shifted to lie as close as it can to
    `reference`, point for point (orthogonal Procrustes)."""
    layout, reference = np.asarray(layout, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    layout_centre, reference_centre = layout.mean(axis=0), reference.mean(axis=0)
    a, b = layout - layout_centre, reference - reference_centre
    u, singular, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    norm = (a**2).sum()
    scale = singular.sum() / norm if norm > 0 else 1.0
    return scale * a @ rotation + reference_centre


def frame_layouts(frames: list[Frame]) -> list[np.ndarray]:
    """2-D positions of the sample in every frame, on one stable layout (see module docstring)."""
    final = frames[-1].codes.astype(np.float64)
    if final.shape[1] == 2:
        return [frame.codes.astype(np.float64) for frame in frames]
    if final.shape[1] == 1:
        return [np.column_stack([frame.codes[:, 0].astype(np.float64), np.zeros(len(final))]) for frame in frames]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2).fit(final)
    reference = pca.transform(final)
    return [procrustes_align(pca.transform(frame.codes.astype(np.float64)), reference) for frame in frames]
