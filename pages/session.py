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


LECTURER = "lecturer_proved"  # True once this session gave the lecturer key (or its cookie's token)
SIGNED_OUT = "lecturer_signed_out"  # the cookie lasts until the reload; this session said it is not the lecturer


def is_lecturer() -> bool:
    """Whether this session is the lecturer: always, where no lecturer key is configured;
    else once it gave the key, or brought the signed token of an earlier sign-in (a cookie)."""
    from ae.roles import COOKIE_NAME, roles_in_use, token_valid

    if not roles_in_use():
        return True
    if st.session_state.get(SIGNED_OUT):
        return False
    if not st.session_state.get(LECTURER):
        try:
            token = st.context.cookies.get(COOKIE_NAME)
        except Exception:  # no request behind this run (AppTest): no cookie
            token = None
        st.session_state[LECTURER] = token_valid(token)
    return bool(st.session_state[LECTURER])


def visitor() -> dict:
    """Who acts, as the manager's keyword arguments: this session and its role."""
    return {"session": this_session(), "lecturer": is_lecturer()}


def request_job(manager, config):
    """Ask for a config's job on behalf of this session. A refusal (a student over the cap, a
    pinned model) is shown where the button was, in words, and None returned."""
    try:
        job = manager.request(config, **visitor())
    except ValueError as refusal:
        st.warning(str(refusal), icon=":material/block:")
        return None
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
