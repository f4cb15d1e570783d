"""Presentation mode: larger text, charts and digits for a projector, on every page."""
import streamlit as st

PRESENT_KEY = "present"
# Larger text for the back row, and the width it needs: a projector's 1280 pixels go to the
# content, not to side margins, and the title and the gaps between blocks stay modest, so what
# matters on each page is on the first 720-pixel screen (tests/browser/test_presentation_fit.py).
PRESENTATION_CSS = """<style>
html { font-size: 21px !important; }
[data-testid="stMainBlockContainer"] { max-width: 100% !important; padding-left: 1.5rem !important;
  padding-right: 1.5rem !important; }
[data-testid="stHeader"] { height: 3.2rem !important; min-height: 0 !important; }
[data-testid="stVerticalBlock"] { gap: 0.75rem; }
h1 { font-size: 2.1rem !important; }
h4 { padding-top: 0.3rem !important; }
[data-testid="stMetricValue"] { font-size: 1.75rem !important; }
[data-testid="stImage"] img { zoom: 1.3; max-width: 100%; image-rendering: pixelated; }
[data-testid="stCaptionContainer"] { font-size: 0.95rem !important; }
</style>"""


def presenting() -> bool:
    """Presentation mode: `?present=1` in the address, or the toggle on Home; it stays on for
    the session, on every page, until switched off. While on, it is written into the address
    of whichever page shows (the navigation drops it), so a reload, or a link copied from the
    address bar, keeps it; the page's own settings in the address are left as they are."""
    wanted = st.query_params.get(PRESENT_KEY)
    if wanted is not None:
        st.session_state[PRESENT_KEY] = wanted == "1"
    on = bool(st.session_state.get(PRESENT_KEY, False))
    if on and wanted != "1":
        st.query_params[PRESENT_KEY] = "1"
    return on


def chart(figure, container=None, **kwargs) -> None:
    """A Plotly chart, made bigger for the back row in presentation mode."""
    from ae.display.figures import for_projector

    kwargs.setdefault("theme", None)
    (container or st).plotly_chart(for_projector(figure) if presenting() else figure, **kwargs)
