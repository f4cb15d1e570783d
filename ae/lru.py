"""One bounded cache for every "keep the last few" in the engine.

Loaded models, test-set results, live figures, maps and training copies are each too big to
keep for every model a room tries, and too slow to build on every rerun. `LRU` keeps at most
`size` entries, forgets the least recently used first, never forgets an entry `pinned` says to
keep (a running map), and builds a missing value once even when many sessions ask at the same
moment, without holding the cache's lock while it builds.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, Iterator, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, size: int, pinned: Callable[[V], bool] = lambda value: False):
        if size < 1:
            raise ValueError(f"An LRU cache holds at least 1 entry; got {size}.")
        self.size = size
        self._pinned = pinned
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[K, threading.Lock] = {}

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            self._evict()

    def pop(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            return self._entries.pop(key, default)

    def get_or_build(self, key: K, build: Callable[[], V], waiting: Callable[[], None] | None = None) -> V:
        """The cached value, else `build()` once: other callers of the same key wait for it (and
        hear `waiting()` first, to say so), callers of other keys do not."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            building = self._building.setdefault(key, threading.Lock())
        if waiting is not None and building.locked():
            waiting()
        with building:
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            try:
                value = build()
            except BaseException:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:
                self._entries[key] = value
                self._building.pop(key, None)
                self._evict()
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def values(self) -> list[V]:
        with self._lock:
            return list(self._entries.values())

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._entries))

    def _evict(self) -> None:
        """Caller holds `_lock`: the oldest unpinned entries go until the size fits."""
        for key in list(self._entries):
            if len(self._entries) <= self.size:
                return
            if not self._pinned(self._entries[key]):
                del self._entries[key]
