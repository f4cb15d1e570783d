"""Train: choose a config, start, stop or continue a job, and watch it learn.

Training runs in its own process (ae.worker). A fragment polls the job's snapshot about once
a second while it is active and stops polling when it ends; the main script stays short.
"""
from types import SimpleNamespace

import numpy as np
import streamlit as st

from ae.config import MAX_EPOCHS, TrainingConfig, usable_training_digits, validation_errors
from ae.live import live_loss_figure, panel_png
from ae.models import ARCHITECTURES, MAX_CODE_SIZE
from ae.jobs import panel_indices
from pages.shared import SELECTED_JOB, format_epochs, format_seconds, guarded, manager_or_stop, quick_train_button

SLIDER_MAX_CODE = 128
BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
LEARNING_RATES = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03]
STATE_TEXT = {
    "queued": ":material/hourglass_top: Queued",
    "running": ":material/play_arrow: Training",
    "stopping": ":material/pause: Stopping",
    "finished": ":material/check_circle: Finished",
    "stopped": ":material/stop_circle: Stopped",
    "failed": ":material/error: Failed",
}

manager = manager_or_stop()
dataset = manager.dataset
st.title("Train")


def parse_code_size(slider_value: int, typed: str):
    """The typed size wins when present; returns an int, or the raw text so validation can explain it."""
    typed = typed.strip()
    if not typed:
        return slider_value
    try:
        return int(typed)
    except ValueError:
        return typed


def shown_job():
    """This tab's job if it picked one, else whatever trains now, else the current model."""
    job = manager.get(st.session_state.get(SELECTED_JOB, ""))
    return job or manager.running() or manager.latest()


controls, live_area = st.columns([1, 2.3], gap="large")
with controls:
    st.subheader("Settings")
    architecture = st.selectbox(
        "Architecture", list(ARCHITECTURES), format_func=lambda name: ARCHITECTURES[name].label, key="architecture"
    )
    st.caption(ARCHITECTURES[architecture].description)
    slider_code = st.slider("Code size", 1, SLIDER_MAX_CODE, 49, key="code_slider")
    typed_code = st.text_input(
        f"…or type any code size up to {MAX_CODE_SIZE}", key="code_text", placeholder="e.g. 300"
    )
    code_error = st.empty()
    epochs = st.number_input("Epochs", 1, MAX_EPOCHS, 5, key="epochs")
    batch_size = st.select_slider("Batch size", BATCH_SIZES, 256, key="batch_size")
    learning_rate = st.select_slider(
        "Learning rate (Adam)", LEARNING_RATES, 0.001, format_func=lambda v: f"{v:g}", key="learning_rate"
    )
    train_size = st.number_input(
        "Training digits", 10, usable_training_digits(dataset), usable_training_digits(dataset), step=1000, key="train_size"
    )
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")

    values = SimpleNamespace(
        architecture=architecture,
        code_size=parse_code_size(slider_code, typed_code),
        epochs=int(epochs),
        batch_size=int(batch_size),
        learning_rate=float(learning_rate),
        train_size=int(train_size),
        seed=int(seed),
    )
    errors = validation_errors(values)
    config = None if errors else TrainingConfig(**vars(values))
    for field_name, message in errors.items():
        (code_error if field_name == "code_size" else st).error(message, icon=":material/error:")

    if manager.cache_problem:
        st.warning(f"Models will not be kept after a restart: {manager.cache_problem}. "
                   "Trained models still work until then.", icon=":material/warning:")
    # Handled in this run, not in an on_click callback: a callback would run with the
    # settings of the run that drew the button, which lag behind a value typed just before.
    if st.button(
        "Train", type="primary", icon=":material/play_arrow:", disabled=config is None,
        key="train_button", width="stretch",
    ):
        st.session_state[SELECTED_JOB] = manager.request(config).key

job = shown_job()
snapshot = job.snapshot() if job else None

with controls:
    if job is not None:
        stop_col, continue_col = st.columns(2)
        stop_col.button(
            "Stop", icon=":material/stop:", disabled=not snapshot.is_active, on_click=job.stop,
            key="stop_button", width="stretch",
        )
        extra = st.session_state.get("extra_epochs", 2)

        def continue_training() -> None:
            try:
                job.extend(int(st.session_state.get("extra_epochs", 2)))
            except ValueError as error:
                st.session_state["continue_error"] = str(error)

        continue_col.button(
            f"Continue +{int(extra)}", icon=":material/fast_forward:",
            disabled=snapshot.is_active or not snapshot.has_model, on_click=continue_training,
            key="continue_button", width="stretch", help="Train the shown model for more epochs",
        )
        st.number_input("Epochs to add with Continue", 1, MAX_EPOCHS, 2, key="extra_epochs")
        if st.session_state.get("continue_error"):
            st.error(st.session_state.pop("continue_error"))
        if config is not None and config.key != job.key and snapshot.is_active:
            st.caption("Changing settings never interrupts the job shown; press Train to queue the new settings.")


PHASE_TEXT = {
    "starting": "Starting: loading the model",
    "compiling": "Compiling the training step (first steps only)",
    "evaluating": "Evaluating on {test:,} test digits",
    "saving": "Saving the model",
}


def progress_text(snapshot) -> str:
    state, phase = snapshot.state.value, snapshot.phase.value
    if state == "queued":
        return "Waiting for its turn"
    if state in ("running", "stopping"):
        if phase in PHASE_TEXT:
            return f"{PHASE_TEXT[phase].format(test=len(dataset.x_test))}..."
        speed = f" · {snapshot.samples_per_second:,.0f} digits/s" if snapshot.samples_per_second else ""
        eta = f" · ETA {format_seconds(snapshot.eta_seconds)}" if snapshot.eta_seconds is not None else ""
        epoch = min(snapshot.epoch + 1, int(np.ceil(snapshot.epochs_total - 1e-9)))
        return (f"Epoch {epoch} of {format_epochs(snapshot.epochs_total)} · step {snapshot.step}/{snapshot.steps_per_epoch}"
                f"{speed}{eta}")
    done = f"{format_epochs(snapshot.epochs_done)} of {format_epochs(snapshot.epochs_total)} epochs"
    return f"Stopped after {done}" if state == "stopped" else f"{done} · {format_seconds(snapshot.training_seconds)} of training"


PANEL_ORIGINALS = dataset.test_images[panel_indices(dataset.y_test)][..., 0]


def render(snapshot) -> None:
    """Everything here is cheap per session: the figure and the panel picture are built once
    per snapshot version (ae.live) and shared by every session watching."""
    config = snapshot.config
    st.subheader(f"{STATE_TEXT[snapshot.state.value]}: {ARCHITECTURES[config.architecture].label}, code size {config.code_size}")
    st.caption(config.describe())
    if snapshot.state.value == "queued":
        running = manager.running()
        waiting_for = f" — waiting for {running.snapshot().config.describe()}" if running and running is not job else ""
        st.warning(f"Queued: place {snapshot.queue_position or 1} in line{waiting_for}.", icon=":material/hourglass_top:")
    if snapshot.error:
        st.error(f"Training failed: {snapshot.error}")
    if snapshot.warning:
        st.warning(snapshot.warning, icon=":material/warning:")
    st.progress(snapshot.progress, text=progress_text(snapshot))

    metric_cols = st.columns(4)
    metric_cols[0].metric("Epochs done", f"{format_epochs(snapshot.position)} / {format_epochs(snapshot.epochs_total)}")
    metric_cols[1].metric("Train loss", f"{snapshot.train_loss[-1]:.4f}" if snapshot.train_loss else "–")
    metric_cols[2].metric("Validation loss", f"{snapshot.val_loss[-1]:.4f}" if snapshot.val_loss else "–")
    metric_cols[3].metric("Test loss (BCE)", f"{snapshot.test_metrics.bce:.4f}" if snapshot.test_metrics else "–")

    chart_col, panel_col = st.columns([1.25, 1])
    chart_col.plotly_chart(live_loss_figure(snapshot), key="loss_chart", theme=None)
    with panel_col:
        st.markdown("**16 test digits** and their **reconstructions** (below each)")
        st.image(panel_png(snapshot, PANEL_ORIGINALS), width="stretch")
        if snapshot.panel_epoch is not None:
            st.caption(f"Reconstructions after {snapshot.panel_epoch:.2f} epochs.")
        else:
            st.caption("Reconstructions appear once training starts.")


if job is None:
    with live_area:
        st.info("No model is trained yet. Choose settings and press **Train**, or start with the article's model: "
                "progress, loss curves and reconstructions appear here live.", icon=":material/info:")
        quick_train_button("train_quick")
else:
    polling = snapshot.is_active

    @st.fragment(run_every=1.0 if polling else None)
    @guarded
    def live_view() -> None:
        current = job.snapshot()
        render(current)
        if polling and not current.is_active:
            st.rerun()  # the job ended: one full rerun stops the polling and refreshes the buttons

    with live_area:
        live_view()
