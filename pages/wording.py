"""How the pages put numbers and credits into words (the words themselves: ae.display.texts)."""
import streamlit as st

from ae.display.texts import format_epochs, format_seconds, trained_epochs_text  # noqa: F401  (pages import them here)
from ae.model.data import CREDIT


def credit() -> None:
    st.caption(CREDIT)
