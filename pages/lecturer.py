"""The lecturer's sign-in and the room's controls: the queue, its order, and the cache's disk use.

The key is typed into a password field and compared on the server (`ae.roles`); it never
appears in a URL, the page or a log. What the browser keeps is a signed token in a cookie, so
a reload within the lecture keeps the role. On a server without a lecturer key none of this
shows: everyone is the lecturer.
"""
import streamlit as st

from ae.roles import COOKIE_NAME, TOKEN_HOURS, key_matches, make_token, roles_in_use
from pages.session import LECTURER, SIGNED_OUT, is_lecturer, visitor

QUEUE_ROWS_SHOWN = 8


COOKIE_TO_SET = "lecturer_cookie_to_set"  # (value, max_age) for the next run to write into the browser


def _write_cookie() -> None:
    """The browser keeps the token (or forgets it: max_age 0) for this site only. Written in
    the run after a sign-in, so the form that held the key is gone from the page by then."""
    pending = st.session_state.pop(COOKIE_TO_SET, None)
    if pending is not None:
        value, max_age = pending
        st.html(f"<script>document.cookie = '{COOKIE_NAME}={value}; path=/; max-age={max_age}; SameSite=Strict';"
                "</script>", unsafe_allow_javascript=True)


def role_box() -> None:
    """Who this session is, and the way in (or out) for the lecturer."""
    if not roles_in_use():
        return
    _write_cookie()
    if not is_lecturer():
        sign_in_form()
        return
    st.caption(":material/school: You are signed in as the **lecturer**: you may stop any run, reorder "
               "the queue, and pin or delete any model.")
    if st.button("Sign out", key="lecturer_sign_out", icon=":material/logout:", type="tertiary"):
        st.session_state[LECTURER], st.session_state[SIGNED_OUT] = False, True
        st.session_state[COOKIE_TO_SET] = ("", 0)
        st.rerun()


def sign_in_form() -> None:
    """The key, typed once per lecture; the browser then keeps a signed token, not the key."""
    with st.expander(":material/school: Lecturer? Sign in"):
        with st.form("lecturer_sign_in", border=False, clear_on_submit=True):
            given = st.text_input("Lecturer key", type="password", key="lecturer_key_field",
                                  help="Given to the server by AE_LECTURER_KEY or .streamlit/secrets.toml.")
            submitted = st.form_submit_button("Sign in", icon=":material/login:")
        if submitted and not key_matches(given):
            st.error("That is not the lecturer key. Students need no key: everything here works without one.")
    if submitted and key_matches(given):
        st.session_state[LECTURER], st.session_state[SIGNED_OUT] = True, False
        st.session_state[COOKIE_TO_SET] = (make_token(), int(TOKEN_HOURS * 3600))
        st.session_state.pop("lecturer_key_field", None)  # the key is kept nowhere
        st.rerun()  # the page is drawn again as the lecturer's, without the form that held the key


def room_panel(manager) -> None:
    """The lecturer's view of the room: the queue (run next, clear) and the cache's disk use."""
    if not roles_in_use() or not is_lecturer():
        return
    queued = manager.queued_jobs()
    with st.expander(f":material/groups: Room: {len(queued)} queued", expanded=False):
        st.caption(manager.disk_use_line())
        for job in queued[:QUEUE_ROWS_SHOWN]:
            snapshot = job.snapshot()
            text, button = st.columns([4, 1.4], vertical_alignment="center")
            text.caption(f"{snapshot.queue_position}. {snapshot.config.describe()}")
            if snapshot.queue_position != 1 and button.button("Run next", key=f"run_next_{job.key}"):
                _act(lambda job=job: manager.run_next(job.key, **visitor()))
        if len(queued) > QUEUE_ROWS_SHOWN:
            st.caption(f"… and {len(queued) - QUEUE_ROWS_SHOWN} more.")
        if st.button("Clear the queue", key="clear_queue", icon=":material/clear_all:", disabled=not queued,
                     help="Takes every queued job out; running ones go on (Stop ends them)."):
            _act(lambda: manager.clear_queue(**visitor()))


def _act(action) -> None:
    try:
        action()
    except ValueError as refusal:
        st.warning(str(refusal), icon=":material/block:")
        return
    st.rerun()
