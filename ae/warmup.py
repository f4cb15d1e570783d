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
        from ae.jobs.manager import get_manager

        manager = get_manager()  # starts the training process
        from ae.model.architectures import build_models

        build_models("dense", 2)  # TensorFlow for the pages' inference, in this process
    except Exception:  # the page that needs it shows the real error in words
        log.warning("Background load of TensorFlow and the data failed", exc_info=True)
        return
    if os.environ.get("AE_WARM_UMAP", "1") != "0":
        try:
            from ae.maps.service import get_map_service

            get_map_service(manager.store.root).start()  # it compiles UMAP's code at once
        except Exception:
            log.warning("The map process did not start; the first map will try again", exc_info=True)


# ---- `python -m ae.warmup`: everything a lecture needs, trained and compiled ahead of it -----
def warm_up_for_a_lecture(presets=None, cache_dir=None, out=None, warm_maps: bool = True) -> list[str]:
    """Train and save every preset not saved yet (a terminal progress bar shows the epochs; the
    training process saves each with its reconstructions and its digit reader), make the digit
    reader of a preset saved without one, pin them all (only the lecturer may change a pinned model), then start the map process so UMAP's code is compiled into its cache. Returns a line per
    preset saying what was done."""
    import sys
    import time

    from tqdm import tqdm

    from ae.jobs.manager import get_manager
    from ae.model.presets import PRESETS
    from ae.storage.store import StoreError

    presets = PRESETS if presets is None else presets
    manager = get_manager(cache_dir=cache_dir)
    lines, jobs = [], {}
    for preset in presets:
        job = manager.get(preset.config.key)
        if job is not None and job.snapshot().has_model and not job.snapshot().is_active:
            if not job.snapshot().pinned:  # the presets are the lecture's: nobody else changes them
                manager.pin(preset.config.key, True, None)
            try:
                made = " and its digit reader made" if ensure_digit_reader(manager, job.snapshot()) else ""
            except (StoreError, OSError) as error:  # one damaged or unwritable preset stops no other
                made = f"; its digit reader could not be made ({error}): Your digit makes it on its first visit"
            lines.append(f"{preset.label}: saved already, pinned{made} ({preset.config.key})")
        else:
            jobs[preset.name] = manager.request(preset.config, pin=True)
    total = sum(preset.config.epochs for preset in presets if preset.name in jobs)
    with tqdm(total=total, unit="epoch", file=out or sys.stderr, desc="Training the presets",
              bar_format="{l_bar}{bar}| {n:.1f}/{total} epochs [{elapsed}<{remaining}]") as bar:
        while True:
            snapshots = [job.snapshot() for job in jobs.values()]
            bar.n = sum(min(s.history.epochs_done + s.step / max(1, s.steps_per_epoch), s.config.epochs) for s in snapshots)
            bar.refresh()
            if not any(s.is_active for s in snapshots):
                break
            time.sleep(0.5)
    for preset in presets:
        if preset.name in jobs:
            snapshot = jobs[preset.name].snapshot()
            done = f"trained and pinned, test BCE {snapshot.test_metrics.bce:.4f}" if snapshot.test_metrics else f"failed: {snapshot.error}"
            lines.append(f"{preset.label}: {done} ({preset.config.key})")
    if warm_maps:
        from ae.maps.service import get_map_service

        maps = get_map_service(manager.store.root)
        maps.start()
        ready = maps.ready.wait(300)
        lines.append("UMAP's compiled code: " + ("in numba's cache" if ready else "not ready after 5 minutes"))
    return lines


def ensure_digit_reader(manager, snapshot) -> bool:
    """A preset saved before models were saved with their digit reader (`ae.analysis.your_digit`)
    gets one here, so no first drawing on stage waits for it; True if it was made now. (A preset
    trained now gets its reader from the training process, with its weights.)"""
    from ae.analysis.your_digit import load_digit_reader, make_digit_reader, save_digit_reader

    folder = manager.store.entry_dir(snapshot.key)
    if not snapshot.saved_to_disk or load_digit_reader(folder, snapshot.saved_at) is not None:
        return False
    models = manager.store.load_models(snapshot.config)
    save_digit_reader(folder, make_digit_reader(models.encoder, manager.dataset, snapshot.saved_at))
    return True


def main(argv: list[str] | None = None) -> None:
    import argparse

    from ae.model.presets import PRESETS, PRESETS_BY_NAME

    parser = argparse.ArgumentParser(description="Train every preset and compile UMAP's code before a lecture.")
    parser.add_argument("--only", nargs="*", choices=sorted(PRESETS_BY_NAME), help="these presets only")
    parser.add_argument("--skip-maps", action="store_true", help="do not compile UMAP's code")
    args = parser.parse_args(argv)
    presets = [PRESETS_BY_NAME[name] for name in args.only] if args.only else list(PRESETS)
    for line in warm_up_for_a_lecture(presets, warm_maps=not args.skip_maps):
        print(line, flush=True)
    from ae.jobs.manager import get_manager

    get_manager().close()


if __name__ == "__main__":
    main()
