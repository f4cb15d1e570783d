"""Digit images as crisp, projector-friendly pictures: pixel grids scaled up without blur."""
from __future__ import annotations

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in 0..1 (any trailing channel of 1 dropped) -> uint8 0..255."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim >= 3 and images.shape[-1] == 1:
        images = images[..., 0]
    return (np.clip(images, 0.0, 1.0) * 255).round().astype(np.uint8)


def image_grid(images: np.ndarray, columns: int, scale: int = 3, padding: int = 2, background: int = 40) -> np.ndarray:
    """Tile (N, 28, 28) images into one uint8 picture, `columns` wide, each pixel `scale` x `scale`."""
    tiles = to_uint8(images)
    count, height, width = tiles.shape
    rows = max(1, -(-count // columns))
    canvas = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding), background, dtype=np.uint8
    )
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        canvas[top : top + height, left : left + width] = tile
    return np.kron(canvas, np.ones((scale, scale), dtype=np.uint8))


def pairs_grid(originals: np.ndarray, reconstructions: np.ndarray, scale: int = 3) -> np.ndarray:
    """Originals in the top row, their reconstructions right below."""
    both = np.concatenate([to_uint8(originals), to_uint8(reconstructions)])
    return image_grid(both / 255.0, columns=len(originals), scale=scale)


def upscale(image: np.ndarray, scale: int = 6) -> np.ndarray:
    """One digit as a large uint8 picture."""
    return np.kron(to_uint8(image), np.ones((scale, scale), dtype=np.uint8))
