"""Load the data, start the training and map processes in the background, once per server.

The first paint of the app never waits for them; by the time a user clicks Train or asks
for a UMAP map, the imports (and numba's compilation, in the map process) are usually done.
Set `AE_WARM_UMAP=0` to skip the UMAP warm-up (the tests do, to keep their CPU to themselves).
"""
from __future__ import annotations

import logging
import os
import threading

_started = threading.Event()
_lock = threading.Lock()
log = logging.getLogger(__name__)


def start_background_warmup() -> None:
    """Idempotent: the first call starts one daemon thread, later calls do nothing."""
    with _lock:
        if _started.is_set():
            return
        _started.set()
    threading.Thread(target=_warm, name="ae-warmup", daemon=True).start()


def _warm() -> None:
    try:
        from ae.manager import get_manager

        manager = get_manager()  # starts the training process
        from ae.models import build_models

        build_models("dense", 2)  # TensorFlow for the pages' inference, in this process
    except Exception:  # the page that needs it shows the real error in words
        log.warning("Background load of TensorFlow and the data failed", exc_info=True)
        return
    if os.environ.get("AE_WARM_UMAP", "1") != "0":
        try:
            from ae.maps import get_map_service

            get_map_service(manager.store.root).start()  # it compiles UMAP's code at once
        except Exception:
            log.warning("The map process did not start; the first map will try again", exc_info=True)
