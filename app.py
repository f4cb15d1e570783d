"""Autoencoder Explorer: entry point. One file per page in pages/, navigation here.

TensorFlow, the data and UMAP load in a background thread (ae.warmup) started after the
first page is drawn, so the first paint never waits for them. Any unexpected error on a page becomes a message in words;
the app, its running jobs and its saved models carry on.
"""
import logging
from pathlib import Path

import streamlit as st

from ae.warmup import start_background_warmup
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.presentation import PRESENTATION_CSS, presenting

leave_legacy_pages_mode()  # before anything else: a first request may have come in legacy pages/ mode


def keep_keras_state_between_runs() -> None:
    """Streamlit clears Keras's global state after every script and fragment run
    (`script_runner._clean_problem_modules` calls `keras.backend.clear_session()`). That is a
    full garbage collection per run, about a quarter of the server's CPU with five sessions
    polling (py-spy), and it resets the state of the models that every session shares. The app
    never builds models per run, so it turns that clean-up off. Internal API: re-check after a
    Streamlit upgrade (tests/test_app_runtime.py does)."""
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules = lambda: None


keep_keras_state_between_runs()
FAVICON = Path(__file__).parent / "assets" / "favicon.png"  # shipped: a material icon would be fetched online
st.set_page_config(page_title="Autoencoder Explorer", page_icon=str(FAVICON), layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/reconstructions.py", title="Reconstructions", icon=":material/compare:"),
    st.Page("pages/latent.py", title="Latent space", icon=":material/scatter_plot:"),
    st.Page("pages/your_digit.py", title="Your digit", icon=":material/draw:"),
    st.Page("pages/code_size.py", title="Code size", icon=":material/tune:"),
    st.Page("pages/step_by_step.py", title="Step by step", icon=":material/footprint:"),
    st.Page("pages/few_labels.py", title="Few labels", icon=":material/label:"),
]

# A projector is 1280x720: pages go in a bar across the top (a sidebar would take a fifth of
# the width) and the page starts just below it, so a running job fits on one screen.
COMPACT = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 3.2rem; padding-bottom: 2rem; }
h1 { padding-top: 0.2rem !important; padding-bottom: 0.3rem !important; }
</style>"""

page = st.navigation(PAGES, position="top")
st.html(COMPACT)
if presenting():
    st.html(PRESENTATION_CSS)
try:
    page.run()
except Exception as error:  # never a traceback page
    logging.getLogger("autoencoder_explorer").exception("Page %s failed", page.title)
    st.error(
        f"This page hit a problem it did not expect ({type(error).__name__}: {error}). "
        "Nothing was lost: training jobs and saved models are untouched. Reload the page or try another one."
    )
finally:
    start_background_warmup()  # after the page is drawn, so the first paint never waits for TensorFlow
