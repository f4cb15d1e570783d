"""The live view's words: epochs, durations, a job's progress line. Shared by the pages and the
live feed (ae.display.feed), so a browser polling the feed reads exactly what a page would draw."""
from __future__ import annotations

import time

from ae.model.history import reached, same_epochs

# The loss chart's curves, short enough for one legend row on a projector's chart; the Plotly
# chart (ae.display.figures) and the served feed's chart (ae.display.feed) both use them.
LOSS_NAMES = {"steps": "train (steps)", "train": "train (epochs)", "validation": "validation"}

PHASE_TEXT = {
    "starting": "Starting: loading the model",
    "compiling": "Compiling the training step (first steps only)",
    "evaluating": "Evaluating on {test:,} test digits",
    "saving": "Saving the model",
}


def format_epochs(epochs: float) -> str:
    """2, 2.5 or 2.95: a fraction shows only after a mid-epoch stop."""
    return f"{epochs:.2f}".rstrip("0").rstrip(".")


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 52nd, 101st, 111th."""
    number = int(number)
    suffix = "th" if number % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def trained_epochs_text(snapshot) -> str:
    """"5 epochs", or "4.07 of 10 epochs (stopped early)": never hides an unfinished plan."""
    done, planned = format_epochs(snapshot.history.epochs_done), snapshot.config.epochs
    if not reached(snapshot.history.epochs_done, planned):
        stopped = " (stopped early)" if snapshot.state.value == "stopped" else ""
        return f"{done} of {planned} epochs{stopped}"
    return f"{done} epoch{'' if done == '1' else 's'}"


def plan_changed(snapshot) -> bool:
    """The job's epoch total is no longer what its settings planned (Continue added some)."""
    return not same_epochs(snapshot.history.epochs_total, snapshot.config.epochs)


def progress_text(snapshot, test_digits: int) -> str:
    state, phase = snapshot.state.value, snapshot.phase.value
    if state == "queued":
        return "Waiting for its turn"
    if state in ("running", "stopping"):
        if phase in PHASE_TEXT:
            return f"{PHASE_TEXT[phase].format(test=test_digits)}..."
        speed = f" · {snapshot.history.samples_per_second:,.0f} digits/s" if snapshot.history.samples_per_second else ""
        eta = f" · ETA {format_seconds(snapshot.eta_seconds)}" if snapshot.eta_seconds is not None else ""
        # Epochs are counted whole: the one under way of the last one asked for (a total left
        # fractional by an older Continue ends part-way through its last epoch).
        last = snapshot.history.last_planned_epoch
        epoch = min(snapshot.epoch + 1, last)
        where = snapshot.where or ""
        node = f" · on {where}" if where.startswith("node ") else ""  # on a cluster: which node trains it
        return (f"Epoch {epoch} of {last} · step {snapshot.step}/{snapshot.steps_per_epoch}"
                f"{speed}{eta}{node}")
    history, settings = snapshot.history, snapshot.config.epochs
    done = format_epochs(history.epochs_done)
    planned = f" (its settings planned {settings})" if plan_changed(snapshot) and state != "failed" else ""
    if state == "stopped" or not history.plan_done:
        stopped = {"stopped": "Stopped after", "failed": "Failed after"}.get(state, "Trained")
        # A Continue after a mid-epoch stop asks for a fractional total (6.27 + 2): not worth saying.
        whole = same_epochs(history.epochs_total, round(history.epochs_total))
        of = f" of {format_epochs(history.epochs_total)}" if whole else ""
        return f"{stopped} {done}{of} epochs{planned}"
    epochs = f"{done} epoch{'' if done == '1' else 's'}"
    return f"{epochs}{planned} · {format_seconds(history.training_seconds)} of training"


def queue_note(snapshot, running) -> str | None:
    """Where a queued job stands, and after what; None for a job that is not queued."""
    if snapshot.state.value != "queued":
        return None
    waiting_for = ""
    if running is not None and running.key != snapshot.key:
        waiting_for = f", after {running.snapshot().config.describe()}"
    return (f"Queued: place {snapshot.queue_position or 1} in line{waiting_for}.{start_estimate(snapshot)} "
            "The chart and the digits appear when its training starts.")


def start_estimate(snapshot, now: float | None = None) -> str:
    """' Starts in about 40 s (measured on this server).' for a queued job, or ' No start time
    yet: nothing like it has trained here.' where no comparable run was measured."""
    if snapshot.starts_at is None:
        return " No start time yet: nothing like the jobs ahead has trained on this server."
    wait = snapshot.starts_at - (time.time() if now is None else now)
    if wait < 5:
        return " Starts in a few seconds."
    return f" Starts in about {format_seconds(wait)} (from runs measured on this server)."
