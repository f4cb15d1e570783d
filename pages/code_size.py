"""Code size: sweep code sizes as ordinary jobs and compare the autoencoder with PCA."""
import time

import numpy as np
import pandas as pd
import streamlit as st

from ae.model.config import MAX_EPOCHS, TrainingConfig, usable_training_digits
from ae.display.figures import rate_distortion_figure
from ae.display.texts import format_seconds
from ae.display.images import image_grid
from ae.model.architectures import ARCHITECTURES
from ae.analysis.code_size import (DEFAULT_CODE_SIZES, Sweep, architectures_sentence, comparison_sentence,
                      other_epochs, rate_distortion_by_architecture, rate_distortion_csv, reconstruction_strip,
                      sweep_configs, where_pca_still_wins, DEFAULT_SWEEP_EPOCHS)
from ae.training.snapshot import panel_indices
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.model_picker import manager_or_stop
from pages.number_box import number_box
from pages.presentation import chart
from pages.session import visitor

SIZE_CHOICES = sorted({1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 49, 64, 96, 128, 196, 256, 392, 512, 784, *DEFAULT_CODE_SIZES})
STRIP_DIGITS = 8
INTRODUCTION = (
    "How small can the code be? Train one model per code size and compare each with **PCA** keeping as many "
    "components: the article claims an autoencoder reduces dimension *more powerfully than PCA*. Check where that holds."
)


def sweep_settings(dataset):
    """The sweep's controls; returns (base config, or None while a setting is unusable; sizes; architectures)."""
    controls = [st.container(), st.container(), *st.columns(2)]  # stacked in the settings column
    sizes = controls[0].multiselect("Code sizes", SIZE_CHOICES, list(DEFAULT_CODE_SIZES), key="sweep_sizes")
    architectures = controls[1].multiselect("Architectures", list(ARCHITECTURES), ["dense"],
                                            format_func=lambda a: ARCHITECTURES[a].label, key="sweep_architectures",
                                            help="Several at once: one rate-distortion curve each, side by side.")
    epochs = number_box(controls[2], "Epochs each", 1, MAX_EPOCHS, DEFAULT_SWEEP_EPOCHS, key="sweep_epochs",
                        help=f"{DEFAULT_SWEEP_EPOCHS} by default: measured on the full MNIST, the dense model beats PCA "
                             "at code size 8 from its 4th epoch and at 32 from its 5th; the convolutional one from its 2nd.")
    usable = usable_training_digits(dataset)
    train_size = number_box(controls[3], "Training digits", 10, usable, usable, key="sweep_train_size", step=1000)
    ready = bool(sizes) and bool(architectures) and epochs is not None and train_size is not None
    base = TrainingConfig(architecture=architectures[0], code_size=sizes[0], epochs=epochs, train_size=train_size) if ready else None
    if not sizes:
        st.warning("Choose at least one code size.")
    if not architectures:
        st.warning("Choose at least one architecture.")
    return base, sizes, architectures


def stop_sweep(manager) -> None:
    if "sweep" in st.session_state:
        try:
            Sweep(manager, sweep_configs(*st.session_state["sweep"])).stop(**visitor())
        except ValueError as error:  # the training service did not answer in time: said in words
            st.session_state["sweep_stop_note"] = str(error)


def sweep_buttons(manager, base, sizes, architectures) -> Sweep | None:
    """Start and Stop; returns this session's sweep, if it started one."""
    buttons = [*st.columns(2), st.container()]
    # Handled in this run, not in an on_click callback: a callback would run with the settings
    # of the run that drew the button, which lag behind a value typed just before the click.
    if buttons[0].button("Start sweep", type="primary", icon=":material/play_arrow:", disabled=base is None, key="start_sweep", width="stretch"):
        try:
            Sweep.start(manager, base, sizes, architectures=architectures, **visitor())
            st.session_state["sweep"] = (base, tuple(sizes), tuple(architectures))
        except ValueError as refusal:  # over a student's cap: nothing was queued
            st.warning(str(refusal), icon=":material/block:")
    sweep = Sweep(manager, sweep_configs(*st.session_state["sweep"])) if "sweep" in st.session_state else None
    buttons[1].button("Stop sweep", icon=":material/stop:", disabled=sweep is None or not sweep.active, on_click=stop_sweep,
                      args=(manager,), key="stop_sweep", width="stretch")
    buttons[2].caption("Sizes already trained with these settings are reused, not retrained. Each size is an ordinary job: "
                       "its live view is on the Train page.")
    if st.session_state.get("sweep_stop_note"):
        st.warning(st.session_state.pop("sweep_stop_note"), icon=":material/hourglass_empty:")
    return sweep


def queue_text(row) -> str:
    """' (place 3, in about 40 s)' for a queued size; the estimate only once a run was measured."""
    if not row.queue_position:
        return ""
    wait = None if row.starts_at is None else max(0.0, row.starts_at - time.time())
    return f" (place {row.queue_position}" + (f", in about {format_seconds(wait)})" if wait is not None else ")")


def sweep_progress(rows) -> None:
    done = sum(row.state in ("finished", "stopped") for row in rows)
    st.progress(float(np.mean([row.progress for row in rows])), text=f"Sweep: {done} of {len(rows)} models done")


def sweep_table(rows) -> None:
    """Each size's job: its state, place in the queue and epochs (under the chart, which comes first)."""
    table = pd.DataFrame([
        {"code size": row.code_size, "architecture": ARCHITECTURES[row.architecture].label, "state": row.state + queue_text(row),
         "progress": row.progress, "epochs": row.epochs_done}
        for row in rows
    ])
    st.dataframe(table, hide_index=True, column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1)})


def results(manager, base, architectures, metric: str, sweeping: bool = False) -> None:
    if base is None:
        st.info("Fix the settings above to see the results for them.")
        return
    dataset = manager.dataset
    by_name = rate_distortion_by_architecture(manager, base, architectures)
    curves = {ARCHITECTURES[name].label: points for name, points in by_name.items() if points}
    if not curves:
        st.info("The sweep has started: the chart appears as soon as its first code size is trained (the table below says which is queued or training)." if sweeping
                else "No trained models for these settings yet: press **Start sweep**.")
        return
    chart(rate_distortion_figure(curves, metric), key="rate_distortion")
    for name, points in by_name.items():
        if not points:
            continue
        label = ARCHITECTURES[name].label
        st.markdown(f"**{label}:** {comparison_sentence(points, metric)}" if len(curves) > 1
                    else f"**{comparison_sentence(points, metric)}**")
        architecture_base = base.with_changes(architecture=name)
        for sentence in where_pca_still_wins(points, architecture_base, metric,
                                             lambda base=architecture_base: other_epochs(manager, base)):
            st.markdown(sentence)
    among = architectures_sentence(by_name, metric)
    if among:
        st.markdown(f"**{among}**")
    every_point = [point for points in curves.values() for point in points]
    if any(p.stopped_early for p in every_point):
        st.caption("Hollow circles: models stopped before their last epoch.")
    st.download_button("Results (CSV)", rate_distortion_csv(every_point),
                       file_name=f"code-size-sweep-{'-'.join(architectures)}-e{int(base.epochs)}.csv",
                       mime="text/csv", icon=":material/download:", key="sweep_csv")

    st.subheader("The same digits at each code size")
    indices = panel_indices(dataset.y_test, STRIP_DIGITS)
    label_col, image_col = st.columns([1, 6])
    label_col.markdown("**originals**")
    image_col.image(image_grid(dataset.test_images[indices], columns=STRIP_DIGITS, scale=2))
    for label, points in curves.items():
        for code_size, autoencoder, pca in reconstruction_strip(manager, points, indices):
            label_col, ae_col, pca_col = st.columns([1, 3, 3])
            label_col.markdown(f"**code {code_size}**" + (f"  \n{label}" if len(curves) > 1 else ""))
            ae_col.image(image_grid(autoencoder, columns=STRIP_DIGITS, scale=2), caption=f"{label}, code size {code_size}")
            pca_col.image(image_grid(pca, columns=STRIP_DIGITS, scale=2), caption=f"PCA, {code_size} components")


def live(manager, sweep, base, architectures, metric: str, polling: bool) -> None:
    """The sweep's progress and the results so far (a fragment's body, polled while the sweep runs)."""
    rows = sweep.rows() if sweep is not None else []
    if rows:
        sweep_progress(rows)
    results(manager, base, architectures, metric, sweeping=sweep is not None and sweep.active)
    if rows:
        sweep_table(rows)
    if polling and not sweep.active:
        st.rerun()


def code_size_page() -> None:
    leave_legacy_pages_mode()
    manager = manager_or_stop()
    st.title("Code size")
    st.markdown(INTRODUCTION)
    # Settings at left, the sweep and its chart at right: the chart is on a projector's first screen.
    settings_column, results_column = st.columns([1, 1.9], gap="medium")
    with settings_column:
        base, sizes, architectures = sweep_settings(manager.dataset)
        sweep = sweep_buttons(manager, base, sizes, architectures)
        metric = st.radio("Error", ["bce", "mse"], horizontal=True, format_func=str.upper, key="sweep_metric")
    polling = sweep is not None and sweep.active
    with results_column:
        st.fragment(live, run_every=1.5 if polling else None)(manager, sweep, base, architectures, metric, polling)


code_size_page()
