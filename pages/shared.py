"""Helpers every page uses: the job manager, the model picker, the quick-train button."""
from __future__ import annotations


import streamlit as st

from ae.model.config import TrainingConfig, number_problem
from ae.model.data import CREDIT, DataError



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
SELECTED_JOB = "selected_job_key"  # the job this session trained or picked last: every page's default
MY_JOBS = "my_job_keys"  # jobs this session asked for (Train, Continue, Resume)


def this_session() -> str | None:
    """This browser session's id: who asked for a job, and so who may stop it."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return context.session_id if context is not None else None


def session_present(session: str) -> bool:
    """Whether a browser session is still open (a closed tab's request no longer holds a job)."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():  # AppTest runs without a server: everybody is present
        return True
    return Runtime.instance().is_active_session(session)


def manager_or_stop():
    """The process-wide JobManager; a bad data file becomes one message and the page stops."""
    try:
        from ae.jobs.manager import get_manager

        with st.spinner("Loading the digits (first visit only)..."):
            manager = get_manager()
    except DataError as error:
        st.error(f"The digits could not be loaded. {error} Set AE_DATA_PATH to a valid file, or unset it to use the bundled MNIST.")
        st.stop()
    manager.session_present = session_present
    return manager


def remember_my_job(key: str) -> None:
    """This session asked for `key`: it becomes the session's model on every page."""
    st.session_state[SELECTED_JOB] = key
    st.session_state.setdefault(MY_JOBS, set()).add(key)


def request_job(manager, config):
    """Ask for a config's job on behalf of this session."""
    job = manager.request(config, session=this_session())
    remember_my_job(job.key)
    return job


def quick_train_button(key: str) -> None:
    """One click to a first model: the article's dense model, code size 49, one epoch."""
    if st.button(
        "Train a quick model (article's model, code size 49, 1 epoch)",
        key=key,
        type="primary",
        icon=":material/bolt:",
    ):
        request_job(manager_or_stop(), QUICK_CONFIG)
        st.switch_page("pages/train.py")


def number_box(container, label: str, low: int, high: int, default: int, key: str, step: int = 1,
               help: str | None = None) -> int | None:
    """A number box that takes whatever is typed and, when it cannot be used, says why right
    below it and returns None (Streamlit's own min/max would keep the old value silently)."""
    value = container.number_input(label, value=default, step=step, key=key, help=help, persist_state="session")
    problem = number_problem(label, value, low, high)
    if problem:
        container.error(problem, icon=":material/error:")
        return None
    return int(value)


def no_model_yet(key: str) -> None:
    st.info("No model is trained yet. Train one to see results here.", icon=":material/info:")
    quick_train_button(key)


def model_label(job) -> str:
    """Short enough for a model picker on a 1280-pixel projector: yours first, then what it is."""
    snapshot = job.snapshot()
    config = snapshot.config
    done, planned = format_epochs(snapshot.epochs_done), config.epochs
    epochs = f"{done} epoch{'' if done == '1' else 's'}" if snapshot.epochs_done >= planned - 1e-6 else f"{done}/{planned} epochs"
    if snapshot.state.value == "stopped":
        epochs += ", stopped"
    loss = f" · loss {snapshot.test_metrics.bce:.4f}" if snapshot.test_metrics else ""
    mine = "yours · " if job.key in st.session_state.get(MY_JOBS, ()) else ""
    kind = config.architecture + config.variants
    return f"{mine}code {config.code_size} · {kind} · {epochs}{loss} · seed {config.seed}"


def trained_epochs_text(snapshot) -> str:
    """"5 epochs", or "4.07 of 10 epochs (stopped early)": never hides an unfinished plan."""
    done, planned = format_epochs(snapshot.epochs_done), snapshot.config.epochs
    if snapshot.epochs_done < planned - 1e-6:
        stopped = " (stopped early)" if snapshot.state.value == "stopped" else ""
        return f"{done} of {planned} epochs{stopped}"
    return f"{done} epoch{'' if done == '1' else 's'}"


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
                request_job(manager, problem.config)
                st.switch_page("pages/train.py")


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


def default_model(manager):
    """The model a page shows first: the one this session trained or picked last; else the
    most-trained finished model. Returns (job or None, whose: a phrase for the caption)."""
    mine = manager.get(st.session_state.get(SELECTED_JOB, ""))
    if mine is not None and mine.snapshot().has_model and mine.key not in {p.key for p in manager.problems}:
        trained_here = mine.key in st.session_state.get(MY_JOBS, ())
        return mine, "your model" if trained_here else "the model you picked last"
    job = manager.most_trained()
    return job, "the most-trained finished model (not trained in this session)"


def choose_model(manager, key: str):
    """Pick a trained model (newest first, this session's own preselected); None if there is none."""
    jobs = manager.trained_jobs()
    damaged_models(manager, key)
    if not jobs:
        no_model_yet(f"{key}_quick")
        return None
    keys = [job.key for job in jobs]
    default, whose = default_model(manager)
    default_key = default.key if default is not None and default.key in keys else keys[0]

    def picked() -> None:
        st.session_state[SELECTED_JOB] = st.session_state[key]

    chosen = st.selectbox(
        "Model",
        keys,
        index=keys.index(default_key),
        format_func=lambda k: model_label(manager.get(k)),
        key=key,
        on_change=picked,
    )
    if chosen == default_key:
        st.caption(f"Showing {whose}; pick another above.")
    return manager.get(chosen)


def load_models_or_stop(job):
    """The saved model of a job; a damaged file becomes a message, not a traceback."""
    from ae.storage.store import StoreError

    try:
        return job.models()
    except StoreError as error:
        st.error(f"{error} It is now listed with the damaged models, where you can delete or retrain it.")
        st.stop()


def chosen_model_or_stop(manager, key: str):
    """The picked model's job, snapshot, Keras models and test-set results; the page stops
    with the quick-train offer when nothing is trained yet."""
    from ae.analysis.results import test_set_results

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


PRESENT_KEY = "present"
PRESENTATION_CSS = """<style>
html { font-size: 21px !important; }
[data-testid="stMainBlockContainer"] { max-width: 100% !important; }
[data-testid="stImage"] img { zoom: 1.3; max-width: 100%; image-rendering: pixelated; }
[data-testid="stCaptionContainer"] { font-size: 0.95rem !important; }
</style>"""


def presenting() -> bool:
    """Presentation mode: `?present=1` in the address, or the toggle on Home; it stays on for
    the session, on every page, until switched off."""
    wanted = st.query_params.get(PRESENT_KEY)
    if wanted is not None:
        st.session_state[PRESENT_KEY] = wanted == "1"
    return bool(st.session_state.get(PRESENT_KEY, False))


def chart(figure, container=None, **kwargs) -> None:
    """A Plotly chart, made bigger for the back row in presentation mode."""
    from ae.display.figures import for_projector

    kwargs.setdefault("theme", None)
    (container or st).plotly_chart(for_projector(figure) if presenting() else figure, **kwargs)
