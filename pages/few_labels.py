"""Few labels: do a model's codes help a classifier when labelled digits are scarce?"""
import pandas as pd
import streamlit as st

from ae.display.figures import probe_figure
from ae.model.architectures import predict
from ae.analysis.few_labels import (FEATURE_LABELS, MAX_DRAWS, MAX_SEED, PROBES_AT_ONCE, ProbeRefused, probe_csv,
                                    probe_model)
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.model_picker import choose_model, load_models_or_stop, manager_or_stop
from pages.number_box import number_box
from pages.presentation import chart

INTRODUCTION = (
    "The article says autoencoders help *extract features for a classifier when labelled examples are scarce*. "
    "Here a logistic regression learns digits from a few labelled examples, using the autoencoder's codes, "
    "PCA codes of the same size, or the raw pixels, and is scored on all test digits."
)


def probe(job, saved_at: float, draws: int, seed: int, models, dataset):
    """The engine's probe, shared by every session and cached there; while it waits or works, a
    line under the spinner says which, and a refusal is a warning in words."""
    with st.spinner(f"Running the few-labels probe (the server runs {PROBES_AT_ONCE} at a time)..."):
        status = st.empty()
        try:
            results = probe_model(job.key, saved_at, dataset, lambda images: predict(models.encoder, images), draws, seed,
                                  progress=lambda text: status.caption(text))
        except ProbeRefused as refused:
            status.empty()
            st.warning(str(refused), icon=":material/hourglass_top:")
            st.stop()
    status.empty()
    return results


def probe_table(results) -> None:
    counts = results["autoencoder"].label_counts
    table = pd.DataFrame({
        "labelled digits": [f"{c:,}" for c in counts],
        **{
            f"{FEATURE_LABELS[name]} ({result.dimensions}-D)": result.cells()
            for name, result in results.items()
        },
    })
    st.dataframe(table, hide_index=True)


def verdict(results, draws: int) -> None:
    counts = results["autoencoder"].label_counts
    autoencoder, pca, pixels = (results[name].mean() for name in ("autoencoder", "pca", "pixels"))
    beats_both = [f"{c:,}" for c, a, p, x in zip(counts, autoencoder, pca, pixels) if a > p and a > x]
    beats_pca = [f"{c:,}" for c, a, p in zip(counts, autoencoder, pca) if a > p]
    if beats_both:
        sentence = f"The autoencoder's codes give the best classifier with {', '.join(beats_both)} labelled digits."
    elif beats_pca:
        sentence = f"The autoencoder's codes beat PCA's with {', '.join(beats_pca)} labelled digits, but raw pixels do better still."
    else:
        sentence = "Here the autoencoder's codes do not beat PCA's or the raw pixels at any number of labels: train longer or change the code size."
    st.markdown(f"**{sentence}** ± is the standard deviation over {draws} draw(s); with all {counts[-1]:,} labelled "
                "training digits there is only one possible draw, so one fit and no ±.")


def few_labels_page() -> None:
    leave_legacy_pages_mode()
    manager = manager_or_stop()
    st.title("Few labels")
    st.markdown(INTRODUCTION)
    job = choose_model(manager, "probe_model")
    if job is None:
        st.stop()
    snapshot = job.snapshot()
    models = load_models_or_stop(job)
    controls = st.columns(3)
    draws = controls[0].slider("Random draws of the labelled digits", 1, MAX_DRAWS, 3, key="probe_draws")
    seed = number_box(controls[1], "Seed", 0, MAX_SEED, 0, key="probe_seed",
                      help=f"Which random labelled digits are drawn: seeds 0 to {MAX_SEED}, each computed once and shared.")
    if seed is None:
        st.stop()
    results = probe(job, snapshot.saved_at, draws, int(seed), models, manager.dataset)
    chart(probe_figure(results, FEATURE_LABELS), key="probe_chart")
    probe_table(results)
    verdict(results, draws)
    st.download_button("Probe results (CSV)", probe_csv(results), file_name=f"{job.key}-probe.csv", mime="text/csv",
                       icon=":material/download:")


few_labels_page()
