"""Keeping the model cache under a quota, so a room that tries every config cannot fill the disk.

Only what nobody will miss is evicted: never a pinned model (a lecture's presets), never one a
run is queued or running for, never one used within `AE_EVICT_UNUSED_HOURS`; the least
recently used goes first, and only until the cache is back under `AE_CACHE_QUOTA_MB`. Without
a quota nothing is ever evicted. Entries whose record cannot be read are left alone: they may
be a first save under way, and the pages already say what is wrong with them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ae.storage.checkpoint import delete_checkpoint
from ae.storage.disk_use import measure, model_bytes, size_text
from ae.storage.store import ModelStore
from ae.runtime import env_setting

QUOTA_VARIABLE = "AE_CACHE_QUOTA_MB"  # unset: no quota, nothing evicted
IDLE_VARIABLE = "AE_EVICT_UNUSED_HOURS"
DEFAULT_IDLE_HOURS = 24


@dataclass(frozen=True)
class EvictionSettings:
    quota_bytes: int | None
    min_idle_seconds: float


def eviction_settings() -> EvictionSettings:
    """From the environment; ValueError in words for a value that is not a whole number >= 1."""
    quota = env_setting(QUOTA_VARIABLE)
    hours = env_setting(IDLE_VARIABLE) or DEFAULT_IDLE_HOURS
    return EvictionSettings(None if quota is None else quota * 1_000_000, hours * 3600.0)


@dataclass(frozen=True)
class Eviction:
    key: str
    bytes: int
    last_used: float


def choose_evictions(store: ModelStore, pinned: set[str], active: set[str], last_used: dict[str, float],
                     quota_bytes: int | None, min_idle_seconds: float, now: float) -> list[Eviction]:
    """The models to delete, least recently used first, until the cache is within `quota_bytes`.

    Deletes nothing. A model's last use is `last_used[key]`, else its record's `saved_at`.
    If the evictable models do not suffice, all of them are chosen and the cache stays over.
    """
    if quota_bytes is None:
        return []
    excess = measure(store).total_bytes - quota_bytes
    if excess <= 0:
        return []
    candidates = []
    for record in store.records():
        key = record["config"].key
        used = float(last_used.get(key, record["saved_at"]))
        if key not in pinned and key not in active and now - used >= min_idle_seconds:
            candidates.append((used, key))
    chosen = []
    for used, key in sorted(candidates):
        if excess <= 0:
            break
        size = model_bytes(store, key)
        chosen.append(Eviction(key, size, used))
        excess -= size
    return chosen


def idle_text(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"


def evict_unused(store: ModelStore, pinned: set[str], active: set[str], last_used: dict[str, float],
                 settings: EvictionSettings | None = None, now: float | None = None) -> list[str]:
    """Evict what `choose_evictions` picks (the model and any checkpoint of it); one line per
    model for the log and the page. Settings default to the environment's, now to the clock."""
    settings = settings or eviction_settings()
    now = time.time() if now is None else now
    lines = []
    for eviction in choose_evictions(store, pinned, active, last_used, settings.quota_bytes,
                                     settings.min_idle_seconds, now):
        store.delete(eviction.key)
        delete_checkpoint(store, eviction.key)
        lines.append(f"Evicted model {eviction.key} ({size_text(eviction.bytes)}, unused for "
                     f"{idle_text(now - eviction.last_used)}) to keep the model cache under its "
                     f"{size_text(settings.quota_bytes)} quota.")
    return lines
