"""Presentation mode: larger text, charts and digits for a projector, on every page."""
import streamlit as st

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
