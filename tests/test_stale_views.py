"""Pages show the truth after a restart and a deletion: a link's settings show that config's
state, whatever ran before, and a map never brings back a deleted model's folder."""
from __future__ import annotations

import shutil

import numpy as np
from streamlit.testing.v1 import AppTest

from ae.maps.service import MapService, MapSpec
from ae.storage.store import RECORD_FILE
from tests.conftest import ROOT, wait_for_condition
from tests.test_pages import assert_clean, texts


def test_a_link_to_untrained_settings_shows_them_not_another_model(trained_env):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.query_params.update({"code": "12", "epochs": "3", "digits": "2000", "batch": "64"})  # a fresh session, after a restart
    app.run()
    app.switch_page("pages/train.py").run()
    assert_clean(app)
    shown = texts(app)
    assert "Nothing is trained with these settings yet: press **Train**" in shown
    assert "Finished" not in shown and app.number_input(key="code").value == 12

    plain = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()  # no settings in the address
    plain.switch_page("pages/train.py").run()
    assert "Finished" in texts(plain)  # the default model, as before


def test_a_map_finishing_after_its_model_was_deleted_does_not_bring_its_folder_back(tmp_path):
    root = tmp_path / "store"
    entry = root / "dense-c8-e2-gone"
    entry.mkdir(parents=True)
    (entry / RECORD_FILE).write_text("{}")
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(3000, 8)).astype(np.float32)
    service = MapService(root)
    try:
        task = service.request(MapSpec("dense-c8-e2-gone", 1.0, "tsne", 1500), codes, "session-a")
        wait_for_condition(lambda: task.state == "running", 150)
        shutil.rmtree(entry)  # deleted while the map computes
        wait_for_condition(lambda: not task.active, 150)
    finally:
        service.close()
    assert task.state == "done" and task.projection is not None, task.error
    assert "kept in memory only" in task.note
    assert not entry.exists()


def test_continuing_a_model_whose_folder_was_deleted_says_so_in_words(cache_dir, managers, monkeypatch):
    from ae.model.config import TrainingConfig
    from ae.training.snapshot import JobState
    from tests.test_training import wait_for, wait_until_done

    config = TrainingConfig(code_size=8, epochs=1, batch_size=64, train_size=500, seed=12)
    monkeypatch.setenv("AE_SLOT_RECYCLE_MB", "1")  # a fresh slot process after each run: no training copy kept
    manager = managers(cache_dir)
    job = manager.request(config)
    assert wait_until_done(job).state is JobState.FINISHED
    shutil.rmtree(manager.store.entry_dir(config.key))  # someone deletes it by hand
    job.extend(1)
    failed = wait_for(job, lambda s: s.state is JobState.FAILED, "failing", timeout=60)
    assert "is no longer on the disk (its folder was deleted); train it again." in failed.error
    assert "Errno" not in failed.error
