"""The live feed (ae.display.feed): the files a big-class server's browsers poll, written by a
real JobManager as a real training run goes, small MNIST."""
from __future__ import annotations

import json
import time
from dataclasses import replace

from ae.display.feed import PANELS_KEPT, attach_feed, feed_document
from ae.display.texts import progress_text
from ae.model.config import TrainingConfig
from tests.test_training import wait_until_done

RUN = TrainingConfig(code_size=4, epochs=8, batch_size=32, train_size=1000, seed=3)


def read(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet (a rename is atomic: never half a file)
        return None


def test_the_feed_follows_a_run_and_keeps_only_the_latest_panels(cache_dir, managers, tmp_path):
    manager = managers(cache_dir)
    folder = tmp_path / "live"
    writer = attach_feed(manager, folder)
    assert attach_feed(manager, folder) is writer  # one writer per manager
    job = manager.request(RUN, session="alice")
    states, versions, running_seen = set(), set(), False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        document = read(folder / f"{job.key}.json")
        room = read(folder / "room.json")
        running_seen |= room is not None and room["running"] == job.key
        if document is not None:
            states.add(document["state"])
            versions.add(document["version"])
            if document["state"] == "finished":
                break
        time.sleep(0.05)
    final = wait_until_done(job)
    document = read(folder / f"{job.key}.json")
    assert {"running", "finished"} <= states and running_seen and len(versions) > 3
    assert document["text"] == progress_text(final, len(manager.dataset.x_test))
    assert document["metrics"][2] == ["Test loss", f"{final.test_metrics.bce:.4f}"]
    names = [series["name"] for series in document["chart"]["series"]]
    assert names == ["train (steps)", "train (epochs)", "validation"]
    assert len(document["chart"]["series"][1]["points"]) == 8
    assert (folder / document["panel"]["file"]).read_bytes().startswith(b"\x89PNG")
    assert len(list(folder.glob(f"{job.key}-*.png"))) <= PANELS_KEPT
    time.sleep(0.5)
    assert read(folder / "room.json") == {"running": None}

    # The version names the content: another web process's copy of the same snapshot matches.
    assert feed_document(replace(final, version=final.version + 100), 500)["version"] == \
        feed_document(final, 500)["version"]
