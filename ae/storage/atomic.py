"""Atomic writes that leave nothing behind when the disk refuses.

A file is written beside its target under a `.tmp-` name, flushed, then renamed over it:
readers see the old or the new file. If the write fails (a full or read-only disk), the
temporary file is removed at once, so a failed write never holds disk space until the next
restart's clean-up.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO, Callable


def remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(handle)` into a temporary file, then rename it to `path`; OSError if the disk
    refuses, with the temporary file already gone."""
    path = Path(path)
    temporary = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise
