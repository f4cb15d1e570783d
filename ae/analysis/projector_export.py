"""A model's test codes as the files the TensorFlow Embedding Projector reads, in one ZIP.

projector.tensorflow.org loads `vectors.tsv` and `metadata.tsv` with its Load button;
TensorBoard's projector plugin reads `projector_config.pbtxt` in its log directory, with
paths relative to that file; `projector_config.json` is the same config in the JSON form the
standalone projector takes as `?config=URL` (its paths must then be URLs where the files are
hosted). The formats follow the projector's own readers:

- vectors: one row per point, values tab-separated, no header;
- metadata: with two or more columns the first row is the header (one column would have none);
- sprite: a square grid of tiles, row-first, at most 8192 px a side; the projector multiplies
  each tile by the point's colour and drops pixels whose alpha is 0, so the digits are white
  strokes on a transparent background and take their label's colour.

The number of digits is bounded so the download stays small: all 10,000 test digits up to
MAX_VALUES code values in all, the first ones in test order beyond that.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass

import numpy as np

from ae.display.images import to_uint8

VECTORS = "vectors.tsv"
METADATA = "metadata.tsv"
SPRITE = "sprite.png"
CONFIG_PBTXT = "projector_config.pbtxt"  # the name TensorBoard's plugin looks for
CONFIG_JSON = "projector_config.json"
README = "README.txt"

TILE = 28
MAX_SPRITE_SIDE = 8192  # the projector refuses larger sprites (a WebGL texture limit)
MAX_TILES = (MAX_SPRITE_SIDE // TILE) ** 2
MAX_VALUES = 1_000_000  # about 10 MB of vectors TSV: all 10,000 test digits up to code size 100
MIN_CODE_SIZE = 2  # the projector refuses vectors of one dimension
VALUE_FORMAT = "%.6g"  # float32 to about six significant digits, as the codes CSV


@dataclass(frozen=True)
class ProjectorFiles:
    """The export's files by name (inside `folder` in the ZIP), and how many digits it holds."""

    folder: str
    files: dict[str, bytes]
    digits: int


def projector_problem(code_size: int) -> str | None:
    """Why this model's codes cannot go to the projector, in a sentence, or None."""
    if code_size < MIN_CODE_SIZE:
        return (f"The Embedding Projector needs codes of at least {MIN_CODE_SIZE} numbers; "
                f"this model's code has {code_size}.")
    return None


def projector_digit_count(available: int, code_size: int, max_values: int = MAX_VALUES) -> int:
    """How many test digits the export holds: all of them while the vectors stay under
    `max_values` numbers and the sprite under the projector's size limit."""
    return max(0, min(available, max_values // max(code_size, 1), MAX_TILES))


def vectors_tsv(codes: np.ndarray) -> bytes:
    """One row per digit, its code values tab-separated, no header."""
    buffer = io.StringIO()
    np.savetxt(buffer, np.asarray(codes, dtype=np.float64), fmt=VALUE_FORMAT, delimiter="\t")
    return buffer.getvalue().encode()


def metadata_tsv(labels: np.ndarray) -> bytes:
    """A header row, then each digit's label and its index in the test set (two columns, so
    the projector reads the first row as the header)."""
    rows = ["label\ttest_index", *(f"{int(label)}\t{index}" for index, label in enumerate(labels))]
    return ("\n".join(rows) + "\n").encode()


def sprite_png(images: np.ndarray) -> bytes:
    """The digits tiled row-first in a square grid of 28 px tiles, as a grey-and-alpha PNG
    (half the size of RGBA; browsers read it as RGBA): white strokes, transparent background
    (alpha 0 where the pixel is 0)."""
    from PIL import Image

    tiles = images if images.dtype == np.uint8 else to_uint8(images)
    tiles = tiles.reshape(len(tiles), TILE, TILE)
    per_side = max(1, math.ceil(math.sqrt(len(tiles))))
    grid = np.zeros((per_side * per_side, TILE, TILE), dtype=np.uint8)
    grid[: len(tiles)] = tiles
    grid = grid.reshape(per_side, per_side, TILE, TILE).transpose(0, 2, 1, 3).reshape(per_side * TILE, per_side * TILE)
    alpha = np.where(grid > 0, 255, 0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.stack([grid, alpha], axis=-1)).save(buffer, format="PNG")
    return buffer.getvalue()


def _embedding(name: str, shape: tuple[int, int]) -> dict:
    return {"tensorName": name, "tensorShape": list(shape), "tensorPath": VECTORS, "metadataPath": METADATA,
            "sprite": {"imagePath": SPRITE, "singleImageDim": [TILE, TILE]}}


def config_json(name: str, shape: tuple[int, int]) -> bytes:
    """The standalone projector's config: projector_config.proto in its JSON form."""
    return (json.dumps({"embeddings": [_embedding(name, shape)]}, indent=2) + "\n").encode()


def config_pbtxt(name: str, shape: tuple[int, int]) -> bytes:
    """TensorBoard's config: projector_config.proto in text format, paths relative to it."""
    quoted = json.dumps(name)  # a double-quoted, escaped string; protobuf text format reads it alike
    lines = ["embeddings {", f"  tensor_name: {quoted}", f"  tensor_shape: {shape[0]}", f"  tensor_shape: {shape[1]}",
             f'  tensor_path: "{VECTORS}"', f'  metadata_path: "{METADATA}"', "  sprite {",
             f'    image_path: "{SPRITE}"', f"    single_image_dim: {TILE}", f"    single_image_dim: {TILE}", "  }", "}"]
    return ("\n".join(lines) + "\n").encode()


def readme(folder: str, name: str, digits: int, available: int) -> bytes:
    which = f"all {digits:,} test digits" if digits == available else f"the first {digits:,} of {available:,} test digits"
    return (
        f"{name}: {which}, for the TensorFlow Embedding Projector.\n\n"
        f"projector.tensorflow.org: Load, then choose {VECTORS} (step 1) and {METADATA} (step 2); colour by label.\n"
        f"TensorBoard, with the digit images: unzip, then run  tensorboard --logdir {folder}  and open the Projector tab\n"
        f"({CONFIG_PBTXT} points to the other files, beside it).\n"
        f"Hosting the files yourself: put their URLs into {CONFIG_JSON} and open\n"
        "projector.tensorflow.org/?config=<the URL of that JSON file>.\n"
    ).encode()


def projector_files(codes: np.ndarray, labels: np.ndarray, images: np.ndarray, name: str,
                    max_values: int = MAX_VALUES) -> ProjectorFiles:
    """The export for the test codes of the model called `name` (its key): codes, labels and
    images in test-set order, images as uint8 0..255 or floats 0..1."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or not len(codes) == len(labels) == len(images):
        raise ValueError(f"Codes, labels and images must be one row per digit; got {codes.shape}, "
                         f"{len(labels)} labels and {len(images)} images.")
    problem = projector_problem(codes.shape[1])
    if problem:
        raise ValueError(problem)
    digits = projector_digit_count(len(codes), codes.shape[1], max_values)
    shape = (digits, codes.shape[1])
    folder = f"{name}-projector"
    tensor_name = f"{name} test codes"
    files = {
        VECTORS: vectors_tsv(codes[:digits]),
        METADATA: metadata_tsv(labels[:digits]),
        SPRITE: sprite_png(np.asarray(images[:digits])),
        CONFIG_PBTXT: config_pbtxt(tensor_name, shape),
        CONFIG_JSON: config_json(tensor_name, shape),
        README: readme(folder, name, digits, len(codes)),
    }
    return ProjectorFiles(folder, files, digits)


def projector_zip(codes: np.ndarray, labels: np.ndarray, images: np.ndarray, name: str,
                  max_values: int = MAX_VALUES) -> bytes:
    """The export as one ZIP, its files in a folder `<name>-projector/` (TensorBoard's logdir)."""
    export = projector_files(codes, labels, images, name, max_values)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file_name, data in export.files.items():
            compression = zipfile.ZIP_STORED if file_name == SPRITE else zipfile.ZIP_DEFLATED  # a PNG is compressed already
            archive.writestr(f"{export.folder}/{file_name}", data, compress_type=compression)
    return buffer.getvalue()
