"""How the pages put numbers and credits into words."""
import streamlit as st

from ae.model.data import CREDIT
from ae.model.history import reached


def format_epochs(epochs: float) -> str:
    """2, 2.5 or 2.95: a fraction shows only after a mid-epoch stop."""
    return f"{epochs:.2f}".rstrip("0").rstrip(".")


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


def credit() -> None:
    st.caption(CREDIT)
