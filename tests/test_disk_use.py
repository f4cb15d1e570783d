"""The model cache's disk use in one line, and eviction under a quota (ae/storage/disk_use.py,
ae/storage/eviction.py), on a real store holding small real models."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from ae.model.config import TrainingConfig
from ae.storage.checkpoint import checkpoint_dir, save_checkpoint
from ae.storage.disk_use import disk_use_line, measure, model_bytes, size_text
from ae.storage.eviction import EvictionSettings, choose_evictions, evict_unused, eviction_settings
from ae.storage.store import ModelStore

NOW = 1_000_000.0
HOUR = 3600.0
CONFIGS = [TrainingConfig(code_size=size, epochs=1, train_size=100) for size in (2, 3, 4, 5)]
KEYS = [config.key for config in CONFIGS]  # saved at 100, 200, 300, 400: KEYS[0] is the oldest


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Four real dense models, saved once; each test works on its own copy."""
    from ae.model.architectures import build_models

    root = tmp_path_factory.mktemp("saved") / "store"
    store = ModelStore(root)
    for number, config in enumerate(CONFIGS, start=1):
        store.save(config, build_models("dense", config.code_size), {"saved_at": 100.0 * number})
    return root


@pytest.fixture
def store(saved, tmp_path) -> ModelStore:
    shutil.copytree(saved, tmp_path / "store")
    return ModelStore(tmp_path / "store")


def choose(store, quota, pinned=(), active=(), last_used=None, idle=HOUR):
    return [e.key for e in choose_evictions(store, set(pinned), set(active), last_used or {}, quota, idle, NOW)]


def test_the_line_says_size_models_pins_free_space_and_quota(store):
    line = disk_use_line(store, pinned={KEYS[0], "dense-c9-e1-notsaved"}, quota_bytes=2_000_000_000)
    assert re.fullmatch(r"Model cache: [\d.]+ (kB|MB) in 4 models \(1 pinned\), [\d.]+ [kMGT]?B free on its disk; "
                        r"quota 2 GB\.", line), line
    assert disk_use_line(store, set()).endswith("; no quota.")
    assert "over it by" in disk_use_line(store, set(), quota_bytes=1000)

    before = measure(store).total_bytes
    save_checkpoint(store, "dense-c7-e9-running", [np.zeros(10_000, np.float32)], [], {"epochs_done": 1.0})
    assert measure(store).total_bytes > before + 40_000
    assert "of it checkpoints of unfinished runs" in disk_use_line(store, set())
    for key in KEYS[1:]:
        store.delete(key)
    assert "in 1 model (0 pinned)" in disk_use_line(store, set())


def test_an_empty_or_missing_cache_reads_as_zero(tmp_path):
    line = disk_use_line(ModelStore(tmp_path / "never-made"), set())
    assert line.startswith("Model cache: 0 bytes in 0 models (0 pinned)")


def test_no_quota_evicts_nothing_however_full(store, monkeypatch):
    assert choose(store, quota=None, idle=0) == []
    monkeypatch.delenv("AE_CACHE_QUOTA_MB", raising=False)
    assert evict_unused(store, set(), set(), {}, now=NOW) == []
    assert len(store.records()) == 4


def test_under_the_quota_nothing_is_evicted(store):
    assert choose(store, quota=measure(store).total_bytes, idle=0) == []


def test_pinned_active_and_recently_used_models_are_never_evicted(store):
    recently = {KEYS[2]: NOW - 60}  # opened a minute ago, though saved long before
    assert choose(store, quota=0, pinned=[KEYS[0]], active=[KEYS[1]], last_used=recently) == [KEYS[3]]
    assert choose(store, quota=0, pinned=KEYS) == []
    assert choose(store, quota=0, idle=NOW) == []  # none unused for that long


def test_least_recently_used_go_first_and_only_until_under_the_quota(store):
    last_used = {KEYS[0]: NOW - 2 * HOUR}  # the oldest save was opened lately: it goes last
    total = measure(store).total_bytes
    assert choose(store, quota=total - 1, last_used=last_used) == [KEYS[1]]
    assert choose(store, quota=total - model_bytes(store, KEYS[1]), last_used=last_used) == [KEYS[1]]
    assert choose(store, quota=total - model_bytes(store, KEYS[1]) - 1, last_used=last_used) == [KEYS[1], KEYS[2]]
    assert choose(store, quota=0, last_used=last_used) == [KEYS[1], KEYS[2], KEYS[3], KEYS[0]]


def test_evicting_deletes_the_models_and_their_checkpoints_and_says_so(store):
    save_checkpoint(store, KEYS[1], [np.zeros(100, np.float32)], [], {"epochs_done": 1.0})
    quota = measure(store).total_bytes - model_bytes(store, KEYS[1]) - 1
    lines = evict_unused(store, {KEYS[0]}, set(), {}, EvictionSettings(quota, 24 * HOUR), now=NOW)
    assert [line.split()[2] for line in lines] == [KEYS[1], KEYS[2]]
    assert lines[0].endswith(f"unused for 12 days) to keep the model cache under its {size_text(quota)} quota."), lines
    assert [record["config"].key for record in store.records()] == [KEYS[0], KEYS[3]]
    assert not checkpoint_dir(store, KEYS[1]).exists()
    assert measure(store).total_bytes <= quota


def test_an_unreadable_entry_is_left_alone(store):
    broken = store.root / "dense-c6-e1-deadbeef"
    broken.mkdir()
    (broken / "record.json").write_text("{not json")
    assert "dense-c6-e1-deadbeef" not in choose(store, quota=0)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("AE_CACHE_QUOTA_MB", raising=False)
    monkeypatch.delenv("AE_EVICT_UNUSED_HOURS", raising=False)
    assert eviction_settings() == EvictionSettings(None, 24 * HOUR)
    monkeypatch.setenv("AE_CACHE_QUOTA_MB", "2000")
    monkeypatch.setenv("AE_EVICT_UNUSED_HOURS", "2")
    assert eviction_settings() == EvictionSettings(2_000_000_000, 2 * HOUR)
    monkeypatch.setenv("AE_CACHE_QUOTA_MB", "two gigabytes")
    with pytest.raises(ValueError, match="AE_CACHE_QUOTA_MB must be a whole number"):
        eviction_settings()
