"""Latent space: the test digits' codes as a 2-D map coloured by digit; decode any point."""
import time
from typing import NamedTuple

import numpy as np
import streamlit as st

from ae.display.figures import PALETTES, latent_figure, replay_figure, unit_heatmap
from ae.analysis.metrics import code_activity
from ae.display.images import image_grid, upscale
from ae.maps.bounds import MapRefused
from ae.maps.service import MapSpec, get_map_service
from ae.analysis.projection import METHOD_LABELS, SLOW_METHODS, UMAP_EPOCHS, available_methods, project
from ae.analysis.projector_export import projector_digit_count, projector_problem, projector_zip
from ae.analysis.replay import frame_layouts, load_replay, sample_indices
from ae.model.architectures import ARCHITECTURES
from ae.analysis.results import codes_csv, decode, history_csv, keras_file_bytes, manifold_positions, prior_grid, prior_samples
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.model_picker import chosen_model_or_stop, manager_or_stop
from pages.presentation import chart
from pages.session import is_lecturer, session_present, this_session


class MapChoice(NamedTuple):
    """The map asked for: its method, a slow method's settings, and the colours."""

    method: str
    max_points: int | None
    options: tuple
    palette: str


@st.cache_resource(max_entries=12, show_spinner=False)
def cached_projection(key: str, saved_at: float, method: str, _codes):
    """The instant maps (the codes, PCA), shared by every session."""
    return project(_codes, method)


@st.fragment(run_every=0.5)
def map_progress(maps, spec: MapSpec, task, code_count: int) -> None:
    """The slow map's progress, polled (the task the page got, never a new request); the whole
    page is drawn again once it is done."""
    if not task.active:
        st.rerun(scope="app")
    elapsed = time.monotonic() - task.started
    points = min(spec.max_points or code_count, code_count)
    st.progress(task.fraction, text=f"{METHOD_LABELS[spec.method]} of {points:,} codes: {task.text} · {elapsed:.0f} s")
    if st.button("Stop", icon=":material/stop:", key="stop_map"):
        st.session_state["map_stop_answer"] = maps.stop(spec, this_session())
        st.rerun(scope="app")
    st.caption("The map is computed in a process of its own: the rest of this page, and everyone else's, works meanwhile. "
               "It is saved beside the model, so nobody waits for it twice.")


def map_method(top, code_size: int) -> tuple[str, str]:
    """The map's method and its colours, in the page's top row."""
    methods = available_methods(code_size)
    method = top[1].radio(
        "Map", methods, horizontal=True, format_func=METHOD_LABELS.get, key=f"method_{code_size == 2}",
        help="PCA is instant and can be decoded back into codes. UMAP and t-SNE show clusters better but are slow.",
    )
    palette = top[2].selectbox("Colours", list(PALETTES), key="palette", persist_state="session",
                               help="The colour-blind-safe palette never puts red beside green.")
    return method, palette


def slow_map_settings(container, method: str) -> tuple[int | None, tuple]:
    """A slow map's settings (points, and UMAP's seeding); (None, ()) for an instant map."""
    max_points = None
    options = ()
    if method in SLOW_METHODS:
        max_points = container.select_slider("Points", [1000, 2000, 3000, 5000, 10000], 5000, key="points")
        if method == "umap":
            seeded = container.checkbox(
                "Reproducible layout", key="umap_seeded",
                help="A seeded UMAP gives the same map every time but runs on one thread: about 10x slower.",
            )
            options = (("umap_seeded", seeded),)
    return max_points, options


def slow_map(store_root, job, snapshot, codes, choice: MapChoice, map_col):
    """A UMAP or t-SNE map from the map service: its progress meanwhile, or what stopped it; None until done."""
    maps = get_map_service(store_root)
    maps.session_present = session_present
    method = choice.method
    spec = MapSpec(job.key, snapshot.saved_at, method, choice.max_points, 0, choice.options)
    map_slot = map_col.empty()  # the progress line, or what stopped the map
    try:
        task = maps.request(spec, codes, this_session(), again=st.session_state.pop("map_ask_again", False),
                            lecturer=is_lecturer())
    except MapRefused as refusal:  # too many maps queued: nothing was queued, the next run asks again
        with map_slot.container():
            st.warning(f"The {METHOD_LABELS[method]} map was not started. {refusal}")
            st.button("Try again", icon=":material/refresh:", key="map_retry")
        return None
    if task.state in ("stopped", "failed", "refused"):
        with map_slot.container():
            if task.state == "failed":
                st.error(f"The {METHOD_LABELS[method]} map failed: {task.error}")
            elif task.state == "refused":
                st.warning(f"The {METHOD_LABELS[method]} map was not started. {task.error}")
            else:
                st.info(st.session_state.pop("map_stop_answer", None) or f"The {METHOD_LABELS[method]} map was stopped.")
            if st.button("Compute the map again", icon=":material/refresh:", key="map_again"):
                st.session_state["map_ask_again"] = True  # asked in the next run, where a refusal is shown
                st.rerun()
    elif task.active:
        with map_slot.container():
            if "map_stop_answer" in st.session_state:
                st.info(st.session_state.pop("map_stop_answer"))
            map_progress(maps, spec, task, len(codes))
    elif task.note:
        map_slot.caption(f":material/memory: {task.note}")
    return task.projection


def map_details(projection, method: str, code_count: int) -> list[str]:
    details = [f"{len(projection.indices):,} of {code_count:,} test codes", f"{projection.seconds:.2f} s"]
    settings = projection.settings
    if "explained_variance" in settings:
        details.append(f"the 2 axes keep {settings['explained_variance']:.0%} of the codes' variance")
    if method == "umap":
        details.append(f"{settings['n_neighbors']} neighbours, {settings.get('epochs', UMAP_EPOCHS)} optimisation epochs "
                       "(umap-learn would choose 500 at up to 10,000 points), "
                       + ("seeded" if settings.get("seeded") else "unseeded (fast)"))
    if method == "tsne":
        details.append(f"perplexity {settings['perplexity']:g}, {settings.get('iterations', 500)} iterations (openTSNE, FFT)")
    return details


def draw_map(projection, dataset, job, models, results, choice: MapChoice, map_col, side_col) -> None:
    """The map, the decoder beside it, and the clicked digit."""
    method = choice.method
    labels = dataset.y_test[projection.indices]
    details = map_details(projection, method, len(results.codes))

    # A click arrives as the chart's selection in session state, before the chart is drawn again.
    # It is read here, once: the star, the decode sliders and the digit panel all follow the same
    # click at once (the chart's own return value is empty in the run where its figure changed).
    map_identity = (job.key, method, choice.max_points, choice.options)
    if st.session_state.get("clicked_for") != map_identity:
        st.session_state["clicked_for"], st.session_state["clicked_point"] = map_identity, None
    selection = st.session_state.get("latent_map")
    points = (selection or {}).get("selection", {}).get("points", []) if selection else []
    new_click = points and st.session_state.get("last_clicked") != (points[0].get("x"), points[0].get("y"))
    if new_click:
        st.session_state["last_clicked"] = (points[0].get("x"), points[0].get("y"))
        customdata = points[0].get("customdata")
        if isinstance(customdata, (int, float)):
            st.session_state["clicked_point"] = int(customdata)

    # Position to decode: sliders, set to a clicked point's position when a point is selected.
    decode_point = None
    if projection.invertible:
        low, high = projection.coordinates.min(axis=0), projection.coordinates.max(axis=0)
        flat = high - low < 1e-6  # a 1-unit code's y axis, or a collapsed code: give the slider room
        low, high = np.where(flat, low - 1, low), np.where(flat, high + 1, high)
        center = (low + high) / 2
        for axis, name in enumerate(("decode_x", "decode_y")):
            # The sliders' values live in session state only (no default passed as well, which
            # Streamlit warns about); a click moves them, and they are kept inside this map's range.
            wanted = points[0][name[-1]] if new_click else st.session_state.get(name, center[axis])
            st.session_state[name] = float(np.clip(wanted, low[axis], high[axis]))

    with side_col:
        if projection.invertible:
            st.markdown("**Decode a point**")
            x = st.slider("x", float(low[0]), float(high[0]), key="decode_x")
            y = st.slider("y", float(low[1]), float(high[1]), key="decode_y")
            decode_point = (x, y)
            code = projection.to_code([decode_point])
            st.image(upscale(decode(models, code)[0], 5), caption=f"Decoded from ({x:.2f}, {y:.2f})")
            if method == "pca":
                st.caption("The position is mapped back to a full code through PCA's inverse, then decoded.")
        else:
            st.info(f"{METHOD_LABELS[method]} maps cannot be turned back into codes; choose PCA to decode positions.")
        index = st.session_state.get("clicked_point")
        if index is not None and 0 <= index < len(dataset.y_test):
            st.markdown(f"**Test digit #{index}: a {dataset.y_test[index]}**")
            pair = np.stack([dataset.test_images[index, ..., 0], results.reconstructions[index]])
            st.image(image_grid(pair, columns=2, scale=4), caption=f"original · reconstruction (BCE {results.bce[index]:.3f})")
        else:
            st.caption("Click a point on the map to see its digit and reconstruction.")

    axis_names = ("code 1", "code 2") if method == "codes" else (f"{METHOD_LABELS[method]} 1", f"{METHOD_LABELS[method]} 2")
    figure = latent_figure(
        projection.coordinates, labels, projection.indices, f"Test digits' codes ({METHOD_LABELS[method]})",
        axis_names, highlight=decode_point, colours=PALETTES[choice.palette],
    )
    with map_col:
        chart(figure, key="latent_map", on_select="rerun", selection_mode="points")
        st.caption(f"{METHOD_LABELS[method]}: " + " · ".join(details) + ". Each number sits at its digits' centre; "
                   "points are drawn in random order, so no digit hides another.")


@st.cache_resource(max_entries=4, show_spinner="Laying out the training replay...")
def cached_replay(key: str, saved_at: float, _store):
    """The saved replay's frames on one stable layout, shared by every session."""
    frames = load_replay(_store.entry_dir(key))
    if not frames:
        return None
    return ([layout.astype(np.float32) for layout in frame_layouts(frames)], [frame.reconstructions for frame in frames],
            [frame.label for frame in frames])


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_replay_figure(key: str, saved_at: float, palette_name: str, _store, _test_labels):
    """Built once per model and palette: 64 frames of 2,000 points are slow to lay out on every rerun."""
    layouts, reconstructions, frame_labels = cached_replay(key, saved_at, _store)
    labels = _test_labels[sample_indices(len(_test_labels))]
    return replay_figure(layouts, labels, reconstructions, frame_labels, colours=PALETTES[palette_name])


@st.fragment
def training_replay(store, job, snapshot, palette: str, test_labels) -> None:
    st.subheader("Training replay")
    replay = cached_replay(job.key, snapshot.saved_at, store)
    if replay is None:
        st.caption("This model has no replay saved (it was trained before replays were kept, or its file is damaged). "
                   "Models trained now keep one.")
        return
    if not st.toggle(f"Show how the codes organised themselves ({len(replay[2])} frames)", key="replay_show"):
        return
    chart(cached_replay_figure(job.key, snapshot.saved_at, palette, store, test_labels), key="replay_chart")
    layout_note = ("the codes themselves" if snapshot.config.code_size == 2 else
                   "one PCA of the final codes, each frame turned to match the last (Procrustes)")
    st.caption(f"Press Play, or drag the slider: frames after 1, 4, 16 and 64 steps, then each epoch's end. "
               f"Layout: {layout_note}, so points move rather than jump.")


def learned_manifold(models, codes, variational: bool) -> None:
    st.subheader("The learned manifold")
    per_side = st.slider("Images per side", 5, 20, 12, key="manifold_size")
    if variational:
        positions, _ = prior_grid(per_side)
        caption = ("Codes on a grid of the prior's quantiles (5% to 95% of a standard normal on each axis), "
                   "each decoded into an image: the space a variational model is trained to fill.")
    else:
        positions, _ = manifold_positions(codes, per_side)
        caption = "Codes on an even grid across the map (same orientation), each decoded into an image."
    st.image(image_grid(decode(models, positions), columns=per_side, scale=2, padding=0))
    st.caption(caption)


def prior_digits(models, code_size: int) -> None:
    st.subheader("New digits from the prior")
    if st.button("Sample new digits", icon=":material/casino:", key="sample_prior"):
        st.session_state["prior_draw"] = st.session_state.get("prior_draw", 0) + 1
    draw = st.session_state.get("prior_draw", 0)
    samples = decode(models, prior_samples(code_size, 20, seed=draw))
    st.image(image_grid(samples, columns=10, scale=3))
    st.caption(f"20 codes drawn from the prior N(0, I) (draw {draw + 1}), decoded: digits no one wrote.")


def unit_activity(codes, test_labels, sparsity: float) -> None:
    st.subheader("Which units fire for which digits")
    activity = code_activity(codes, test_labels)
    chart(unit_heatmap(activity), key="unit_heatmap")
    sparse_note = (f" It was trained with an L1 penalty of {sparsity:g} on the code, to use few units per digit."
                   if sparsity else "")
    st.caption(f"{activity.near_zero_share:.0%} of the code activations of the test digits are about zero (under 1% of "
               f"their unit's largest).{sparse_note} A unit that fires for one digit only shows as a single dark cell in its column.")


def downloads(job, snapshot, models, codes, test_labels, test_images) -> None:
    st.subheader("Downloads")
    columns = st.columns(3)
    columns[0].download_button("Codes and labels (CSV)", lambda: codes_csv(codes, test_labels),
                               file_name=f"{job.key}-codes.csv", mime="text/csv", icon=":material/download:")
    columns[1].download_button("Loss history (CSV)", lambda: history_csv(snapshot.history.epoch_ends, snapshot.history.train_loss, snapshot.history.val_loss, snapshot.history.epoch_seconds),
                               file_name=f"{job.key}-history.csv", mime="text/csv", icon=":material/download:")
    columns[2].download_button("Model (.keras)", lambda: keras_file_bytes(models),
                               file_name=f"{job.key}.keras", mime="application/octet-stream", icon=":material/download:")
    projector_download(job, codes, test_labels, test_images)


def projector_download(job, codes, test_labels, test_images) -> None:
    """The test codes, labels and digit images for the TensorFlow Embedding Projector, one ZIP
    built on click from the codes the page already has."""
    problem = projector_problem(codes.shape[1])
    if problem:
        st.caption(problem)
        return
    digits = projector_digit_count(len(codes), codes.shape[1])
    st.download_button("For the Embedding Projector (.zip)", lambda: projector_zip(codes, test_labels, test_images, job.key),
                       file_name=f"{job.key}-projector.zip", mime="application/zip", icon=":material/download:",
                       key="projector_zip")
    which = f"All {digits:,} test digits" if digits == len(codes) else f"The first {digits:,} of {len(codes):,} test digits (a bounded file)"
    st.caption(f"{which}: codes, labels and digit images. On projector.tensorflow.org press **Load** and choose "
               "`vectors.tsv`, then `metadata.tsv`; with the digit images, unzip and run "
               f"`tensorboard --logdir {job.key}-projector` (it reads `projector_config.pbtxt`).")


def latent_page() -> None:
    leave_legacy_pages_mode()
    manager = manager_or_stop()
    dataset = manager.dataset
    st.title("Latent space")
    top = st.columns([2.9, 2.1, 1.5])  # one row of controls, so the map fits a 1280x720 projector; no label cut
    with top[0]:
        job, snapshot, models, results = chosen_model_or_stop(manager, "latent_model")
    config = snapshot.config
    method, palette = map_method(top, config.code_size)
    map_col, side_col = st.columns([2.3, 1], gap="medium")
    side_top = side_col.container()  # the slow maps' settings, above the decoder
    choice = MapChoice(method, *slow_map_settings(side_top, method), palette)
    if method in SLOW_METHODS:
        projection = slow_map(manager.store.root, job, snapshot, results.codes, choice, map_col)
    else:
        projection = cached_projection(job.key, snapshot.saved_at, method, results.codes)
    if projection is not None:
        draw_map(projection, dataset, job, models, results, choice, map_col, side_col)

    training_replay(manager.store, job, snapshot, palette, dataset.y_test)
    variational = ARCHITECTURES[config.architecture].variational
    if config.code_size == 2 and method == "codes":
        learned_manifold(models, results.codes, variational)
    if variational:
        prior_digits(models, config.code_size)
    unit_activity(results.codes, dataset.y_test, config.sparsity)
    downloads(job, snapshot, models, results.codes, dataset.y_test, dataset.x_test)


latent_page()
