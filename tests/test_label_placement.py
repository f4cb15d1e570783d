"""Digit labels on the maps: nudged apart until no two overlap and none covers the star."""
import numpy as np
import pytest

from ae.display import figures
from ae.display.label_placement import PlotFrame, label_box_px, place_labels

FRAME = PlotFrame((-10.0, 10.0), (-5.0, 5.0), 420, 260)
BOX = label_box_px("0", 30)
STAR_RADIUS = 24


def boxes_in_pixels(placed: dict, frame: PlotFrame = FRAME, box=BOX) -> list[tuple[float, float, float, float]]:
    return [(*frame.to_pixels(x, y), box[0] / 2, box[1] / 2) for x, y in placed.values()]


def assert_apart(placed: dict, star=None) -> None:
    boxes = boxes_in_pixels(placed)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert abs(a[0] - b[0]) >= a[2] + b[2] or abs(a[1] - b[1]) >= a[3] + b[3], f"labels overlap: {a} {b}"
        if star is not None:
            sx, sy = FRAME.to_pixels(*star)
            assert abs(a[0] - sx) >= a[2] + STAR_RADIUS or abs(a[1] - sy) >= a[3] + STAR_RADIUS, f"a label covers the star: {a}"


CASES = {
    "all on one point": {digit: (0.0, 0.0) for digit in range(10)},
    "a tight row": {digit: (digit * 0.05, 0.0) for digit in range(10)},
    "a corner": {digit: (9.9, 4.9) for digit in range(10)},
    **{f"random {seed}": {digit: tuple(np.random.default_rng(seed).uniform((-10, -5), (10, 5), size=(10, 2))[digit])
                          for digit in range(10)} for seed in range(20)},
    **{f"clustered {seed}": {digit: tuple(np.random.default_rng(seed).normal(0, 0.8, size=(10, 2))[digit])
                             for digit in range(10)} for seed in range(20)},
}


@pytest.mark.parametrize("name", list(CASES))
def test_no_two_labels_overlap_and_none_covers_the_star(name):
    centres = CASES[name]
    star = centres[0]  # on top of a label's own centre: the hardest place
    placed = place_labels(centres, FRAME, BOX, keep_clear=((*star, STAR_RADIUS),))
    assert set(placed) == set(centres)
    assert_apart(placed, star)


def test_a_label_with_room_stays_on_its_centre():
    centres = {1: (-5.0, -2.0), 7: (5.0, 2.0)}
    placed = place_labels(centres, FRAME, BOX)
    for digit, centre in centres.items():
        np.testing.assert_allclose(placed[digit], centre)


def test_a_nudged_label_stays_near_its_centre():
    centres = {digit: (0.0, 0.0) for digit in range(3)}
    placed = place_labels(centres, FRAME, BOX)
    for x, y in placed.values():
        px, py = FRAME.to_pixels(x, y)
        assert np.hypot(px - 210, py - 130) <= 2 * max(BOX) + 12  # the next ring out, not across the map


def test_the_latent_map_places_its_labels_apart_and_off_the_star(dataset):
    images = dataset.test_images.reshape(len(dataset.test_images), -1).astype(np.float64)
    centred = images - images.mean(axis=0)
    coordinates = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    labels = dataset.y_test
    star = tuple(np.median(coordinates, axis=0))
    figure = figures.latent_figure(coordinates, labels, np.arange(len(labels)), "map", highlight=star, height=400)
    frame = figures.map_frame(coordinates, 400, [star])
    box = label_box_px("0", figures.LABEL_FONT * figures.PROJECTOR_SCALE["font"])
    placed = {int(a.text.strip("</b>")): (a.x, a.y) for a in figure.layout.annotations}
    assert sorted(placed) == sorted(set(labels.tolist()))
    boxes = boxes_in_pixels(placed, frame, box)
    star_px = frame.to_pixels(*star)
    radius = figures.STAR_SIZE * figures.PROJECTOR_SCALE["marker"] / 2
    for i, a in enumerate(boxes):
        assert abs(a[0] - star_px[0]) >= a[2] + radius or abs(a[1] - star_px[1]) >= a[3] + radius
        for b in boxes[i + 1:]:
            assert abs(a[0] - b[0]) >= a[2] + b[2] or abs(a[1] - b[1]) >= a[3] + b[3]
    # the star is the last trace: drawn over every digit
    assert figure.data[-1].marker.symbol == "star" and figure.data[-1].marker.line.width >= 2
    assert list(figure.layout.xaxis.range) == list(frame.x_range)
