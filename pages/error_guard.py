"""Unexpected errors in a fragment become a message in words, like app.py's guard for whole pages."""
import streamlit as st


def guarded(body):
    """Run a fragment's body so that an unexpected error is a message, not Streamlit's red box:
    app.py's guard does not reach fragment reruns."""

    def run(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except Exception as error:  # a fragment must never show a traceback
            import logging

            logging.getLogger("autoencoder_explorer").exception("Live view failed")
            st.error(f"This view hit a problem it did not expect ({type(error).__name__}: {error}). "
                     "Training and saved models are untouched.")

    return run
