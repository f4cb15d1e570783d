"""Few labels: do a model's codes help a classifier when labelled digits are scarce?"""
import pandas as pd
import streamlit as st

from ae.display.figures import probe_figure
from ae.model.architectures import predict
from ae.analysis.few_labels import (FEATURE_LABELS, MAX_COMPARED, MAX_DRAWS, MAX_SEED, PROBES_AT_ONCE, ProbeRefused,
                                    MEASURED_NOTE, counts_where_codes_beat_pixels, kind_of, one_per_kind, probe_csv, probe_model)
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.model_picker import choose_model, load_models_or_stop, load_models_or_warn, manager_or_stop, model_label
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


def compared_models(manager, job) -> dict:
    """Other kinds' codes to draw beside the picked model's: the most-trained finished model of
    each other kind on this server, all of them (up to MAX_COMPARED) unless the visitor picks.
    Returns the chosen jobs by key (handles, so a model deleted meanwhile cannot break the page)."""
    candidates = {candidate.key: candidate for candidate in one_per_kind(manager.trained_jobs(), leave_out=job.key)}
    if not candidates:
        st.caption("Only one kind of model is trained here: train another (convolutional, VAE, denoising, ...) "
                   "to compare its codes on this chart.")
        return {}
    keys = list(candidates)
    chosen = st.multiselect(
        "Compare with other kinds' codes", keys, keys[:MAX_COMPARED], max_selections=MAX_COMPARED, key="probe_compare",
        format_func=lambda key: model_label(candidates[key]),
        help=f"The most-trained finished model of each other kind on this server, up to {MAX_COMPARED} at once; "
             "each is one more probe, computed once and then shared.")
    return {key: candidates[key] for key in chosen if key in candidates}


def compared_probes(jobs: dict, draws: int, seed: int, dataset) -> dict:
    """Each compared model's codes through the same probe, keyed by the model's key; one the
    server refuses (busy) or whose file is damaged is left off with its sentence."""
    compared = {}
    for other in jobs.values():
        models = load_models_or_warn(other, model_label(other))
        if models is None:
            continue
        with st.spinner(f"Probing the codes of {model_label(other)}..."):
            status = st.empty()
            try:
                compared[other.key] = probe_model(other.key, other.snapshot().saved_at, dataset,
                                                  lambda images, models=models: predict(models.encoder, images), draws,
                                                  seed, progress=lambda text: status.caption(text))["autoencoder"]
            except ProbeRefused as refused:
                st.warning(f"{model_label(other)} is left off: {refused}", icon=":material/hourglass_top:")
            status.empty()
    return compared


def codes_label(job, result) -> str:
    return f"{kind_of(job.snapshot().config)} codes ({result.dimensions}-D)"


def compared_verdict(labels: dict, compared: dict, pixels) -> None:
    """Where each compared kind's codes beat the raw pixels, computed from these results."""
    for key, result in compared.items():
        wins = counts_where_codes_beat_pixels(result, pixels)
        label = labels[key]
        if wins:
            st.markdown(f"{label} beat the raw pixels with {_counts(wins)} labelled digits.")
        else:
            st.markdown(f"{label} do not beat the raw pixels at any number of labels here.")


def _counts(counts) -> str:
    words = [f"{count:,}" for count in counts]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def probe_table(results, labels=FEATURE_LABELS) -> None:
    """A column per feature kind; the stock names (the chart's legend) get their dimensions here,
    a compared model's name already has them."""
    counts = results["autoencoder"].label_counts
    table = pd.DataFrame({
        "labelled digits": [f"{c:,}" for c in counts],
        **{
            f"{labels[name]} ({result.dimensions}-D)" if labels[name] == FEATURE_LABELS.get(name) else labels[name]:
                result.cells()
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
        sentence = "Here the autoencoder's codes do not beat PCA's or the raw pixels at any number of labels."
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
    others = compared_models(manager, job)
    results = probe(job, snapshot.saved_at, draws, int(seed), models, manager.dataset)
    # The picked model's chart first; the other kinds' curves join it as their probes finish
    # (each computed once for the whole server), so nobody waits for them to see this one.
    chart_place = st.empty()
    chart(probe_figure(results, FEATURE_LABELS), chart_place, key="probe_chart")
    compared = compared_probes(others, draws, int(seed), manager.dataset)
    labels = {**FEATURE_LABELS, **{key: codes_label(others[key], result) for key, result in compared.items()}}
    if compared:
        labels["autoencoder"] = f"{codes_label(job, results['autoencoder'])}, picked"
        chart(probe_figure({**results, **compared}, labels), chart_place, key="probe_chart_compared")
    probe_table({**results, **compared}, labels)
    verdict(results, draws)
    compared_verdict(labels, compared, results["pixels"])
    if len(counts_where_codes_beat_pixels(results["autoencoder"], results["pixels"])) < len(results["pixels"].label_counts):
        st.caption(MEASURED_NOTE)
    st.download_button("Probe results (CSV)", probe_csv({**results, **compared}, labels), file_name=f"{job.key}-probe.csv",
                       mime="text/csv", icon=":material/download:")


few_labels_page()
