"""Plotly figures for the pages: loss curves, the latent map, error histograms.

Large fonts and a fixed ten-colour palette, so a chart stays readable on a projector and
digit colours mean the same thing on every page.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ae.display.texts import LOSS_NAMES, ordinal
from ae.display.label_placement import PlotFrame, axis_range, label_box_px, place_labels

DIGIT_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
# Colour-blind-safe (Paul Tol's palette as Plotly's "Safe"): no red beside green.
SAFE_COLOURS = (
    "#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288",
    "#AA4499", "#44AA99", "#999933", "#882255", "#661100",
)
PALETTES = {"Colour-blind safe": SAFE_COLOURS, "Classic (Plotly)": DIGIT_COLOURS}
FONT = dict(size=16)
WEBGL_THRESHOLD = 1_000
LABEL_FONT = 22  # the digit labels at the clusters' centres
STAR_SIZE = 30  # Your digit's star (marker size in pixels)


def _layout(figure: go.Figure, title: str, x_title: str, y_title: str, height: int = 420) -> go.Figure:
    figure.update_layout(
        title=dict(text=title, font=dict(size=20)),
        font=FONT,
        height=height,
        margin=dict(l=60, r=20, t=60, b=60),
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend=dict(font=dict(size=15)),
        template="plotly_white",
    )
    return figure


TOOLBAR_PX = 30  # Plotly's toolbar (modebar) band along the chart's top edge


# The plot width a legend laid above the plot has its rows counted for. A wider chart leaves its
# plot a little taller; a narrower one squeezes the plot: the legend never covers the title.
LEGEND_WIDTH_PX = 900


def legend_rows(figure: go.Figure, font_px: float, width_px: float = LEGEND_WIDTH_PX) -> int:
    """How many rows a horizontal legend takes: one if every entry fits, else Plotly's grid of
    columns as wide as the widest entry (its symbol, about 40 px, and its text)."""
    names = [trace.name for trace in figure.data if trace.name and trace.showlegend is not False]
    if not names:
        return 0
    widths = [40 + 0.55 * font_px * len(name) for name in names]
    if sum(widths) <= width_px:
        return 1
    return -(-len(names) // max(1, int(width_px // max(widths))))


def clear_of_toolbar(figure: go.Figure) -> go.Figure:
    """The title, left-aligned, starts below the toolbar band, and the top margin holds the
    band, the title and a legend laid above the plot: the toolbar, shown on hover at the top
    right, never covers the title, however narrow the column. A legend above the plot hangs
    from the title's band and pushes the plot down (Plotly's automargin), and the figure grows
    by its rows past the first, so however many rows it wraps to, it covers neither."""
    title = figure.layout.title
    meta = dict(figure.layout.meta) if isinstance(figure.layout.meta, dict) else {}
    height = (figure.layout.height or 450) - meta.get("legend_rows_px", 0)  # drawn again: the height it came with
    top = figure.layout.margin.t if figure.layout.margin.t is not None else 60
    if title.text:
        size = (title.font.size if title.font and title.font.size else 20)
        legend = figure.layout.legend
        legend_band = extra = 0
        above = meta.get("legend_above") or (legend.orientation == "h" and (legend.y or 0) >= 1
                                             and legend.yanchor == "bottom")
        if above:
            font = (legend.font.size if legend.font and legend.font.size else None) or figure.layout.font.size or FONT["size"]
            row = 1.6 * font
            legend_band, extra = row, row * max(0, legend_rows(figure, font) - 1)
        lines = title.text.count("<br>") + 1
        # Subplot titles (annotations just above the top row) need a line of their own.
        subplot_band = max([1.4 * (a.font.size or 16) for a in figure.layout.annotations or ()
                            if a.yref == "paper" and a.y is not None and a.y >= 1 and a.yanchor == "bottom"] or [0])
        title_band = TOOLBAR_PX + 1.3 * size * lines + 8
        height += extra
        top = max(top, round(title_band + legend_band + subplot_band))
        if legend_band:
            figure.update_layout(legend=dict(yref="container", y=1 - title_band / height, yanchor="top"))
            meta.update(legend_above=True, legend_rows_px=extra)
        # Its first line's bottom is the anchor: Plotly writes a second line below it.
        figure.update_layout(height=round(height), meta=meta or None,
                             title=dict(x=0, xref="container", xanchor="left", pad=dict(l=12), yref="container",
                                        y=1 - (TOOLBAR_PX + 1.3 * size) / height, yanchor="bottom"))
    figure.update_layout(margin=dict(t=top))
    return figure


LEGEND_HEADROOM = 0.35  # of the data's span, above it: the legend row's place
LOSS_LEGEND_FONT_PX = 14  # the projector's legend row: three names on one row of a half-width chart


def loss_figure(step_losses, epoch_ends, train_loss, val_loss, title: str = "Loss (BCE per pixel)",
                kl_loss=()) -> go.Figure:
    """Train loss every few steps, plus per-epoch train and validation loss at each epoch's end;
    for a variational model, the validation loss's two terms as well (reconstruction and KL)."""
    figure = go.Figure()
    if step_losses:
        x, y = zip(*step_losses)
        figure.add_trace(go.Scatter(x=x, y=y, mode="lines", name=LOSS_NAMES["steps"], line=dict(color="#9ecae1", width=2)))
    epochs = list(epoch_ends)
    if train_loss:
        figure.add_trace(go.Scatter(x=epochs, y=list(train_loss), mode="lines+markers", name=LOSS_NAMES["train"],
                                    line=dict(color="#1f77b4", width=3), marker=dict(size=9)))
    if val_loss:
        figure.add_trace(go.Scatter(x=epochs, y=list(val_loss), mode="lines+markers", name=LOSS_NAMES["validation"],
                                    line=dict(color="#ff7f0e", width=3), marker=dict(size=9)))
    if kl_loss and len(kl_loss) == len(val_loss):
        figure.add_trace(go.Scatter(x=epochs, y=[v - k for v, k in zip(val_loss, kl_loss)], mode="lines+markers",
                                    name="validation: reconstruction", line=dict(color="#2ca02c", width=2, dash="dot")))
        figure.add_trace(go.Scatter(x=epochs, y=list(kl_loss), mode="lines+markers", name="validation: beta x KL",
                                    line=dict(color="#9467bd", width=2, dash="dot")))
        title = "Loss = reconstruction + beta x KL (per pixel)"
    figure = _layout(figure, title, "epoch", "loss", height=270)
    if len(figure.data) <= len(LOSS_NAMES):
        # One row along the plot's top, over headroom kept free for it: a column of three would
        # cover the newest epochs' points on a short projector chart.
        values = np.concatenate([np.asarray(trace.y, dtype=np.float64) for trace in figure.data] or [np.zeros(0)])
        values = values[np.isfinite(values)]  # a diverged run's NaN or inf is left out of the range
        if values.size:
            low, high = float(values.min()), float(values.max())
            span = (high - low) or max(abs(high), 1e-3)
            figure.update_yaxes(range=[low - 0.06 * span, high + LEGEND_HEADROOM * span])
        legend = dict(orientation="h", yanchor="top", y=1, xanchor="right", x=1)
    else:  # a variational model's five curves: a column inside the top right
        legend = dict(yanchor="top", y=1, xanchor="right", x=1)
    figure.update_layout(legend=dict(**legend, font=dict(size=13), bgcolor="rgba(255,255,255,0.8)"),
                         margin=dict(l=55, r=10, t=40, b=45),
                         # a short title at the left: the toolbar (top right) stays clear of it on the wide chart
                         title=dict(y=0.97, x=0, xref="container", xanchor="left", pad=dict(l=12), font=dict(size=17)))
    return figure


def latent_figure(coordinates: np.ndarray, labels: np.ndarray, indices: np.ndarray, title: str,
                  axis_titles: tuple[str, str] = ("dimension 1", "dimension 2"), marker_size: int = 5,
                  highlight: tuple[float, float] | None = None, colours=SAFE_COLOURS, seed: int = 0,
                  height: int = 440) -> go.Figure:
    """All digits in one trace, drawn in a shuffled order, so no class hides another where
    they overlap (one trace per class would paint 9 over 4 and 7); each digit's label sits at
    its cluster's centre, so a room reads the map without a legend.

    Each point carries its test-set index as customdata, so a selection can find the digit.
    """
    order = np.random.default_rng(seed).permutation(len(coordinates))
    xy, digits, ids = coordinates[order], labels[order], indices[order]
    trace_type = go.Scattergl if len(coordinates) > WEBGL_THRESHOLD else go.Scatter
    figure = go.Figure()
    figure.add_trace(trace_type(
        x=xy[:, 0], y=xy[:, 1], mode="markers", name="test digits", showlegend=False,
        customdata=ids,  # one number per point: a selection reports it as is
        marker=dict(size=marker_size, color=digits, colorscale=discrete_colourscale(colours), cmin=-0.5, cmax=9.5,
                    opacity=0.75),
        hovertemplate="digit %{marker.color}<br>test #%{customdata}<extra></extra>",
    ))
    stars = [highlight] if highlight is not None else []
    frame = map_frame(coordinates, height, stars)
    keep_clear = tuple((x, y, STAR_SIZE * PROJECTOR_SCALE["marker"] / 2) for x, y in stars)
    for digit, (x, y) in placed_digit_labels(cluster_centres(coordinates, labels), frame, LABEL_FONT, keep_clear).items():
        figure.add_annotation(
            x=x, y=y, text=f"<b>{digit}</b>", showarrow=False, font=dict(size=LABEL_FONT, color="black"),
            bgcolor="rgba(255,255,255,0.85)", bordercolor=colours[digit], borderwidth=3, borderpad=3,
        )
    if highlight is not None:
        # The last trace, in the digits' renderer (WebGL would draw over an SVG one): nothing covers
        # it, and the labels were placed off it.
        figure.add_trace(trace_type(
            x=[highlight[0]], y=[highlight[1]], mode="markers", name="decoded point", showlegend=False,
            marker=dict(symbol="star", size=STAR_SIZE, color="#ffd400", line=dict(width=3, color="#111111")),
            hoverinfo="skip",
        ))
    figure = _layout(figure, title, *axis_titles, height=height)
    figure.update_layout(dragmode="pan", margin=dict(l=60, r=20, t=50, b=50))
    figure.update_xaxes(range=list(frame.x_range))
    figure.update_yaxes(range=list(frame.y_range))
    return clear_of_toolbar(figure)


# The plot area a map is laid out for: a narrow column's width, and the figure's height less its
# margins (larger with the projector's fonts). A wider screen only adds room between labels.
MAP_PLOT_WIDTH_PX = 420
MAP_MARGINS_PX = 180


def map_frame(coordinates: np.ndarray, height: int, extra_points=()) -> PlotFrame:
    """The map's fixed axis ranges (the points and the star, padded) and its plot area's size."""
    extra = np.asarray(list(extra_points), dtype=np.float64).reshape(-1, 2)
    return PlotFrame(axis_range(coordinates[:, 0], extra[:, 0]), axis_range(coordinates[:, 1], extra[:, 1]),
                     MAP_PLOT_WIDTH_PX, max(100, height - MAP_MARGINS_PX))


def placed_digit_labels(centres: dict, frame: PlotFrame, font_size: float, keep_clear=()) -> dict:
    """The digit labels' positions: at their cluster's centre, nudged until none overlaps
    another or the star, with boxes sized for the projector's (larger) font."""
    box = label_box_px("0", font_size * PROJECTOR_SCALE["font"])
    return place_labels(centres, frame, box, keep_clear)


def discrete_colourscale(colours) -> list:
    """A colour scale with one flat band per digit, so numeric colours (sent as a compact
    binary array, not 10,000 strings) land on exactly the digit's colour."""
    bands = []
    for digit, colour in enumerate(colours):
        bands += [[digit / len(colours), colour], [(digit + 1) / len(colours), colour]]
    return bands


def cluster_centres(coordinates: np.ndarray, labels: np.ndarray) -> dict[int, tuple[float, float]]:
    """Each digit's median position: where its label goes on the map (robust to stray points)."""
    return {int(digit): tuple(np.median(coordinates[labels == digit], axis=0))
            for digit in range(10) if (labels == digit).any()}


def error_histogram(errors: dict[str, np.ndarray], metric: str) -> go.Figure:
    """Overlaid histograms of per-digit reconstruction error, one per model."""
    figure = go.Figure()
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c")
    for (name, values), colour in zip(errors.items(), colours):
        figure.add_trace(go.Histogram(x=values, name=name, opacity=0.6, marker_color=colour, nbinsx=60, bingroup=1))
    figure.update_layout(barmode="overlay")
    return clear_of_toolbar(_layout(figure, f"Reconstruction error per test digit ({metric})", metric, "digits", height=380))


def rate_distortion_figure(curves: dict, metric: str) -> go.Figure:
    """Test error against code size (log axis): one autoencoder line per architecture, and PCA's.

    `curves` maps an architecture's label to its points. Models stopped before their last
    epoch are drawn hollow, so a partial result is plain.
    """
    pca = {p.code_size: p.error("pca", metric) for points in curves.values() for p in points}
    sizes = sorted(pca)
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=sizes, y=[pca[size] for size in sizes], mode="lines+markers", name="PCA (same number of components)",
        line=dict(color="#ff7f0e", width=3, dash="dash"), marker=dict(size=11, symbol="square"),
    ))
    colours = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b")
    for (name, points), colour in zip(curves.items(), colours):
        figure.add_trace(go.Scatter(
            x=[p.code_size for p in points], y=[p.error("autoencoder", metric) for p in points], mode="lines+markers",
            name=name, line=dict(color=colour, width=3),
            marker=dict(size=12, symbol=["circle-open" if p.stopped_early else "circle" for p in points], line=dict(width=2)),
            customdata=[[p.epochs_done] for p in points],
            hovertemplate="code %{x}: %{y:.4f}<br>%{customdata[0]} epoch(s)<extra>" + name + "</extra>",
        ))
    figure = _layout(figure, f"Test reconstruction error ({metric.upper()} per pixel) against code size", "code size (log scale)", metric.upper())
    figure.update_xaxes(type="log", tickvals=sizes, ticktext=[str(s) for s in sizes])
    figure.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0), margin=dict(t=100))
    return clear_of_toolbar(figure)


def probe_figure(results: dict, labels: dict[str, str]) -> go.Figure:
    """Test accuracy against labelled training digits (log axis), mean with the spread over draws."""
    colours = {"autoencoder": "#1f77b4", "pca": "#ff7f0e", "pixels": "#2ca02c"}
    figure = go.Figure()
    for name, result in results.items():
        figure.add_trace(go.Scatter(
            x=list(result.label_counts), y=result.mean(), mode="lines+markers", name=labels.get(name, name),
            error_y=dict(type="data", array=result.spread(), visible=True, thickness=2, width=6),
            line=dict(color=colours.get(name), width=3), marker=dict(size=10),
        ))
    figure.add_hline(y=0.1, line_dash="dot", line_color="#999", annotation_text="chance (10%)", annotation_position="bottom right")
    figure = _layout(figure, "Logistic regression: test accuracy against labelled digits", "labelled training digits (log scale)", "test accuracy")
    counts = list(next(iter(results.values())).label_counts) if results else []
    figure.update_xaxes(type="log", tickvals=counts, ticktext=[f"{c:,}" for c in counts])
    figure.update_yaxes(range=[0, 1], tickformat=".0%")
    figure.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0), margin=dict(t=100))
    return clear_of_toolbar(figure)


def unit_heatmap(activity) -> go.Figure:
    """Digits (rows) by code units (columns): mean |activation|, darker where a unit fires."""
    figure = go.Figure(go.Heatmap(
        z=activity.digit_means, x=[str(unit) for unit in activity.units], y=[str(d) for d in range(10)],
        colorscale="Blues", colorbar=dict(title="mean |h|"),
        hovertemplate="digit %{y}, unit %{x}: %{z:.3f}<extra></extra>",
    ))
    shown = "" if len(activity.units) == activity.total_units else f" ({len(activity.units)} most digit-specific of {activity.total_units})"
    figure = _layout(figure, f"Which code units fire for which digits{shown}", "code unit", "digit", height=360)
    figure.update_xaxes(type="category", tickfont=dict(size=11))
    figure.update_yaxes(type="category", autorange="reversed")
    return clear_of_toolbar(figure)


def noise_curve_figure(levels, curves: dict[str, list[float]], kind_label: str) -> go.Figure:
    """Reconstruction error against input noise level, one line per model."""
    figure = go.Figure()
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    for (name, errors), colour in zip(curves.items(), colours):
        figure.add_trace(go.Scatter(x=list(levels), y=errors, mode="lines+markers", name=name,
                                    line=dict(color=colour, width=3), marker=dict(size=9)))
    figure = _layout(figure, f"Error against noise ({kind_label})", "noise level", "BCE against<br>the clean digit",
                     height=340)
    figure.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0), margin=dict(t=90))
    return clear_of_toolbar(figure)


def error_meter_figure(test_errors: np.ndarray, error: float, percentile: float, height: int = 250) -> go.Figure:
    """An anomaly meter: the test digits' reconstruction errors as a histogram, and a line where
    this digit's error falls. Beyond the 99th percentile the axis is cut, and the line sits at
    the edge with its value written, so one odd drawing does not squash the histogram."""
    test_errors = np.asarray(test_errors, dtype=np.float64)
    edge = float(np.percentile(test_errors, 99.5))
    shown = min(error, edge * 1.15)
    figure = go.Figure(go.Histogram(x=np.clip(test_errors, None, edge * 1.15), nbinsx=60, marker_color="#88a9c9",
                                    name="test digits", hovertemplate="BCE %{x}<br>%{y} digits<extra></extra>"))
    figure.add_vline(x=shown, line=dict(color="#cc3311", width=4))
    # Two short lines beside the line, on the side with room: one long line was cut at a column's edge.
    low = float(min(test_errors.min(), shown))
    right_half = shown > low + (edge * 1.15 - low) / 2
    figure.add_annotation(x=shown, y=1, yref="paper", text=f"<b>yours: {error:.3f}<br>{ordinal(round(percentile))} percentile</b>",
                          showarrow=False, xanchor="right" if right_half else "left", xshift=-6 if right_half else 6,
                          yanchor="top", align="right" if right_half else "left",
                          font=dict(size=15, color="#cc3311"), bgcolor="rgba(255,255,255,0.85)")
    figure = _layout(figure, "", "error (BCE per pixel)", "digits", height=height)
    # The plot starts below the toolbar band: the label at its top is never under the toolbar.
    figure.update_layout(margin=dict(l=60, r=20, t=TOOLBAR_PX, b=50), showlegend=False, bargap=0.05)
    figure.update_xaxes(automargin=True)
    figure.update_yaxes(automargin=True, nticks=4)
    return figure


def weights_figure(before: np.ndarray, after: np.ndarray, row_labels, column_labels, title: str,
                   height: int = 330) -> go.Figure:
    """A weight matrix before and after one step, one above the other on one colour scale, each
    cell written out: the step's change is visible cell by cell."""
    from plotly.subplots import make_subplots

    limit = float(max(np.abs(before).max(), np.abs(after).max(), 1e-9))
    figure = make_subplots(rows=2, cols=1, subplot_titles=("before the step", "after"), vertical_spacing=0.16)
    for row, values in enumerate((before, after), start=1):
        figure.add_trace(go.Heatmap(z=values, x=list(column_labels), y=list(row_labels), zmin=-limit, zmax=limit,
                                    colorscale="RdBu", reversescale=True, showscale=False,
                                    text=np.round(values, 2), texttemplate="%{text}", textfont=dict(size=FONT["size"]),
                                    hovertemplate="%{y}, %{x}: %{z:.4f}<extra></extra>"), row=row, col=1)
    figure.update_yaxes(autorange="reversed", type="category", dtick=1)
    figure.update_layout(title=dict(text=title, font=dict(size=17)), font=FONT, height=height,
                         margin=dict(l=60, r=10, t=60, b=30), template="plotly_white")
    # Every column named once, under the "after" matrix: names under "before" met the "after" title.
    figure.update_xaxes(type="category", dtick=1, automargin=True)
    figure.update_xaxes(showticklabels=False, row=1, col=1)
    return clear_of_toolbar(figure)


def loss_curve_figure(epoch_losses, height: int = 250) -> go.Figure:
    """The table's loss after each epoch (epoch 0: before training)."""
    figure = go.Figure(go.Scatter(x=list(range(len(epoch_losses))), y=list(epoch_losses), mode="lines+markers",
                                  marker=dict(size=5), line=dict(width=3), name="loss"))
    # A short y title: "loss over the table" ran past a projector-size chart's height.
    figure = _layout(figure, "Loss over the table", "epoch", "BCE", height=height)
    figure.update_layout(title_font_size=17, margin=dict(l=60, r=20, t=10, b=50))
    return clear_of_toolbar(figure)


def replay_figure(layouts: list[np.ndarray], labels: np.ndarray, reconstructions: list[np.ndarray], frame_labels: list[str],
                  colours=SAFE_COLOURS, height: int = 470) -> go.Figure:
    """The training replay as one Plotly animation: the sample's codes on a fixed map beside the
    panel's reconstructions, frame by frame, with a Play button and a slider. Axes are fixed
    (the 1st to 99th percentiles of all frames), so the clusters form in place."""
    from plotly.subplots import make_subplots

    from ae.display.images import image_grid

    points = np.concatenate(layouts)
    low, high = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
    margin = (high - low) * 0.08 + 1e-6
    marker = dict(size=5, color=labels, colorscale=discrete_colourscale(colours), cmin=-0.5, cmax=9.5, opacity=0.8)

    def traces(index: int) -> list:
        grid = image_grid(np.asarray(reconstructions[index], dtype=np.float32), columns=4, scale=1, padding=1)
        return [go.Scatter(x=layouts[index][:, 0], y=layouts[index][:, 1], mode="markers", marker=marker,
                           hovertemplate="digit %{marker.color}<extra></extra>", showlegend=False),
                go.Heatmap(z=grid[::-1], colorscale="gray", showscale=False, hoverinfo="skip")]

    frame = PlotFrame((low[0] - margin[0], high[0] + margin[0]), (low[1] - margin[1], high[1] + margin[1]),
                      MAP_PLOT_WIDTH_PX, max(100, height - MAP_MARGINS_PX))

    def digit_labels(index: int) -> list[dict]:
        """Each digit's label at its cluster's median in this frame, as on the latent map, nudged
        apart where two would overlap."""
        placed = placed_digit_labels(cluster_centres(layouts[index], labels), frame, 18)
        return [dict(x=x, y=y, xref="x", yref="y", text=f"<b>{digit}</b>", showarrow=False,
                     font=dict(size=18, color="black"), bgcolor="rgba(255,255,255,0.85)", bordercolor=colours[digit],
                     borderwidth=3, borderpad=2) for digit, (x, y) in placed.items()]

    figure = make_subplots(rows=1, cols=2, column_widths=[0.66, 0.34], horizontal_spacing=0.05,
                           subplot_titles=("codes of 2,000 test digits", "reconstructions"))
    for trace, column in zip(traces(0), (1, 2)):  # it opens on the first frame: Play shows the clusters form
        figure.add_trace(trace, row=1, col=column)
    titles = list(figure.layout.annotations)  # the subplot titles stay in every frame
    figure.update_layout(annotations=titles + digit_labels(0))
    figure.frames = [go.Frame(data=traces(index), name=label, traces=[0, 1],
                              layout=dict(annotations=titles + digit_labels(index)))
                     for index, label in enumerate(frame_labels)]
    figure.update_xaxes(range=[low[0] - margin[0], high[0] + margin[0]], row=1, col=1)
    figure.update_yaxes(range=[low[1] - margin[1], high[1] + margin[1]], row=1, col=1)
    figure.update_xaxes(visible=False, row=1, col=2)
    figure.update_yaxes(visible=False, scaleanchor="x2", row=1, col=2)
    step_args = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    figure.update_layout(
        font=FONT, height=height, template="plotly_white", margin=dict(l=40, r=20, t=40 + TOOLBAR_PX, b=130),
        # Play and Pause at the left, the slider after them; the frame's name sits at the slider's
        # right end (not at its left, where the buttons are), and the slider ends short of the
        # edge so the last step's name is not cut.
        updatemenus=[dict(type="buttons", x=0.0, y=-0.06, xanchor="left", yanchor="top", direction="left",
                          pad=dict(t=30, r=10), buttons=[
            dict(label="▶ Play", method="animate",
                 args=[None, dict(frame=dict(duration=450, redraw=True), transition=dict(duration=250), fromcurrent=True)]),
            dict(label="❚❚ Pause", method="animate", args=[[None], step_args]),
        ])],
        sliders=[dict(active=0, x=0.3, len=0.64, y=-0.06, yanchor="top", pad=dict(t=30, r=0),
                      currentvalue=dict(prefix="after ", xanchor="right", font=dict(size=20)),
                      steps=[dict(label=label, method="animate", args=[[label], step_args]) for label in frame_labels])],
    )
    return figure


PROJECTOR_SCALE = {"font": 1.35, "marker": 1.6, "line": 1.8}


PROJECTOR_TITLE_CHARS = 32  # a longer title goes on two lines: at 27 px it would outrun a half-width column


def wrapped(text: str, limit: int) -> str:
    """A title over `limit` characters broken in two at the space nearest its middle."""
    if len(text) <= limit or "<br>" in text or " " not in text:
        return text
    spaces = [i for i, char in enumerate(text) if char == " "]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return text[:cut] + "<br>" + text[cut + 1:]


def loss_figure_for_projector(figure: go.Figure, height: int) -> go.Figure:
    """The loss chart on a short projector chart: the title's band holds the legend's row (the
    metrics above the chart name it), so the curves keep the plot's whole height."""
    figure = for_projector(figure)
    if len(figure.data) > len(LOSS_NAMES):  # a variational model's five curves keep their column
        return figure.update_layout(height=height)
    legend_font = LOSS_LEGEND_FONT_PX
    figure.update_layout(
        title_text="", height=height, yaxis_title="BCE per pixel",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0,
                    font=dict(size=legend_font), bgcolor="rgba(0,0,0,0)"),
        margin=dict(t=round(TOOLBAR_PX + 1.7 * legend_font)),
    )
    return figure.update_yaxes(autorange=True, range=None)  # the legend no longer sits in the plot


def for_projector(figure: go.Figure) -> go.Figure:
    """The same figure, readable from a lecture hall's back row: larger text, bigger markers,
    thicker lines. Applied by the pages in presentation mode."""
    figure = go.Figure(figure)
    font = figure.layout.font.size or FONT["size"]
    figure.update_layout(font_size=round(font * PROJECTOR_SCALE["font"]))
    if figure.layout.title and figure.layout.title.font and figure.layout.title.font.size:
        figure.update_layout(title_font_size=round(figure.layout.title.font.size * PROJECTOR_SCALE["font"]))
    if figure.layout.title.text:
        figure.update_layout(title_text=wrapped(figure.layout.title.text, PROJECTOR_TITLE_CHARS))
    if figure.layout.legend.font and figure.layout.legend.font.size:
        figure.update_layout(legend_font_size=round(figure.layout.legend.font.size * PROJECTOR_SCALE["font"]))
    for annotation in figure.layout.annotations or ():
        if annotation.font and annotation.font.size:
            annotation.font.size = round(annotation.font.size * PROJECTOR_SCALE["font"])
    for trace in figure.data:
        marker = getattr(trace, "marker", None)
        if marker is not None and isinstance(getattr(marker, "size", None), (int, float)):
            marker.size = marker.size * PROJECTOR_SCALE["marker"]
        textfont = getattr(trace, "textfont", None)
        if textfont is not None and isinstance(getattr(textfont, "size", None), (int, float)):
            textfont.size = round(textfont.size * PROJECTOR_SCALE["font"])  # numbers in cells: the body's size
        line = getattr(trace, "line", None)
        if line is not None and getattr(line, "width", None):
            line.width = line.width * PROJECTOR_SCALE["line"]
        elif line is not None and getattr(trace, "type", "") == "scatter" and "lines" in (trace.mode or ""):
            line.width = 2 * PROJECTOR_SCALE["line"]
    return clear_of_toolbar(figure)
