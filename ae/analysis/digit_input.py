"""A drawn or uploaded image, prepared the way MNIST's digits were, or refused in one sentence.

MNIST's recipe (LeCun et al.): white ink on black, the digit's bounding box scaled to fit 20x20
with its aspect ratio kept, then placed in 28x28 so that its centre of mass sits at the centre.
A model trained on MNIST only understands digits prepared like that, so a drawing or a photo
goes through the same steps. Images are decoded by Pillow from bytes, never unpickled, only in
the formats the page names; their size is checked before their pixels are loaded, and they are
shrunk to WORK_SIDE before any floats are made, so one upload costs a bounded amount of memory
(see `tests/test_your_digit.py`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

MAX_UPLOAD_MEGABYTES = 10  # also `server.maxUploadSize` in .streamlit/config.toml
MAX_MEGAPIXELS = 25  # a phone photo is 12-20; more is refused from the header, before decoding
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")  # Pillow's names; no other decoder is tried
FORMAT_NAMES = "PNG, JPEG, GIF, BMP or WebP"
# Pillow decodes a WebP whole, through three full-size RGBA copies (15 bytes a pixel, against 4-5
# for a PNG): a lower limit keeps its peak memory within the others'.
MEGAPIXELS_BY_FORMAT = {"WEBP": 8}
UPLOAD_TYPES = ("png", "jpg", "jpeg", "gif", "bmp", "webp")  # the file names the upload box offers
WORK_SIDE = 512  # pixels: an image is shrunk to this before floats; the digit ends up 20 wide anyway
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
    """Bytes of one of `FORMATS` as grayscale floats in [0, 1] (1 = white), at most WORK_SIDE
    pixels a side, and notes."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise DigitError("The file is empty.")
    if len(data) > MAX_UPLOAD_MEGABYTES * 1024 * 1024:
        raise DigitError(f"The file is {len(data) / 1e6:.0f} MB; the limit is {MAX_UPLOAD_MEGABYTES} MB.")
    notes = []
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)  # other decoders never see the bytes
        width, height = image.size
        limit = MEGAPIXELS_BY_FORMAT.get(image.format, MAX_MEGAPIXELS)
        if width * height > limit * 1_000_000:
            kind = "" if limit == MAX_MEGAPIXELS else f" for a {image.format.title()} image"
            raise DigitError(f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
                             f"the limit{kind} is {limit}. Scale it down or crop it to the digit.")
        if min(width, height) < MIN_SIDE:
            raise DigitError(f"The image is only {width}x{height} pixels; a digit needs at least {MIN_SIDE}x{MIN_SIDE}.")
        if getattr(image, "is_animated", False):  # not n_frames: for a GIF that decodes every frame
            notes.append("An animation: its first frame is used.")
            image.seek(0)
        small, transparent = _reduced(image)
    except DigitError:
        raise
    except UnidentifiedImageError:
        raise DigitError(f"This file is not an image that can be read here; upload a {FORMAT_NAMES} picture.") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DigitError(f"The image could not be decoded: the file is damaged or cut short ({error}).") from None
    if transparent:
        notes.append("A transparent background: the opaque strokes are taken as the digit.")
    return np.asarray(small, dtype=np.float32) / 255.0, notes


def _reduced(image) -> tuple[object, bool]:
    """The picture as one 8-bit band at most WORK_SIDE a side, the right way up, and whether that
    band is the alpha channel. A JPEG decodes at 1/2 to 1/8 scale (`draft`); other formats decode
    whole, then shrink by whole-pixel averaging before any floats exist."""
    from PIL import Image, ImageOps

    image.draft("L", (WORK_SIDE, WORK_SIDE))
    image.load()
    transparent = False
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = image.point(_palette_alpha(image.info["transparency"]), "L") if image.mode == "P" else image.getchannel("A")
        transparent = alpha.getextrema()[0] < 0.95 * 255  # a transparent background: the strokes are the digit
    if transparent:
        band = alpha
    elif image.mode in ("L", "RGB", "CMYK"):
        band = image  # shrunk as it is, then made gray: no full-size copy
    else:
        band = image.convert("L")  # palette, 16-bit, bilevel, opaque alpha: to 8-bit gray first
    band.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)  # reduce() by a whole factor, then resample
    band = band.convert("L")
    return ImageOps.exif_transpose(band), transparent  # a phone photo the right way up


def _palette_alpha(transparency) -> list[int]:
    """A palette image's alpha per palette index: one transparent index, or one alpha per index."""
    if isinstance(transparency, bytes):
        return [transparency[i] if i < len(transparency) else 255 for i in range(256)]
    return [0 if i == transparency else 255 for i in range(256)]


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
