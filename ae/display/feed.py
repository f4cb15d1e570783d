"""The live feed: what the Train view shows of a running job, as small files a browser polls.

A Streamlit update costs the web process about 20 ms of CPU per watching session (a fragment
run: the session's rerun, its elements, its messages). Behind `ae.serve`, the web process
instead writes each job's view once per snapshot version, into a folder nginx serves at
`/live/`: `<key>.json` (the progress line, the metrics, the loss curves, the panel's file),
`<key>-<panel version>.png` (the digits) and `room.json` (which job trains now). Every watching
browser fetches them (`pages/live_feed.py`) at no cost to Python at all; a page reruns only
when a job's state changes or a run starts.

Files are replaced atomically (write, then rename), so a poll never reads half a file; a job
keeps its last two panels, and a job that is gone loses its files.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from ae.display.live import panel_png, thin
from ae.display.texts import LOSS_NAMES, progress_text, queue_note
from ae.training.snapshot import JobSnapshot

FEED_FOLDER_VARIABLE = "AE_LIVE_FEED_FOLDER"  # where the web process writes the feed
FEED_URL_VARIABLE = "AE_LIVE_FEED_URL"  # where browsers read it (nginx's /live/)
PANELS_KEPT = 2  # a browser that read the doc just before a new panel still finds its picture
COLOURS = {"steps": "#9ecae1", "train": "#1f77b4", "validation": "#ff7f0e", "reconstruction": "#2ca02c",
           "kl": "#9467bd"}


def feed_settings() -> tuple[Path, str] | None:
    """(folder, URL prefix) when this web process publishes a live feed; None: fragments instead."""
    folder, url = os.environ.get(FEED_FOLDER_VARIABLE), os.environ.get(FEED_URL_VARIABLE)
    return (Path(folder), url) if folder and url else None


def panel_name(key: str, panel_version: int) -> str:
    return f"{key}-{panel_version}.png"


def _rounded(points) -> list:
    return [[round(float(x), 4), round(float(y), 5)] for x, y in points]


def loss_series(snapshot: JobSnapshot) -> list[dict]:
    """The loss chart's curves, as the Plotly chart of the fragment view draws them."""
    history = snapshot.history
    epochs = list(history.epoch_ends)
    series = []
    if history.step_losses:
        series.append({"name": LOSS_NAMES["steps"], "colour": COLOURS["steps"], "points": _rounded(thin(history.step_losses)),
                       "markers": False})
    if history.train_loss:
        series.append({"name": LOSS_NAMES["train"], "colour": COLOURS["train"], "markers": True, "width": 3,
                       "points": _rounded(zip(epochs, history.train_loss))})
    if history.val_loss:
        series.append({"name": LOSS_NAMES["validation"], "colour": COLOURS["validation"], "markers": True, "width": 3,
                       "points": _rounded(zip(epochs, history.val_loss))})
    if history.kl_loss and len(history.kl_loss) == len(history.val_loss):
        series.append({"name": "validation: reconstruction", "colour": COLOURS["reconstruction"], "markers": True,
                       "dash": True, "points": _rounded(zip(epochs, [v - k for v, k in zip(history.val_loss, history.kl_loss)]))})
        series.append({"name": "validation: beta x KL", "colour": COLOURS["kl"], "markers": True, "dash": True,
                       "points": _rounded(zip(epochs, history.kl_loss))})
    return series


def feed_document(snapshot: JobSnapshot, test_digits: int, queue_note: str | None = None) -> dict:
    """Everything the live view draws for one snapshot, in plain JSON types."""
    history = snapshot.history
    panel = None
    if snapshot.panel_reconstructions is not None:
        panel = {"file": panel_name(snapshot.key, snapshot.panel_version),
                 "caption": f"Reconstructions after {snapshot.panel_epoch:.2f} epochs."
                 if snapshot.panel_epoch is not None else ""}
    title = "Loss = reconstruction + beta x KL (per pixel)" if history.kl_loss else "Loss (BCE per pixel)"
    document = {
        "key": snapshot.key,
        "state": snapshot.state.value,
        "progress": round(float(snapshot.progress), 4),
        "text": progress_text(snapshot, test_digits),
        "error": snapshot.error,
        "warning": snapshot.warning,
        "queue_note": queue_note,
        "metrics": [["Train loss", f"{history.train_loss[-1]:.4f}" if history.train_loss else "–"],
                    ["Validation loss", f"{history.val_loss[-1]:.4f}" if history.val_loss else "–"],
                    ["Test loss", f"{snapshot.test_metrics.bce:.4f}" if snapshot.test_metrics else "–"]],
        "chart": {"title": title, "epochs": float(history.epochs_total), "series": loss_series(snapshot)},
        "panel": panel,
        "denoising": bool(snapshot.config.denoising),
    }
    # Named by its content, not by this process's version counter: several web processes write
    # the same file, and a browser must not see a new version when only the writer changed.
    document["version"] = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]
    return document


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{threading.get_ident()}.part")
    partial.write_bytes(data)
    partial.chmod(0o644)
    os.replace(partial, path)


class FeedWriter:
    """Writes the feed of one web process's jobs, once per snapshot version (JobManager listener)."""

    def __init__(self, folder: Path, dataset):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dataset = dataset
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}  # job key -> version written
        self._panels: dict[str, list[str]] = {}  # job key -> its panel files, oldest first
        self._room: str | None = None

    def publish(self, manager) -> None:
        """Write what changed: active jobs' documents and panels, and which job trains now."""
        with self._lock:
            running = manager.running()
            for handle in manager.jobs():
                snapshot = handle.snapshot()
                if snapshot is None or self._written.get(snapshot.key) == snapshot.version:
                    continue
                if not snapshot.is_active and snapshot.key not in self._written:
                    continue  # never watched live here: nothing polls it
                self._write_job(snapshot, queue_note(snapshot, running))
            room = json.dumps({"running": running.key if running is not None else None})
            if room != self._room:
                write_atomically(self.folder / "room.json", room.encode())
                self._room = room
            for key in [key for key in self._written if manager.snapshot(key) is None]:
                self._forget(key)

    def _write_job(self, snapshot: JobSnapshot, queue_note: str | None) -> None:
        document = feed_document(snapshot, len(self.dataset.x_test), queue_note)
        if document["panel"] is not None and document["panel"]["file"] not in self._panels.get(snapshot.key, []):
            write_atomically(self.folder / document["panel"]["file"],
                             panel_png(snapshot, self.dataset.test_images, self.dataset.y_test))
            kept = self._panels.setdefault(snapshot.key, [])
            kept.append(document["panel"]["file"])
            while len(kept) > PANELS_KEPT:
                (self.folder / kept.pop(0)).unlink(missing_ok=True)
        write_atomically(self.folder / f"{snapshot.key}.json", json.dumps(document).encode())
        self._written[snapshot.key] = snapshot.version

    def _forget(self, key: str) -> None:
        self._written.pop(key, None)
        (self.folder / f"{key}.json").unlink(missing_ok=True)
        for name in self._panels.pop(key, []):
            (self.folder / name).unlink(missing_ok=True)


_writers: dict[int, FeedWriter] = {}
_writers_lock = threading.Lock()


def attach_feed(manager, folder: Path) -> FeedWriter:
    """The one feed writer of this manager: it writes after every update the manager hears."""
    with _writers_lock:
        writer = _writers.get(id(manager))
        if writer is None:
            writer = _writers[id(manager)] = FeedWriter(folder, manager.dataset)
            manager.add_listener(lambda: writer.publish(manager))
            writer.publish(manager)
        return writer
