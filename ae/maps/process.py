"""The map process: UMAP and t-SNE maps, away from the web server, one at a time.

A UMAP or t-SNE map of 10,000 codes keeps both cores busy for seconds; in the web process it
would hold every session's reruns. This process stays up, so UMAP's compiled code stays
warm, and it never loads TensorFlow (umap-learn would import it for its parametric model).

Messages to it: ("map", task_id, codes, method, max_points, seed, options, path, saved_at) and
("stop", task_id). Messages from it: ("ready",) once UMAP is compiled, ("progress", task_id,
fraction, text), ("done", task_id), ("stopped", task_id), ("failed", task_id, message).
A finished map is written to `path` (`ae.maps.service.save_map`) before "done" is sent; a stopped one
never is.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.25  # seconds between progress messages


def map_main(connection) -> None:
    sys.modules.setdefault("tensorflow", None)  # umap-learn's optional import fails fast instead
    import ae  # noqa: F401,I001  (numba's threading layer and cache folder before numba loads)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s map-process %(levelname)s %(message)s")
    from ae.maps.service import save_map
    from ae.analysis.projection import MapStopped, project, warm_up_umap

    send_lock = threading.Lock()
    stop_requests: set[int] = set()
    pending: queue.Queue = queue.Queue()
    current = [None]  # the task being computed

    def send(message) -> None:
        with send_lock:
            connection.send(message)

    def compute() -> None:
        if os.environ.get("AE_WARM_UMAP", "1") != "0":
            try:
                warm_up_umap()
            except Exception:  # the real map will report any problem
                log.warning("UMAP warm-up failed", exc_info=True)
        send(("ready",))
        while True:
            task_id, codes, method, max_points, seed, options, path, saved_at = pending.get()
            if task_id in stop_requests:
                continue  # stopped while it waited: already answered
            current[0] = task_id
            last = [0.0]

            def progress(fraction: float, text: str) -> None:
                if task_id in stop_requests:
                    raise MapStopped()
                now = time.monotonic()
                if now - last[0] >= PROGRESS_INTERVAL:
                    last[0] = now
                    send(("progress", task_id, float(fraction), text))

            try:
                projection = project(codes, method, max_points=max_points, seed=seed, progress=progress, **options)
                save_map(path, projection, saved_at)
                send(("done", task_id))
            except MapStopped:
                send(("stopped", task_id))
            except Exception as error:  # reported in words; the process lives on
                log.exception("Map %s failed", method)
                send(("failed", task_id, f"{type(error).__name__}: {error}"))

    threading.Thread(target=compute, name="ae-maps", daemon=True).start()
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            os._exit(0)  # the web process is gone
        if message[0] == "map":
            pending.put(message[1:])
        elif message[0] == "stop":
            stop_requests.add(message[1])
            if message[1] != current[0]:  # still waiting: it stops now
                send(("stopped", message[1]))


if __name__ == "__main__":
    from ae.training.process import connect_back

    map_main(connect_back(json.loads(sys.argv[1])["address"]))
