"""The job manager, the model picker and loading the picked model, and the quick-train button."""
import streamlit as st

from ae.model.config import TrainingConfig
from ae.model.data import DataError
from ae.model.history import reached
from pages.session import MY_JOBS, default_model, pick_job, request_job, session_present, visitor
from pages.wording import format_epochs

QUICK_CONFIG = TrainingConfig(architecture="dense", code_size=49, epochs=1, batch_size=256)


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


def quick_train_button(key: str) -> None:
    """One click to a first model: the article's dense model, code size 49, one epoch."""
    if st.button(
        "Train a quick model (article's model, code size 49, 1 epoch)",
        key=key,
        type="primary",
        icon=":material/bolt:",
    ):
        if request_job(manager_or_stop(), QUICK_CONFIG) is not None:
            st.switch_page("pages/train.py")


def no_model_yet(key: str) -> None:
    st.info("No model is trained yet. Train one to see results here.", icon=":material/info:")
    quick_train_button(key)


def model_label(job) -> str:
    """Short enough for a model picker on a 1280-pixel projector: yours first, then what it is."""
    snapshot = job.snapshot()
    config = snapshot.config
    done, planned = format_epochs(snapshot.history.epochs_done), config.epochs
    epochs = f"{done} epoch{'' if done == '1' else 's'}" if reached(snapshot.history.epochs_done, planned) else f"{done}/{planned} epochs"
    if snapshot.state.value == "stopped":
        epochs += ", stopped"
    loss = f" · loss {snapshot.test_metrics.bce:.4f}" if snapshot.test_metrics else ""
    mine = "yours · " if job.key in st.session_state.get(MY_JOBS, ()) else ""
    kind = config.architecture + config.variants
    return f"{mine}code {config.code_size} · {kind} · {epochs}{loss} · seed {config.seed}"


def damaged_models(manager, key: str) -> None:
    """Saved models that cannot be used, each with Delete and (if its settings are known) Retrain."""
    problems = manager.problems
    if not problems:
        return
    with st.expander(f":material/warning: {len(problems)} saved model(s) are damaged and were left out"):
        for index, problem in enumerate(problems):
            st.write(problem.message)
            delete_col, retrain_col = st.columns(2)
            refusal = manager.delete_refusal(problem.key, **visitor())
            if delete_col.button("Delete", key=f"{key}_delete_{index}", icon=":material/delete:",
                                 disabled=refusal is not None, help=refusal):
                manager.delete(problem.key, **visitor())
                st.rerun()
            if problem.config is not None and retrain_col.button(
                "Retrain", key=f"{key}_retrain_{index}", icon=":material/refresh:"
            ):
                if request_job(manager, problem.config) is not None:
                    st.switch_page("pages/train.py")


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
        pick_job(st.session_state[key])

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


def _models_or_problem(job):
    """(models, None), or (None, the store's sentence) for a damaged file."""
    from ae.storage.store import StoreError

    try:
        return job.models(), None
    except StoreError as error:
        return None, error


def load_models_or_stop(job):
    """The saved model of a job; a damaged file becomes a message, not a traceback."""
    models, problem = _models_or_problem(job)
    if problem is not None:
        st.error(f"{problem} It is now listed with the damaged models, where you can delete or retrain it.")
        st.stop()
    return models


def load_models_or_warn(job, label: str):
    """A compared model's saved weights, or None with a warning: a damaged file leaves that
    model off the comparison and the rest of the page stands."""
    models, problem = _models_or_problem(job)
    if problem is not None:
        st.warning(f"{label} is left off: {problem} It is now listed with the damaged models.", icon=":material/warning:")
    return models


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
