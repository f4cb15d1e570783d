"""A drawn or uploaded image, prepared the way MNIST's digits were, or refused in one sentence.

MNIST's recipe (LeCun et al.): white ink on black, the digit's bounding box scaled to fit 20x20
with its aspect ratio kept, then placed in 28x28 so that its centre of mass sits at the centre.
A model trained on MNIST only understands digits prepared like that, so a drawing or a photo
goes through the same steps. Images are decoded by Pillow from bytes, never unpickled, and
their size is checked before their pixels are loaded.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

MAX_UPLOAD_MEGABYTES = 10  # also `server.maxUploadSize` in .streamlit/config.toml
MAX_MEGAPIXELS = 25  # a phone photo is 12-20; more is refused before decoding
MIN_SIDE = 8  # pixels: smaller images hold no digit
BOX = 20  # MNIST's digit box inside the 28x28 image
SIDE = 28
INK_THRESHOLD = 0.2  # of the brightest ink: fainter pixels do not count towards the bounding box
MIN_DIGIT_SHARE = 0.12  # a mark whose bounding box spans less of the image is "a dot"


class DigitError(ValueError):
    """Why an image cannot be read as a digit, in one sentence for the page."""


@dataclass(frozen=True)
class PreparedDigit:
    image: np.ndarray  # (28, 28) float32 in [0, 1], white ink on black, as the model sees it
    notes: tuple[str, ...] = ()  # what was done that a user should know ("inverted", "first frame")


def decode_image(data: bytes) -> tuple[np.ndarray, list[str]]:
    """Bytes of a PNG, JPEG, GIF... as grayscale floats in [0, 1] (1 = white), and notes."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise DigitError("The file is empty.")
    if len(data) > MAX_UPLOAD_MEGABYTES * 1024 * 1024:
        raise DigitError(f"The file is {len(data) / 1e6:.0f} MB; the limit is {MAX_UPLOAD_MEGABYTES} MB.")
    notes = []
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_MEGAPIXELS * 1_000_000:
            raise DigitError(f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
                             f"the limit is {MAX_MEGAPIXELS}. Scale it down or crop it to the digit.")
        if min(width, height) < MIN_SIDE:
            raise DigitError(f"The image is only {width}x{height} pixels; a digit needs at least {MIN_SIDE}x{MIN_SIDE}.")
        if getattr(image, "n_frames", 1) > 1:
            notes.append(f"An animation of {image.n_frames} frames: its first frame is used.")
            image.seek(0)
        image = ImageOps.exif_transpose(image)  # a phone photo the right way up
        image.load()
    except DigitError:
        raise
    except UnidentifiedImageError:
        raise DigitError("This file is not an image that can be read; upload a PNG or JPEG.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DigitError(f"The image could not be decoded: the file is damaged or cut short ({error}).") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"), dtype=np.float32)[..., 3] / 255.0
        if alpha.min() < 0.95:  # a transparent background: the opaque strokes are the digit
            notes.append("A transparent background: the opaque strokes are taken as the digit.")
            return alpha, notes
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0  # CMYK, palette, 16-bit: all to 8-bit gray
    return gray, notes


def prepare_digit(gray: np.ndarray, notes: list[str] | tuple = ()) -> PreparedDigit:
    """A grayscale image (any size, values in [0, 1]) as an MNIST digit: white on black, the
    bounding box scaled into 20x20, centred by its centre of mass in 28x28."""
    from PIL import Image

    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or min(gray.shape) < MIN_SIDE:
        raise DigitError(f"The image is only {gray.shape[1] if gray.ndim == 2 else 0}x{gray.shape[0]} pixels; "
                         f"a digit needs at least {MIN_SIDE}x{MIN_SIDE}.")
    notes = list(notes)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # dark ink on a light background, as on paper: MNIST is the reverse
        gray, border = 1.0 - gray, 1.0 - border
        notes.append("Dark ink on a light background: inverted to white on black, as in MNIST.")
    ink = np.clip(gray - np.median(border), 0.0, None)  # the background's level is zero ink
    if ink.max() < 0.1:
        raise DigitError("The image is empty: there is no ink to read. Draw or upload a digit.")
    ink = ink / ink.max()
    rows, columns = np.nonzero(ink > INK_THRESHOLD)
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    if max(bottom - top, right - left) < MIN_DIGIT_SHARE * max(gray.shape):
        raise DigitError("There is only a dot or a speck: draw a whole digit, filling most of the box.")
    digit = ink[top:bottom, left:right]
    scale = BOX / max(digit.shape)
    size = (max(1, round(digit.shape[1] * scale)), max(1, round(digit.shape[0] * scale)))
    boxed = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    boxed = np.clip(boxed, 0.0, 1.0)
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    y0, x0 = (SIDE - boxed.shape[0]) // 2, (SIDE - boxed.shape[1]) // 2
    canvas[y0 : y0 + boxed.shape[0], x0 : x0 + boxed.shape[1]] = boxed
    canvas = _centre_by_mass(canvas)
    return PreparedDigit(canvas / max(float(canvas.max()), 1e-6), tuple(notes))


def _centre_by_mass(image: np.ndarray) -> np.ndarray:
    """Shift by whole pixels so the centre of mass lands on pixel (14, 14), where MNIST's digits
    have theirs (measured: 13.99 and 14.01 on average over the test set)."""
    total = image.sum()
    rows, columns = np.indices(image.shape)
    shift_y = int(round(image.shape[0] // 2 - (rows * image).sum() / total))
    shift_x = int(round(image.shape[1] // 2 - (columns * image).sum() / total))
    shifted = np.zeros_like(image)
    source = image[max(0, -shift_y) : image.shape[0] - max(0, shift_y), max(0, -shift_x) : image.shape[1] - max(0, shift_x)]
    shifted[max(0, shift_y) : max(0, shift_y) + source.shape[0], max(0, shift_x) : max(0, shift_x) + source.shape[1]] = source
    return shifted


def prepare_upload(data: bytes) -> PreparedDigit:
    """An uploaded file's bytes as an MNIST digit, or DigitError in one sentence."""
    gray, notes = decode_image(data)
    return prepare_digit(gray, notes)
