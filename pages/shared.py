"""Helpers every page uses: the job manager, the model picker, the quick-train button."""
from __future__ import annotations

import os
import threading

import streamlit as st

from ae.config import TrainingConfig
from ae.data import CREDIT, DataError



def _leave_legacy_pages_mode() -> None:
    """Route a page that Streamlit ran without `app.py` back through it.

    Streamlit treats a `pages/` folder beside the entry script as a legacy multipage app
    until `st.navigation` has run once in the process. So if the very first request after
    a start is a deep link (say /latent), Streamlit runs that page directly: no layout, no
    error guard, and a sidebar listing every file. Every page imports this module first;
    this switches the legacy mode off and reruns, so the same URL is served via `app.py`.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_pages_mode()

QUICK_CONFIG = TrainingConfig(architecture="dense", code_size=49, epochs=1, batch_size=256)
SELECTED_JOB = "selected_job_key"


def manager_or_stop():
    """The process-wide JobManager; a bad data file becomes one message and the page stops."""
    try:
        from ae.manager import get_manager

        with st.spinner("Loading the digits (first visit only)..."):
            return get_manager()
    except DataError as error:
        st.error(f"The digits could not be loaded. {error} Set AE_DATA_PATH to a valid file, or unset it to use the bundled MNIST.")
        st.stop()


def quick_train_button(key: str) -> None:
    """One click to a first model: the article's dense model, code size 49, one epoch."""
    if st.button(
        "Train a quick model (article's model, code size 49, 1 epoch)",
        key=key,
        type="primary",
        icon=":material/bolt:",
    ):
        job = manager_or_stop().request(QUICK_CONFIG)
        st.session_state[SELECTED_JOB] = job.key
        st.switch_page("pages/train.py")


def no_model_yet(key: str) -> None:
    st.info("No model is trained yet. Train one to see results here.", icon=":material/info:")
    quick_train_button(key)


def model_label(job) -> str:
    snapshot = job.snapshot()
    metrics = f", test loss {snapshot.test_metrics.bce:.4f}" if snapshot.test_metrics else ""
    stopped = " (stopped early)" if snapshot.state.value == "stopped" else ""
    config = snapshot.config
    return (
        f"{config.architecture} · code {config.code_size} · {format_epochs(snapshot.epochs_done)} epoch(s){stopped}"
        f" · seed {config.seed}{metrics}"
    )


def damaged_models(manager, key: str) -> None:
    """Saved models that cannot be used, each with Delete and (if its settings are known) Retrain."""
    problems = manager.problems
    if not problems:
        return
    with st.expander(f":material/warning: {len(problems)} saved model(s) are damaged and were left out"):
        for index, problem in enumerate(problems):
            st.write(problem.message)
            delete_col, retrain_col = st.columns(2)
            if delete_col.button("Delete", key=f"{key}_delete_{index}", icon=":material/delete:"):
                manager.delete(problem.key)
                st.rerun()
            if problem.config is not None and retrain_col.button(
                "Retrain", key=f"{key}_retrain_{index}", icon=":material/refresh:"
            ):
                st.session_state[SELECTED_JOB] = manager.request(problem.config).key
                st.switch_page("pages/train.py")


SESSION_THREAD_NICENESS = 5


def yield_cpu_to_training() -> None:
    """Lower the priority of the thread running this session's script (Linux: niceness is per
    thread). When CPUs are free it runs at full speed; when a room's page views and a training
    run compete, training wins and the views wait a little. Raising niceness needs no rights."""
    try:
        if os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < SESSION_THREAD_NICENESS:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SESSION_THREAD_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: run as is
        pass


def guarded(body):
    """Run a fragment's body so that an unexpected error is a message, not Streamlit's red box:
    app.py's guard does not reach fragment reruns."""

    def run(*args, **kwargs):
        yield_cpu_to_training()
        try:
            return body(*args, **kwargs)
        except Exception as error:  # a fragment must never show a traceback
            import logging

            logging.getLogger("autoencoder_explorer").exception("Live view failed")
            st.error(f"This view hit a problem it did not expect ({type(error).__name__}: {error}). "
                     "Training and saved models are untouched.")

    return run


def choose_model(manager, key: str):
    """Pick a trained model (newest first, the current one preselected); None if there is none."""
    jobs = manager.trained_jobs()
    damaged_models(manager, key)
    if not jobs:
        no_model_yet(f"{key}_quick")
        return None
    keys = [job.key for job in jobs]
    latest = manager.latest()
    default = latest.key if latest is not None and latest.key in keys else keys[0]
    chosen = st.selectbox(
        "Model",
        keys,
        index=keys.index(default),
        format_func=lambda k: model_label(manager.get(k)),
        key=key,
    )
    return manager.get(chosen)


def load_models_or_stop(job):
    """The saved model of a job; a damaged file becomes a message, not a traceback."""
    from ae.store import StoreError

    try:
        return job.models()
    except StoreError as error:
        st.error(f"{error} It is now listed with the damaged models, where you can delete or retrain it.")
        st.stop()


def chosen_model_or_stop(manager, key: str):
    """The picked model's job, snapshot, Keras models and test-set results; the page stops
    with the quick-train offer when nothing is trained yet."""
    from ae.results import test_set_results

    job = choose_model(manager, key)
    if job is None:
        st.stop()
    snapshot = job.snapshot()
    models = load_models_or_stop(job)
    return job, snapshot, models, test_set_results(job.key, snapshot.saved_at, models, manager.dataset)


def credit() -> None:
    st.caption(CREDIT)


def format_epochs(epochs: float) -> str:
    """2, 2.5 or 2.95: a fraction shows only after a mid-epoch stop."""
    return f"{epochs:.2f}".rstrip("0").rstrip(".")


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
