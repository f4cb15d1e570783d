"""Your digit: MNIST-style preparation of drawings and uploads, bad files, and the analyses."""
import io

import numpy as np
import pytest
from PIL import Image

from ae.analysis.digit_input import MAX_MEGAPIXELS, DigitError, prepare_digit, prepare_upload
from ae.analysis.your_digit import (blend_pixels, error_percentile, fit_code_classifier, generation_codes, nearest_codes,
                          walk_codes)

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
    (b"", "The file is empty"),
    (png(np.full((1, 1), 255, dtype=np.uint8)), "only 1x1 pixels"),
    (_truncated(), "damaged or cut short"),
])
def test_each_bad_input_gets_its_own_sentence(data, message):
    with pytest.raises(DigitError, match=message):
        prepare_upload(data)


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
    drawn = generation_codes(codes, 5000, seed=0, variational=False)
    np.testing.assert_allclose(drawn.mean(axis=0), codes.mean(axis=0), atol=0.1)
    prior = generation_codes(codes, 5000, seed=0, variational=True)
    np.testing.assert_allclose(prior.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(prior.std(axis=0), 1.0, atol=0.05)
