"""Process-wide settings that must be in the environment before TensorFlow or numba load.

TensorFlow reads its thread pools and numba its threading layer once, at import time;
setting them later raises or is ignored. `ae/__init__.py` calls `configure_environment()`
first thing, so importing anything from `ae` makes these settings take effect.
Values already in the environment win, so a user can override each one.
"""
from __future__ import annotations

import os
from pathlib import Path


def _default_threads() -> str:
    return str(max(1, os.cpu_count() or 1))


def configure_environment() -> None:
    """Fill in thread and logging settings unless the user already set them."""
    defaults = {
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": _default_threads(),
        "TF_NUM_INTEROP_THREADS": "2",
        # Two UMAP runs under numba's default 'workqueue' layer can abort the process
        # (umap #665); 'omp' is thread-safe and ships with the numba wheel.
        "NUMBA_THREADING_LAYER": "omp",
        "NUMBA_NUM_THREADS": _default_threads(),
        # Numba's cache holds pickles it loads and runs: never inside the model cache, which
        # people copy and share. Its own folder, writable by the app alone.
        "NUMBA_CACHE_DIR": str(default_code_cache_dir()),
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


def default_cache_dir() -> Path:
    """Where trained models live: `AE_CACHE_DIR`, else the user's cache folder (outside the repo)."""
    configured = os.environ.get("AE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autoencoder-explorer"


def default_code_cache_dir() -> Path:
    """Compiled code (numba's cache): `AE_CODE_CACHE_DIR`, else a folder beside, not inside, the
    model cache. Falls back to a private temporary folder if that one cannot be written."""
    configured = os.environ.get("AE_CODE_CACHE_DIR")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(configured).expanduser() if configured else Path(base) / "autoencoder-explorer-code" / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="ae-numba-"))
    return folder


def env_setting(name: str) -> int | None:
    """A whole-number setting of at least 1 from the environment (None: unset); ValueError in
    words otherwise. Every size, cap and quota the server reads goes through here."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number; got {value!r}.") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1; got {number}.")
    return number
