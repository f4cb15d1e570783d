"""Where the digit labels go on a map: each at its cluster's centre, nudged apart until no two
labels overlap and none covers a marker that must stay visible (Your digit's star).

Plotly draws annotations above every trace, so a label left on the star would hide it, and two
clusters whose centres are close would print one number over the other. Boxes are estimated
in pixels from the axis ranges and the plot's size in pixels; the estimate errs large (the
projector's font, a narrow column), so labels placed here stay apart on any screen that is
at least that big.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

GAP_PX = 3.0  # kept between two boxes (and between a box and the star)
RING_STEP_PX = 6.0  # candidate positions lie on rings this far apart around the centre
RING_ANGLES = 16  # candidate positions per ring


@dataclass(frozen=True)
class PlotFrame:
    """The plot area: its axis ranges (data units) and its size in pixels."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width_px: float
    height_px: float

    def to_pixels(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        return (x - x0) / (x1 - x0) * self.width_px, (y - y0) / (y1 - y0) * self.height_px

    def to_data(self, px: float, py: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        return x0 + px / self.width_px * (x1 - x0), y0 + py / self.height_px * (y1 - y0)


def label_box_px(text: str, font_px: float, border_px: float = 3.0, pad_px: float = 3.0) -> tuple[float, float]:
    """An annotation's width and height in pixels: bold characters about 0.65 em wide, a line
    about 1.3 em high, plus Plotly's border pad and border on each side."""
    frame = 2 * (border_px + pad_px) + 2
    return len(text) * 0.65 * font_px + frame, 1.3 * font_px + frame


def axis_range(values, extra=(), padding: float = 0.05) -> tuple[float, float]:
    """The data's span (and any extra points'), padded on both sides; never empty."""
    points = [float(v) for v in values] + [float(v) for v in extra]
    low, high = min(points), max(points)
    span = high - low or max(abs(high), 1.0)
    return low - span * padding, high + span * padding


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float], gap: float) -> bool:
    """Boxes as (centre x, centre y, half width, half height), in pixels."""
    return abs(a[0] - b[0]) < a[2] + b[2] + gap and abs(a[1] - b[1]) < a[3] + b[3] + gap


def _candidates(cx: float, cy: float, rings: int):
    yield cx, cy
    for ring in range(1, rings + 1):
        radius = ring * RING_STEP_PX
        for step in range(RING_ANGLES):
            angle = math.pi / 2 + 2 * math.pi * step / RING_ANGLES  # straight up first, then round
            yield cx + radius * math.cos(angle), cy + radius * math.sin(angle)


def place_labels(centres: dict, frame: PlotFrame, box_px: tuple[float, float],
                 keep_clear: tuple[tuple[float, float, float], ...] = (), gap_px: float = GAP_PX) -> dict:
    """Each label's position (data units), as close to its centre as it can be: the first
    free spot on rings around the centre, where free means its box overlaps no label placed
    before it and no (x, y, radius in pixels) of `keep_clear`, and lies inside the plot.
    Labels are placed in the order given; a plot too small to hold them all lets a label
    outside rather than on top of another."""
    half = (box_px[0] / 2, box_px[1] / 2)
    taken = [(*frame.to_pixels(x, y), radius, radius) for x, y, radius in keep_clear]
    rings = int(math.hypot(frame.width_px, frame.height_px) / RING_STEP_PX) + 1

    def inside(px: float, py: float) -> bool:
        return half[0] <= px <= frame.width_px - half[0] and half[1] <= py <= frame.height_px - half[1]

    placed = {}
    for key, (x, y) in centres.items():
        cx, cy = frame.to_pixels(x, y)
        spot = None
        for must_fit in (True, False):
            for px, py in _candidates(cx, cy, rings * (1 if must_fit else 4)):
                box = (px, py, *half)
                if (not must_fit or inside(px, py)) and not any(_overlaps(box, other, gap_px) for other in taken):
                    spot = box
                    break
            if spot is not None:
                break
        if spot is None:  # no free spot even far outside (a NaN centre, say): at its centre, on top
            spot = (cx, cy, *half)
        taken.append(spot)
        placed[key] = frame.to_data(spot[0], spot[1])
    return placed
