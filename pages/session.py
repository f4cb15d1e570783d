"""This browser session: who it is, whether it is still open, and the models it asked for or picked."""
import streamlit as st

SELECTED_JOB = "selected_job_key"  # the job this session trained or picked last: every page's default
MY_JOBS = "my_job_keys"  # jobs this session asked for (Train, Continue, Resume)
FOLLOWED_RUN = "followed_run_key"  # a run that started while this session watched nothing live


def pick_job(key: str) -> None:
    """This session chose `key` (trained it, or picked it): it is shown, not a followed run."""
    st.session_state[SELECTED_JOB] = key
    st.session_state.pop(FOLLOWED_RUN, None)


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


def remember_my_job(key: str) -> None:
    """This session asked for `key`: it becomes the session's model on every page."""
    pick_job(key)
    st.session_state.setdefault(MY_JOBS, set()).add(key)


def request_job(manager, config):
    """Ask for a config's job on behalf of this session."""
    job = manager.request(config, session=this_session())
    remember_my_job(job.key)
    return job


def default_model(manager):
    """The model a page shows first: the one this session trained or picked last; else the
    most-trained finished model. Returns (job or None, whose: a phrase for the caption)."""
    mine = manager.get(st.session_state.get(SELECTED_JOB, ""))
    if mine is not None and mine.snapshot().has_model and mine.key not in {p.key for p in manager.problems}:
        trained_here = mine.key in st.session_state.get(MY_JOBS, ())
        return mine, "your model" if trained_here else "the model you picked last"
    job = manager.most_trained()
    return job, "the most-trained finished model (not trained in this session)"
