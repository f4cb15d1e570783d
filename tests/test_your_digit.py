"""Your digit: MNIST-style preparation of drawings and uploads, bad files, and the analyses."""
import io
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ae.analysis.digit_input import (FORMAT_NAMES, MAX_MEGAPIXELS, MEGAPIXELS_BY_FORMAT, WORK_SIDE, DigitError, prepare_digit,
                                     prepare_upload)
from ae.analysis.your_digit import (blend_pixels, error_percentile, fit_code_classifier, fit_code_gaussian, generation_codes,
                                   nearest_codes, walk_codes)

# Measured on the first 300 test digits: mean absolute pixel difference after the round trip
# median 0.024, 95th percentile 0.052, largest 0.078; two different digits of the same class
# differ by 0.11 (median).
ROUND_TRIP_TOLERANCE = 0.09


def png(array: np.ndarray, mode: str = "L", **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def photographed(digit: np.ndarray, offset=(30, 70), size: int = 200, paper: bool = False) -> np.ndarray:
    """An MNIST digit scaled up and pasted off-centre into 280x280: what a drawing looks like."""
    big = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR))
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[offset[0] : offset[0] + size, offset[1] : offset[1] + size] = big
    return 255 - canvas if paper else canvas


def test_scaled_up_off_centre_test_digits_come_back_close_to_the_original(dataset):
    differences = []
    for index in range(40):
        original = dataset.test_images[index, ..., 0]
        prepared = prepare_upload(png(photographed(original))).image
        assert prepared.shape == (28, 28) and prepared.dtype == np.float32
        differences.append(np.abs(prepared - original).mean())
    assert max(differences) < ROUND_TRIP_TOLERANCE, differences
    other = np.abs(dataset.test_images[0, ..., 0] - dataset.test_images[17, ..., 0]).mean()
    assert other > 2 * np.median(differences)  # the tolerance tells digits apart


def test_dark_ink_on_paper_is_inverted_and_said_so(dataset):
    original = dataset.test_images[3, ..., 0]
    prepared = prepare_upload(png(photographed(original, paper=True), format="JPEG", quality=90))
    assert np.abs(prepared.image - original).mean() < ROUND_TRIP_TOLERANCE
    assert any("inverted" in note for note in prepared.notes)


def test_the_digit_is_boxed_into_20_pixels_and_centred_by_mass():
    bar = np.zeros((100, 300), dtype=np.float32)
    bar[40:60, 20:280] = 1.0  # a wide stroke: its long side becomes 20 pixels
    image = prepare_digit(bar).image
    columns = np.nonzero(image.max(axis=0) > 0.2)[0]
    assert 19 <= columns.max() - columns.min() + 1 <= 21
    rows, cols = np.indices(image.shape)
    assert abs((rows * image).sum() / image.sum() - 14) <= 0.5  # where MNIST's digits have theirs
    assert abs((cols * image).sum() / image.sum() - 14) <= 0.5


def test_a_transparent_png_uses_its_opaque_strokes(dataset):
    original = dataset.test_images[5, ..., 0]
    alpha = photographed(original)
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., 3] = alpha  # black strokes on a transparent background
    prepared = prepare_upload(png(rgba, mode="RGBA"))
    assert np.abs(prepared.image - original).mean() < ROUND_TRIP_TOLERANCE
    assert any("transparent" in note for note in prepared.notes)


def test_an_animated_gif_uses_its_first_frame(dataset):
    frames = [Image.fromarray(photographed(dataset.test_images[i, ..., 0])) for i in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    prepared = prepare_upload(buffer.getvalue())
    assert np.abs(prepared.image - dataset.test_images[1, ..., 0]).mean() < ROUND_TRIP_TOLERANCE
    assert any("first frame" in note for note in prepared.notes)


def test_a_cmyk_jpeg_is_read(dataset):
    gray = photographed(dataset.test_images[7, ..., 0], paper=True)
    cmyk = Image.fromarray(gray).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG", quality=92)
    prepared = prepare_upload(buffer.getvalue())
    assert np.abs(prepared.image - dataset.test_images[7, ..., 0]).mean() < ROUND_TRIP_TOLERANCE


def test_a_large_photo_is_read_and_a_huge_one_refused_before_decoding():
    photo = np.zeros((4000, 5000), dtype=np.uint8)  # 20 megapixels
    photo[1000:3000, 2000:2600] = 255
    assert prepare_upload(png(photo)).image.max() == pytest.approx(1.0)
    huge = Image.new("L", (6000, 5000))  # 30 megapixels: refused from the header alone
    buffer = io.BytesIO()
    huge.save(buffer, format="PNG")
    with pytest.raises(DigitError, match=f"the limit is {MAX_MEGAPIXELS}"):
        prepare_upload(buffer.getvalue())


def _dot() -> bytes:
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[130:145, 130:145] = 255
    return png(canvas)


def _truncated() -> bytes:
    data = png((np.random.default_rng(0).random((280, 280)) * 255).astype(np.uint8))
    return data[: len(data) // 2]


@pytest.mark.parametrize("data, message", [
    (png(np.zeros((280, 280), dtype=np.uint8)), "The image is empty"),
    (_dot(), "only a dot"),
    (b"this is a text file, not a picture", "not an image that can be read"),
    (png(np.zeros((280, 280), dtype=np.uint8), format="TIFF"), f"not an image that can be read here; upload a {FORMAT_NAMES}"),
    (b"", "The file is empty"),
    (png(np.full((1, 1), 255, dtype=np.uint8)), "only 1x1 pixels"),
    (_truncated(), "damaged or cut short"),
])
def test_each_bad_input_gets_its_own_sentence(data, message):
    with pytest.raises(DigitError, match=message) as refused:
        prepare_upload(data)
    sentence = str(refused.value)
    assert sentence[0].isupper() and sentence.endswith(".") and "Traceback" not in sentence


# Peak memory of one upload, measured as the growth of the process's peak resident memory in a
# fresh process (Pillow's buffers are invisible to tracemalloc). Before the formats were pinned and
# images shrunk before floats: 537 MiB for this image at 20 megapixels; after: 124 MiB at 25.
UPLOAD_PEAK_MIB = 160
_PEAK = """
import sys
from ae.analysis.digit_input import prepare_upload
data = open(sys.argv[1], "rb").read()
status = lambda: {line.split(":")[0]: int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("Vm")}
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
before = status()["VmRSS"]
prepare_upload(data)
print((status()["VmHWM"] - before) / 1024)
"""


def _largest_allowed_rgba_png() -> bytes:
    """The costliest upload allowed: 25 megapixels of RGBA, the digit in its alpha channel."""
    rgba = np.zeros((5000, MAX_MEGAPIXELS * 200, 4), dtype=np.uint8)
    rgba[1000:4000, 2000:2800, 3] = 255
    return png(rgba, mode="RGBA", compress_level=1)


def test_the_largest_allowed_upload_stays_within_its_memory_bound(tmp_path):
    data = _largest_allowed_rgba_png()
    tracemalloc.start()
    prepared = prepare_upload(data)
    _, python_peak = tracemalloc.get_traced_memory()  # numpy's floats: never more than WORK_SIDE squared
    tracemalloc.stop()
    assert prepared.image.max() == pytest.approx(1.0) and any("transparent" in note for note in prepared.notes)
    assert python_peak < 8 * WORK_SIDE * WORK_SIDE * 4, f"{python_peak / 2**20:.0f} MiB of Python objects"
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("No /proc/self/clear_refs here to measure the peak resident memory.")
    path = tmp_path / "large.png"
    path.write_bytes(data)
    run = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    peak = float(run.stdout.strip().splitlines()[-1])
    print(f"peak memory of one 25-megapixel RGBA upload: {peak:.0f} MiB (bound {UPLOAD_PEAK_MIB})")
    assert peak < UPLOAD_PEAK_MIB


def test_a_webp_over_its_own_pixel_limit_is_refused_in_a_sentence():
    side = int((MEGAPIXELS_BY_FORMAT["WEBP"] * 1_000_000) ** 0.5) + 10
    data = png(np.zeros((side, side), dtype=np.uint8), format="WEBP", lossless=True)
    with pytest.raises(DigitError, match=f"the limit for a Webp image is {MEGAPIXELS_BY_FORMAT['WEBP']}\\."):
        prepare_upload(data)


def test_a_sideways_phone_photo_is_turned_the_right_way_up(dataset):
    original = dataset.test_images[4, ..., 0]
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees clockwise to view"
    turned = np.rot90(photographed(original, paper=True), k=-1).copy()
    prepared = prepare_upload(png(turned, format="JPEG", quality=92, exif=exif))
    assert np.abs(prepared.image - original).mean() < ROUND_TRIP_TOLERANCE


def test_percentile_and_neighbours_match_numpy_by_hand():
    errors = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert error_percentile(0.35, errors) == 60.0
    assert error_percentile(0.05, errors) == 0.0 and error_percentile(9.0, errors) == 100.0
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(200, 6))
    query = rng.normal(size=6)
    indices, distances = nearest_codes(query, codes, 8)
    by_hand = sorted(range(200), key=lambda i: np.sqrt(((codes[i] - query) ** 2).sum()))[:8]
    assert list(indices) == by_hand
    np.testing.assert_allclose(distances, [np.linalg.norm(codes[i] - query) for i in by_hand])


def test_walk_endpoints_are_the_endpoints_and_steps_are_even():
    start, end = np.array([0.0, 2.0, -1.0]), np.array([1.0, 0.0, 3.0])
    walk = walk_codes(start, end, 10)
    assert walk.shape == (10, 3)
    np.testing.assert_allclose(walk[0], start)
    np.testing.assert_allclose(walk[-1], end)
    np.testing.assert_allclose(np.diff(walk, axis=0), np.tile((end - start) / 9, (9, 1)), atol=1e-6)
    blend = blend_pixels(np.zeros((28, 28)), np.ones((28, 28)), 10)
    np.testing.assert_allclose(blend[:, 0, 0], np.linspace(0, 1, 10), atol=1e-6)


def test_a_walks_ends_decode_to_the_endpoints_reconstructions(dataset):
    from ae.model.architectures import build_models, predict
    from ae.analysis.results import decode

    models = build_models("dense", 4)
    codes = predict(models.encoder, dataset.test_images[:2])
    walk = decode(models, walk_codes(codes[0], codes[1], 10))
    reconstructions = predict(models.autoencoder, dataset.test_images[:2])[..., 0]
    np.testing.assert_allclose(walk[[0, -1]], reconstructions, atol=1e-5)


def test_code_classifier_reads_separable_codes_and_generation_follows_the_codes():
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 3
    codes = rng.normal(size=(600, 4)) + 4.0 * np.eye(4)[labels]
    classifier = fit_code_classifier(codes, labels)
    digit, probability = classifier.guess(4.0 * np.eye(4)[2])
    assert digit == 2 and probability > 0.9 and classifier.train_accuracy > 0.95
    from sklearn.linear_model import LogisticRegression  # the numpy reading is scikit-learn's own, to rounding
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, tol=1e-3, random_state=0)).fit(codes, labels)
    np.testing.assert_allclose(classifier.probabilities(codes[:20]), reference.predict_proba(codes[:20]), atol=1e-9)
    two = fit_code_classifier(codes[labels < 2], labels[labels < 2])  # two classes: one row of weights, a sigmoid
    np.testing.assert_allclose(two.probabilities(codes[:20]), reference.fit(codes[labels < 2], labels[labels < 2])
                               .predict_proba(codes[:20]), atol=1e-9)
    gaussian = fit_code_gaussian(codes)
    drawn = generation_codes(gaussian, 5000, seed=0, variational=False)
    np.testing.assert_allclose(drawn.mean(axis=0), codes.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), np.cov(codes, rowvar=False), atol=0.3)
    prior = generation_codes(gaussian, 5000, seed=0, variational=True)
    np.testing.assert_allclose(prior.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(prior.std(axis=0), 1.0, atol=0.05)


def test_the_page_refuses_a_format_it_does_not_name_in_a_sentence(trained_env, dataset):
    from tests.test_pages import assert_clean, open_page, texts

    tiff = png(photographed(dataset.test_images[0, ..., 0]), format="TIFF")  # a real picture, in a format not offered
    app = open_page("pages/your_digit.py")
    app.radio(key="digit_source").set_value("Upload").run()
    assert FORMAT_NAMES in app.get("file_uploader")[0].proto.label
    app.file_uploader(key="digit_upload").upload("digit.png", tiff, "image/png").run()  # a name that passes the box
    assert_clean(app)
    assert [w.value for w in app.warning] == [f"This file is not an image that can be read here; upload a {FORMAT_NAMES} picture."]
    assert "Draw a digit" in texts(app)


def test_the_training_process_saves_a_digit_reader_with_each_weights_and_a_stale_one_is_never_read(cache_dir, managers, dataset):
    """Made with the model, beside it, keyed to its save: a Continue's new weights get a new
    reader from the training process, and the old file is never taken for them."""
    from ae.analysis.your_digit import READER_FILE, encode_training_digits, load_digit_reader
    from ae.model.config import TrainingConfig
    from tests.test_training import wait_until_done

    manager = managers(cache_dir)
    job = manager.request(TrainingConfig(code_size=3, epochs=1, batch_size=64, train_size=300, seed=4))
    first = wait_until_done(job)
    folder = manager.store.entry_dir(job.key)
    old = load_digit_reader(folder, first.saved_at)
    assert old is not None and old.saved_at == first.saved_at
    codes = encode_training_digits(job.models().encoder, dataset.x_train)
    np.testing.assert_allclose(old.gaussian.mean, codes.mean(axis=0), rtol=1e-4, atol=1e-5)  # all training digits, these weights

    job.extend(1)
    second = wait_until_done(job)
    assert second.saved_at > first.saved_at
    assert load_digit_reader(folder, first.saved_at) is None  # the file now belongs to the new weights
    new = load_digit_reader(folder, second.saved_at)
    assert new is not None
    codes = encode_training_digits(job.models().encoder, dataset.x_train)
    np.testing.assert_allclose(new.gaussian.mean, codes.mean(axis=0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(new.classifier.coef, old.classifier.coef)

    (folder / READER_FILE).write_bytes((folder / READER_FILE).read_bytes()[:200])  # cut short
    assert load_digit_reader(folder, second.saved_at) is None


def test_the_page_reads_the_saved_reader_instead_of_making_one(trained_cache, small_mnist_path, tmp_path, monkeypatch, dataset):
    """The first drawing reads the reader the training process saved: a reader whose accuracy is
    set to 12% shows 12% on the page (one the page made itself would say the real figure)."""
    import dataclasses
    import shutil

    from ae.analysis.your_digit import load_digit_reader, save_digit_reader
    from ae.storage.store import ModelStore
    from tests.test_pages import _digit_png, assert_clean, open_page, select_model, texts

    cache = tmp_path / "cache"
    shutil.copytree(trained_cache, cache)
    monkeypatch.setenv("AE_DATA_PATH", str(small_mnist_path))
    monkeypatch.setenv("AE_CACHE_DIR", str(cache))
    monkeypatch.setenv("AE_WARM_UMAP", "0")
    store = ModelStore.for_dataset(dataset, cache)
    record = next(r for r in store.records() if r["config"].code_size == 8 and r["config"].architecture == "dense"
                  and not r["config"].denoising)
    folder = store.entry_dir(record["config"].key)
    reader = load_digit_reader(folder, record["saved_at"])
    assert reader is not None
    save_digit_reader(folder, dataclasses.replace(reader, classifier=dataclasses.replace(reader.classifier, train_accuracy=0.123)))

    app = open_page("pages/your_digit.py")
    select_model(app, "digit_model", "code 8 · dense · 2 epochs")
    app.radio(key="digit_source").set_value("Upload").run()
    app.file_uploader(key="digit_upload").upload("seven.png", _digit_png(dataset, 0), "image/png").run()
    assert_clean(app)
    assert "(12% right on them)" in texts(app)

    # The same file keyed to other weights (a Continue's, say) is stale: the page makes its own, once.
    # (The page keeps a reader it read per weights; here the file changes under the same weights,
    # which only a test does, so its cache is emptied as a restarted server's would be.)
    import streamlit as st

    st.cache_resource.clear()
    save_digit_reader(folder, dataclasses.replace(reader, saved_at=record["saved_at"] + 1.0,
                                                  classifier=dataclasses.replace(reader.classifier, train_accuracy=0.123)))
    app = open_page("pages/your_digit.py")
    select_model(app, "digit_model", "code 8 · dense · 2 epochs")
    app.radio(key="digit_source").set_value("Upload").run()
    app.file_uploader(key="digit_upload").upload("seven.png", _digit_png(dataset, 0), "image/png").run()
    assert_clean(app)
    assert f"({reader.classifier.train_accuracy:.0%} right on them)" in texts(app) and "(12% right" not in texts(app)
