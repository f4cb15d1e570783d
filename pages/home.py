"""Home: what an autoencoder is, the current model, and one click to a first model.

Reads the job list only (no TensorFlow in the web process), so it paints at once.
"""
import streamlit as st

from ae.model.data import DataError
from ae.model.architectures import ARCHITECTURES
from ae.model.presets import PRESETS
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.model_picker import QUICK_CONFIG, quick_train_button
from pages.presentation import PRESENT_KEY, presenting
from pages.session import default_model, remember_my_job, request_job
from pages.wording import credit, trained_epochs_text

INTRODUCTION = (
    "An **autoencoder** is two networks trained together: an encoder *g* squeezes each image *x* into a short "
    "**code** *h = g(x)*, and a decoder *f* rebuilds the image from that code alone, so that *f(g(x))* is as close "
    "to *x* as backpropagation can make it.  \n"
    "Because the code is much smaller than the 784 pixels of a digit, the network has to learn what matters.  \n"
    "Here you choose the code size, train on MNIST live, compare digits with their reconstructions "
    "(and with PCA), and see the codes as a map coloured by digit."
)


def saved_jobs_or_stop():
    """The JobManager, which reads saved records only: no TensorFlow in this process."""
    try:
        from ae.jobs.manager import get_manager

        return get_manager()
    except DataError as error:
        st.error(f"The digits could not be loaded. {error}")
        st.stop()


def current_model(manager) -> None:
    """What trains now, the model this session would see first, and the quick-train button."""
    st.subheader("Current model")
    running = manager.running()
    if running is not None:
        snapshot = running.snapshot()
        st.info(
            f"Training now: {snapshot.config.describe()} — {snapshot.progress:.0%} done.",
            icon=":material/model_training:",
        )
        st.page_link("pages/train.py", label="Watch it train", icon=":material/monitoring:")
    shown, whose = default_model(manager)
    if shown is not None:
        latest = shown.snapshot()
        config = latest.config
        metrics = latest.test_metrics
        st.caption(f"Showing {whose}.")
        left, middle, right = st.columns(3)
        left.metric("Architecture", ARCHITECTURES[config.architecture].label)
        middle.metric("Code size", f"{config.code_size} of 784")
        right.metric("Test loss (BCE per pixel)", f"{metrics.bce:.4f}" if metrics else "–")
        st.caption(f"{config.describe()}; trained {trained_epochs_text(latest)}.")
        cols = st.columns(3)
        cols[0].page_link("pages/reconstructions.py", label="See its reconstructions", icon=":material/compare:")
        cols[1].page_link("pages/latent.py", label="Explore its latent space", icon=":material/scatter_plot:")
        cols[2].page_link("pages/train.py", label="Train another", icon=":material/model_training:")
    elif running is None:
        st.write("No model is trained yet. One click trains the article's model (code size 49) for one epoch; "
                 "the Train page shows its progress as it goes:")
    quick_train_button("home_quick_train")
    quick = manager.get(QUICK_CONFIG.key)
    estimate = manager.estimate_seconds(QUICK_CONFIG)
    if quick is not None and quick.snapshot().has_model:
        st.caption("The quick model is trained already: the button opens it at once.")
    elif estimate is not None:
        st.caption(f"About {estimate:.0f} s of training on this server, going by its earlier runs"
                   + (", after the run in progress." if running is not None else "."))


def presentation_toggle() -> None:
    present = st.toggle("Presentation mode: larger text, markers and digits for a projector (or add ?present=1 to any address)",
                        value=presenting(), key="present_toggle")
    if present != presenting():
        st.session_state[PRESENT_KEY] = present
        st.query_params[PRESENT_KEY] = "1" if present else "0"
        st.rerun()


def preset_places(rows: bool) -> list:
    """Where each preset goes: a column each, side by side; or, on a projector, one row each
    (button, then its words), so no label is cut and all five fit the first screen."""
    if not rows:
        return [(column, column) for column in st.columns(len(PRESETS))]
    return [tuple(st.columns([1, 2.4], vertical_alignment="center")) for _ in PRESETS]


def preset_buttons(manager, rows: bool = False) -> None:
    """One button per lecture preset: a saved one opens its page, another trains first."""
    st.caption("One click each. A saved preset opens at once; run `python -m ae.warmup` before a lecture to save them all.")
    for (column, words), preset in zip(preset_places(rows), PRESETS):
        job = manager.get(preset.config.key)
        snapshot = job.snapshot() if job is not None else None
        ready = snapshot is not None and snapshot.has_model and not snapshot.is_active
        if column.button(preset.label, key=f"preset_{preset.name}", width="stretch",
                         icon=":material/check_circle:" if ready else ":material/play_arrow:"):
            if ready:
                remember_my_job(job.key)
                st.switch_page(preset.page)
            if request_job(manager, preset.config) is not None:
                st.switch_page("pages/train.py")
        estimate = manager.estimate_seconds(preset.config)
        state = ("saved: opens at once" if ready else "training now" if snapshot is not None and snapshot.is_active
                 else f"trains first, about {estimate:.0f} s" if estimate is not None else "trains first")
        words.caption(f"{preset.description} · **{state}**")


def presets(manager, rows: bool) -> None:
    st.subheader("Presets for a lecture")
    presentation_toggle()
    preset_buttons(manager, rows)


def home_page() -> None:
    leave_legacy_pages_mode()
    st.title("Autoencoder Explorer")
    manager = saved_jobs_or_stop()
    if presenting():  # a lecture starts from the presets: first, on the projector's first screen
        presets(manager, rows=True)
        st.markdown(INTRODUCTION)
        current_model(manager)
    else:
        st.markdown(INTRODUCTION)
        current_model(manager)
        presets(manager, rows=False)
    st.divider()
    credit()


home_page()
