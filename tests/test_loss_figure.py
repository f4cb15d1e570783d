"""The loss chart's legend never covers the newest epochs: a row over headroom kept free for it,
or, on the projector's short chart, a row above the plot; a diverged run's NaN leaves the range."""
import math

from ae.display.figures import LEGEND_HEADROOM, LOSS_NAMES, loss_figure, loss_figure_for_projector

STEPS = [(step / 100, 0.6 * math.exp(-step / 30) + 0.2) for step in range(300)]
EPOCHS = [1, 2, 3]
TRAIN, VALIDATION = [0.26, 0.22, 0.21], [0.24, 0.215, 0.207]


def test_the_legend_is_one_row_over_room_kept_free_above_the_curves():
    figure = loss_figure(STEPS, EPOCHS, TRAIN, VALIDATION)
    assert [trace.name for trace in figure.data] == list(LOSS_NAMES.values())
    assert figure.layout.legend.orientation == "h" and figure.layout.legend.y == 1
    low, high = figure.layout.yaxis.range
    data_high = max(max(y for _, y in STEPS), *TRAIN, *VALIDATION)
    data_low = min(min(y for _, y in STEPS), *TRAIN, *VALIDATION)
    assert high >= data_high + 0.9 * LEGEND_HEADROOM * (data_high - data_low) and low < data_low


def test_on_the_projector_the_legend_sits_above_the_plot_and_the_curves_get_its_height():
    figure = loss_figure_for_projector(loss_figure(STEPS, EPOCHS, TRAIN, VALIDATION), height=245)
    legend = figure.layout.legend
    assert legend.orientation == "h" and legend.yanchor == "bottom" and legend.y >= 1
    assert figure.layout.yaxis.autorange is True and figure.layout.yaxis.range is None
    assert not figure.layout.title.text and figure.layout.height == 245
    assert figure.layout.margin.t >= 30 + legend.font.size  # the toolbar's band, then the legend's row


def test_a_variational_model_keeps_its_five_curves_in_a_column():
    kl = [0.01, 0.012, 0.013]
    figure = loss_figure(STEPS, EPOCHS, TRAIN, VALIDATION, kl_loss=kl)
    assert len(figure.data) == 5 and figure.layout.legend.orientation != "h"


def test_a_diverged_run_draws_without_its_nan_in_the_range():
    figure = loss_figure(STEPS, EPOCHS, TRAIN, [0.24, float("nan"), float("inf")])
    low, high = figure.layout.yaxis.range
    assert math.isfinite(low) and math.isfinite(high)
    assert loss_figure([], [], [], []).data == ()  # nothing trained yet: an empty chart, no error
