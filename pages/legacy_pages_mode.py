"""A workaround for a Streamlit internal: a deep link as the first request after a start."""
import streamlit as st

_settled = False  # the legacy mode was found off once: Streamlit never turns it on again in a server process


def leave_legacy_pages_mode() -> None:
    """Route a page that Streamlit ran without `app.py` back through it.

    Streamlit treats a `pages/` folder beside the entry script as a legacy multipage app
    until `st.navigation` has run once in the process. So if the very first request after
    a start is a deep link (say /latent), Streamlit runs that page directly: no layout, no
    error guard, and a sidebar listing every file. `app.py` and every page call this first;
    it switches the legacy mode off and reruns, so the same URL is served via `app.py`.

    It checks only until it has found the mode off once per process, as the import side effect
    it replaces did: AppTest turns the mode back on before every run, and a rerun there would
    drop that run's button clicks. Internal API (`PagesManager.uses_pages_directory`):
    tests/browser/test_deep_link.py checks it.
    """
    global _settled
    if _settled:
        return
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    _settled = True
