"""Your digit: draw or upload one, see what the model makes of it, and walk between digits."""
from pathlib import Path

import numpy as np
import streamlit as st

from ae.analysis.digit_input import FORMAT_NAMES, MAX_UPLOAD_MEGABYTES, UPLOAD_TYPES, DigitError, prepare_upload
from ae.display.figures import PALETTES, error_meter_figure, latent_figure
from ae.display.images import image_grid
from ae.analysis.metrics import per_image_errors
from ae.model.architectures import ARCHITECTURES, predict
from ae.analysis.your_digit import (NEIGHBOURS, WALK_STEPS, blend_pixels, error_percentile, generation_codes, load_digit_reader,
                                   make_digit_reader, nearest_codes, unusualness_sentence, walk_codes)
from ae.analysis.projection import project
from ae.analysis.results import decode
from pages.digit_canvas import digit_canvas
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.model_picker import chosen_model_or_stop, manager_or_stop
from pages.number_box import number_box
from pages.presentation import chart


@st.cache_resource(max_entries=3, show_spinner=False)
def reader_made_here(key: str, saved_at: float, _models, _dataset):
    """Only for a model saved without its digit reader (before readers were saved, or kept in
    memory when the disk refused): made once here and shared by every session."""
    return make_digit_reader(_models.encoder, _dataset, saved_at)


@st.cache_resource(max_entries=8, show_spinner=False)
def saved_reader(key: str, saved_at: float, folder: str):
    """The saved reader read once per weights, not on every stroke of the canvas (at most a few MB:
    a code-size-square covariance); None, kept too, for a model saved without one."""
    return load_digit_reader(Path(folder), saved_at)


def digit_reader(manager, snapshot, models, dataset):
    """The reader the training process saved with these weights; for an older model, made here
    once, saying so."""
    reader = saved_reader(snapshot.key, snapshot.saved_at, str(manager.store.entry_dir(snapshot.key)))
    if reader is not None:
        return reader
    with st.spinner(f"This model was saved without its digit reader: reading the codes of its "
                    f"{len(dataset.y_train):,} training digits once (a few seconds). Later drawings are instant."):
        return reader_made_here(snapshot.key, snapshot.saved_at, models, dataset)


@st.cache_data(max_entries=16, show_spinner=False)
def prepared(data: bytes):
    """Decoded once per picture, not on every rerun (a 20-megapixel PNG takes about half a second)."""
    return prepare_upload(data)


@st.cache_resource(max_entries=6, show_spinner=False)
def test_map(key: str, saved_at: float, _codes):
    """The Latent page's instant map of the test codes: the codes themselves at size 2, else PCA."""
    return project(_codes, "codes" if _codes.shape[1] == 2 else "pca")


def drawn_or_uploaded(source):
    """The picture's bytes from the canvas or an upload; a digit that cannot be read is a warning, and None."""
    with source:
        how = st.radio("Your digit", ["Draw", "Upload"], horizontal=True, key="digit_source", label_visibility="collapsed")
        if how == "Draw":
            data = digit_canvas("digit_canvas")
            st.caption("Draw one digit, large, with the mouse or a finger. Clear starts again.")
        else:
            upload = st.file_uploader(f"A picture of one digit: {FORMAT_NAMES} (at most {MAX_UPLOAD_MEGABYTES} MB)",
                                      type=list(UPLOAD_TYPES), key="digit_upload")
            data = upload.getvalue() if upload is not None else None
    if data is not None:
        try:
            return prepared(data)
        except DigitError as problem:
            source.warning(str(problem))
    return None


def what_the_model_sees(digit, reconstruction, results) -> None:
    """The digit as the model sees it, its reconstruction, and how unusual its error is."""
    bce = float(per_image_errors(digit.image[None], reconstruction[None])[0][0])
    percentile = error_percentile(bce, results.bce)
    st.image(image_grid(np.stack([digit.image, reconstruction]), columns=2, scale=5),
             caption="What the model sees (28x28, MNIST-style) · its reconstruction")
    for note in digit.notes:
        st.caption(note)
    st.markdown(f"**Error {bce:.3f}: {unusualness_sentence(percentile)}.**")
    chart(error_meter_figure(results.bce, bce, percentile, height=210), key="error_meter")


def what_the_code_says(code, classifier, results, dataset) -> None:
    guess, probability = classifier.guess(code[0])
    neighbours, distances = nearest_codes(code[0], results.codes, NEIGHBOURS)
    st.markdown(f"### The code says **{guess}**, {probability:.0%}")
    st.caption(f"A logistic regression on the codes of all 60,000 training digits "
               f"({classifier.train_accuracy:.0%} right on them) reads the digit from the code alone.")
    st.markdown(f"**Its {NEIGHBOURS} nearest test digits in code space**")
    st.image(image_grid(dataset.test_images[neighbours], columns=NEIGHBOURS // 2, scale=2))
    st.caption("Labels: " + ", ".join(f"{dataset.y_test[i]}" for i in neighbours)
               + f" · distances {distances[0]:.2f} to {distances[-1]:.2f}")


def where_it_lands(projection, code, test_labels) -> None:
    if projection.method == "codes":
        star = code[0]
    elif projection.pca is not None:
        star = projection.pca.transform(code.astype(np.float64))[0]
    else:  # a 1-unit code is drawn on the x axis
        star = np.array([code[0, 0], 0.0])
    title = "Where it lands among the test digits (" + ("the codes" if projection.method == "codes" else "PCA") + ")"
    figure = latent_figure(projection.coordinates, test_labels[projection.indices], projection.indices, title,
                           highlight=(float(star[0]), float(star[1])), colours=PALETTES["Colour-blind safe"], height=400)
    chart(figure, key="digit_map")
    st.caption("The star is your digit; the same map as on the Latent space page.")


def walk(digit, code, models, results, dataset) -> None:
    """From the digit (or a test digit) to a test digit: through the code, and through the pixels."""
    st.subheader("Walk between two digits")
    ends = st.columns(2)
    start_choice = ends[0].radio("From", ["your digit", "a test digit"], horizontal=True, key="walk_from")
    start_index = None
    if start_choice == "a test digit":
        start_index = number_box(ends[0], "From test digit #", 0, len(dataset.y_test) - 1, 0, key="walk_start")
    end_index = number_box(ends[1], "To test digit #", 0, len(dataset.y_test) - 1, 1, key="walk_end")
    if (start_choice == "your digit" or start_index is not None) and end_index is not None:
        start_image = digit.image if start_index is None else dataset.test_images[start_index, ..., 0]
        start_code = code[0] if start_index is None else results.codes[start_index]
        latent = decode(models, walk_codes(start_code, results.codes[end_index], WALK_STEPS))
        pixels = blend_pixels(start_image, dataset.test_images[end_index, ..., 0], WALK_STEPS)
        st.image(image_grid(latent, columns=WALK_STEPS, scale=2), caption="Through the code: decoded along the straight line")
        st.image(image_grid(pixels, columns=WALK_STEPS, scale=2), caption="Through the pixels: a plain cross-fade")
        st.caption("Through the code every step is a digit-like shape; the cross-fade is two digits overlaid. "
                   "That is what a latent space buys.")


def new_digits(models, gaussian, variational: bool) -> None:
    st.subheader("New digits")
    if st.button("Generate 20 new digits", icon=":material/casino:", key="generate_digits"):
        st.session_state["generation_draw"] = st.session_state.get("generation_draw", 0) + 1
    draw = st.session_state.get("generation_draw", 0)
    generated = decode(models, generation_codes(gaussian, 20, seed=draw, variational=variational))
    st.image(image_grid(generated, columns=10, scale=3))
    if variational:
        st.caption(f"20 codes drawn from the prior N(0, I) (draw {draw + 1}), decoded: the model was trained so that this works.")
    else:
        st.caption(f"20 codes drawn from a Gaussian fitted to the training digits' codes (draw {draw + 1}), decoded. "
                   "This model was not trained to generate: many draws land between the digits and look like blends. "
                   "A variational autoencoder (Train, architecture VAE) is trained for it.")


def your_digit_page() -> None:
    leave_legacy_pages_mode()
    manager = manager_or_stop()
    dataset = manager.dataset
    title_column, picker_column = st.columns([1, 2.6])  # the title's row holds the picker
    title_column.title("Your digit")
    with picker_column:
        job, snapshot, models, results = chosen_model_or_stop(manager, "digit_model")
    variational = ARCHITECTURES[snapshot.config.architecture].variational

    # Canvas, verdict and map side by side: all three on a 1280x720 projector's first screen.
    source, verdict, map_column = st.columns([1, 1.15, 1.45], gap="medium")
    verdict, seen = verdict.container(), verdict.container()  # the verdict on top, what the model sees under it
    digit = drawn_or_uploaded(source)
    if digit is None:
        seen.info("Draw a digit (or upload a picture of one) to see what the model makes of it.")
        st.stop()

    code = predict(models.encoder, digit.image[None, ..., None])
    reconstruction = decode(models, code)[0]
    with seen:
        what_the_model_sees(digit, reconstruction, results)
    reader = digit_reader(manager, snapshot, models, dataset)
    with verdict:
        what_the_code_says(code, reader.classifier, results, dataset)

    projection = test_map(job.key, snapshot.saved_at, results.codes)
    with map_column:
        where_it_lands(projection, code, dataset.y_test)
    walk(digit, code, models, results, dataset)
    new_digits(models, reader.gaussian, variational)


your_digit_page()
