"""Every page under Streamlit's AppTest: with no model, with a small trained model, after
changing each control, and with bad input. Training is real Keras on a slice of real MNIST.
"""
from __future__ import annotations

import base64
import json
import time

import numpy as np

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, wait_for_condition

PAGES = ["pages/home.py", "pages/train.py", "pages/reconstructions.py", "pages/latent.py", "pages/your_digit.py",
         "pages/code_size.py", "pages/few_labels.py"]
UNEXPECTED = "did not expect"


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    if page != "pages/home.py":
        app.switch_page(page).run()
    assert_clean(app)
    return app


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not [e.value for e in app.error if UNEXPECTED in e.value]


def texts(app: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "info", "caption", "subheader", "title", "error", "warning") for e in app.get(kind)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_no_model(app_env, page):
    app = open_page(page)
    if page == "pages/train.py":
        assert "press **Train**" in texts(app) and app.button(key="train_quick")
    elif page == "pages/code_size.py":
        assert "No trained models for these settings yet" in texts(app)
    else:
        assert "Train a quick model" in " ".join(b.label for b in app.button)
    if page in ("pages/reconstructions.py", "pages/latent.py", "pages/your_digit.py", "pages/few_labels.py"):
        assert "No model is trained yet" in texts(app)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_a_trained_model(trained_env, page):
    app = open_page(page)
    assert "No model is trained yet" not in texts(app)
    if page == "pages/home.py":
        assert [m.label for m in app.metric][:2] == ["Architecture", "Code size"]


def test_train_page_rejects_bad_code_sizes_in_words(app_env):
    app = open_page("pages/train.py")
    for typed, expected in ((0, "got 0"), (900, "got 900"), (-3, "got -3")):
        app.number_input(key="code").set_value(typed).run()
        assert_clean(app)
        errors = [e.value for e in app.error]
        assert any("Code size must be a whole number from 1 to 784" in e and expected in e for e in errors), errors
        assert app.button(key="train_button").disabled
    app.number_input(key="code").set_value(300).run()
    assert not app.error and not app.button(key="train_button").disabled


def test_a_queued_job_shows_its_place_not_an_empty_chart(app_env, small_mnist_path):
    from ae.model.config import TrainingConfig
    from ae.model.data import load_dataset
    from ae.jobs.manager import get_manager

    manager = get_manager(load_dataset(small_mnist_path), app_env)
    running = manager.request(TrainingConfig(code_size=32, epochs=50, batch_size=8, train_size=2000, seed=2))
    app = open_page("pages/train.py")
    app.number_input(key="code").set_value(3).run()
    app.button(key="train_button").click().run()
    assert_clean(app)
    try:
        assert "Queued: place 1 in line" in texts(app)
        assert not app.get("plotly_chart") and not app.get("image")
        assert app.button(key="continue_button").disabled  # a queued job cannot continue
        assert not app.button(key="stop_button").disabled  # this session asked for it: it may cancel
    finally:
        running.stop()
        for job in manager.jobs():
            job.stop()


def test_a_run_stopped_by_a_watcher_stays_shown(app_env, small_mnist_path):
    """A session that opened Train while someone else's run trained (and left) stops it: the
    page keeps showing that run as stopped, not the default model."""
    from ae.model.config import TrainingConfig
    from ae.model.data import load_dataset
    from ae.jobs.manager import get_manager

    manager = get_manager(load_dataset(small_mnist_path), app_env)
    quick = manager.request(TrainingConfig(code_size=4, epochs=1, batch_size=64, train_size=500))
    wait_for_condition(lambda: not quick.snapshot().is_active, 120)
    run = manager.request(TrainingConfig(code_size=32, epochs=50, batch_size=8, train_size=2000, seed=2))
    wait_for_condition(lambda: run.snapshot().position > 0, 60)
    app = open_page("pages/train.py")
    assert "Training: Dense (article), code size 32" in texts(app)
    app.button(key="stop_button").click().run()
    deadline = time.monotonic() + 60
    while "Stopped: Dense (article), code size 32" not in texts(app):
        assert time.monotonic() < deadline, texts(app)
        time.sleep(0.5)
        app.run()
    assert_clean(app)
    assert "Stopped after" in app.get("progress")[0].proto.text


def test_train_page_controls_change_without_error_and_training_runs(app_env):
    app = open_page("pages/train.py")
    app.selectbox(key="arch").select("deep_dense").run()
    app.number_input(key="code").set_value(2).run()
    app.number_input(key="epochs").set_value(2).run()
    app.select_slider(key="batch").set_value(64).run()
    app.select_slider(key="lr").set_value(0.003).run()
    app.number_input(key="digits").set_value(500).run()
    app.number_input(key="seed").set_value(7).run()
    assert_clean(app)
    assert not app.error
    app.button(key="train_button").click().run()
    assert_clean(app)
    deadline = time.monotonic() + 180
    while "Finished" not in texts(app):
        assert time.monotonic() < deadline, texts(app)
        time.sleep(1)
        app.run()  # AppTest never fires run_every: poll by rerunning
        assert_clean(app)
    assert "Deep dense, code size 2" in texts(app)
    assert app.get("plotly_chart"), "loss chart missing"
    progress = app.get("progress")[0].proto
    assert progress.value == 100
    # The finished model is now every page's current model.
    app.switch_page("pages/home.py").run()
    assert "2 of 784" in [m.value for m in app.metric]


def test_reconstructions_page_controls(trained_env):
    app = open_page("pages/reconstructions.py")
    assert len(app.get("image")) >= 20
    app.slider(key="count").set_value(30).run()
    assert len(app.get("image")) >= 30
    for digit in (3, "all"):
        app.selectbox(key="digit_class").select(digit).run()
        assert_clean(app)
    for order in ("worst", "best", "first"):
        app.radio(key="order").set_value(order).run()
        assert_clean(app)
    app.radio(key="metric").set_value("mse").run()
    assert_clean(app)
    assert any("test MSE" in m.label for m in app.metric)
    assert len(app.get("plotly_chart")) == 2  # the error histogram, the error against noise


def select_model(app: AppTest, key: str, label_start: str) -> None:
    """Pick the model whose label (as the picker shows it) starts with `label_start`."""
    picker = app.selectbox(key=key)
    picker.select_index([i for i, option in enumerate(picker.options) if option.startswith(label_start)][0]).run()


MODEL_KINDS = {"conv": "code 8 · conv ·", "denoising": "code 8 · dense, denoising ·", "sparse": "code 16 · deep_dense, sparse ·",
               "variational": "code 2 · vae ·"}
MODEL_PICKERS = {"pages/reconstructions.py": "reconstructions_model", "pages/latent.py": "latent_model",
                 "pages/your_digit.py": "digit_model", "pages/few_labels.py": "probe_model"}


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("page", sorted(MODEL_PICKERS))
def test_every_model_page_works_with_every_kind_of_model(trained_env, page, kind):
    app = open_page(page)
    select_model(app, MODEL_PICKERS[page], MODEL_KINDS[kind])
    assert_clean(app)
    if page == "pages/latent.py":
        assert "Which units fire for which digits" in texts(app)
        assert "of the code activations of the test digits are about zero" in texts(app)
        if kind == "variational":  # code size 2: the manifold over the prior, and new digits from it
            assert "prior's quantiles" in texts(app)
            app.button(key="sample_prior").click().run()
            assert_clean(app)
            assert "(draw 2)" in texts(app)
    if page == "pages/reconstructions.py":
        assert "When the input is noisy" in texts(app)
        spec = json.loads(app.get("plotly_chart")[-1].proto.spec)
        names = [trace["name"] for trace in spec["data"]]
        assert names[0].startswith("this model")
        if kind == "denoising":  # its plain twin (dense, code 8) is trained too: both curves
            assert len(names) == 2 and names[0].startswith("this model: denoising") and "plain" in names[1]


KIND_CONFIGS = {"conv": dict(architecture="conv", code_size=8),
                "denoising": dict(code_size=8, noise_kind="masking", noise_level=0.3),
                "sparse": dict(architecture="deep_dense", code_size=16, sparsity=1e-3),
                "variational": dict(architecture="vae", code_size=2)}
KIND_HEADINGS = {"conv": "Convolutional, code size 8", "denoising": "Dense (article), denoising, code size 8",
                 "sparse": "Deep dense, sparse, code size 16", "variational": "Variational (VAE), code size 2"}


@pytest.mark.parametrize("kind", KIND_CONFIGS)
def test_train_and_home_show_every_kind_of_model(trained_env, kind):
    """The session's own model of each kind (as after pressing Train) on Train and on Home."""
    from ae.model.config import TrainingConfig

    key = TrainingConfig(epochs=2, batch_size=64, train_size=2000, **KIND_CONFIGS[kind]).key
    app = open_page("pages/train.py")
    app.session_state["selected_job_key"] = key
    app.session_state["my_job_keys"] = {key}
    app.run()
    assert_clean(app)
    assert f"Finished: {KIND_HEADINGS[kind]}" in texts(app)
    assert app.get("plotly_chart") and app.get("image")
    if kind == "variational":  # its chart shows the loss's two terms
        names = [t["name"] for t in json.loads(app.get("plotly_chart")[0].proto.spec)["data"]]
        assert "validation: beta x KL" in names and "validation: reconstruction" in names
    app.switch_page("pages/home.py").run()
    assert_clean(app)
    assert "Showing your model." in texts(app)


def plotly_array(value) -> np.ndarray:
    """A Plotly JSON array: a list, or numpy's compact form {dtype, bdata (base64), shape}."""
    if isinstance(value, dict) and "bdata" in value:
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


def wait_for_slow_map(app: AppTest, label: str) -> None:
    """Rerun until the map process's map is drawn (the progress fragment polls in a browser)."""
    deadline = time.monotonic() + 150
    while f"{label}: " not in texts(app):
        assert time.monotonic() < deadline, texts(app)
        assert app.get("progress") or app.info, texts(app)  # computing, with its progress line
        time.sleep(0.5)
        app.run()
        assert_clean(app)


def _digit_traces(app: AppTest) -> list[str]:
    """The digits on the latent map: one shuffled trace, its points' digits in customdata, and
    a label per digit at its cluster's centre."""
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    points = spec["data"][0]
    digits = sorted({int(d) for d in plotly_array(points["marker"]["color"])})
    assert len(plotly_array(points["customdata"])) == len(plotly_array(points["x"]))
    labels = sorted(a["text"] for a in spec["layout"]["annotations"])
    assert labels == [f"<b>{d}</b>" for d in digits]
    assert points["marker"]["colorscale"][0][1] != points["marker"]["colorscale"][-1][1]  # a colour per digit
    return [str(d) for d in digits]


def test_latent_page_has_ten_classes_and_decodes(trained_env):
    app = open_page("pages/latent.py")
    models = [o for o in app.selectbox(key="latent_model").options]
    assert len(models) == 7
    # This session trained nothing: it sees the most-trained finished model, and is told so.
    assert "Showing the most-trained finished model (not trained in this session)" in texts(app)
    assert app.selectbox(key="latent_model").value.startswith("dense-c2-e3-")  # the value is the model key
    assert _digit_traces(app) == [str(d) for d in range(10)]
    # Code size 2 (the newest model): the codes themselves, and the learned manifold.
    assert "The codes themselves" in app.radio[0].options
    assert "The learned manifold" in texts(app)
    app.slider(key="manifold_size").set_value(6).run()
    app.slider(key="decode_x").set_value(app.slider(key="decode_x").min).run()
    assert_clean(app)
    app.radio[0].set_value("pca").run()
    assert_clean(app)
    assert _digit_traces(app) == [str(d) for d in range(10)]
    assert len(app.get("download_button")) == 4  # codes, history, .keras, Embedding Projector


def test_latent_page_tsne_on_the_code_size_8_model(trained_env):
    app = open_page("pages/latent.py")
    select_model(app, "latent_model", "code 8 · dense · 2 epochs")
    assert "The codes themselves" not in app.radio[0].options
    app.radio[0].set_value("tsne").run()
    assert_clean(app)
    wait_for_slow_map(app, "t-SNE")
    assert "t-SNE: 500 of 500 test codes" in texts(app)
    assert "iterations (openTSNE, FFT)" in texts(app)
    assert _digit_traces(app) == [str(d) for d in range(10)]


@pytest.mark.parametrize("page", PAGES)
def test_a_broken_data_file_gives_one_clear_message(monkeypatch, tmp_path, page):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"this is not an npz archive")
    monkeypatch.setenv("AE_DATA_PATH", str(broken))
    monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AE_WARM_UMAP", "0")
    app = open_page(page)
    errors = [e.value for e in app.error]
    assert any("broken.npz" in e and "not a readable .npz" in e for e in errors), errors


def test_a_damaged_saved_model_is_reported_not_fatal(app_env, small_mnist_path):
    from ae.model.data import load_dataset
    from ae.storage.store import ModelStore

    root = ModelStore.for_dataset(load_dataset(small_mnist_path), app_env).root
    (root / "dense-c3-e1-deadbeef").mkdir(parents=True)
    (root / "dense-c3-e1-deadbeef" / "record.json").write_text("{not json")
    app = open_page("pages/reconstructions.py")
    assert any("damaged" in e.label for e in app.expander)
    assert "No model is trained yet" in texts(app)


def test_code_size_page_runs_a_sweep_and_compares_with_pca(app_env):
    app = open_page("pages/code_size.py")
    app.multiselect(key="sweep_sizes").set_value([2, 4]).run()
    app.number_input(key="sweep_epochs").set_value(1).run()
    app.number_input(key="sweep_train_size").set_value(500).run()
    app.multiselect(key="sweep_architectures").set_value(["dense", "conv"]).run()
    app.button(key="start_sweep").click().run()
    assert_clean(app)
    deadline = time.monotonic() + 180
    while not app.get("plotly_chart") or "4 of 4 models done" not in str(app.get("progress")[0].proto.text):
        assert time.monotonic() < deadline, texts(app)
        time.sleep(1)
        app.run()
        assert_clean(app)
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["PCA (same number of components)", "Dense (article)", "Convolutional"]
    assert [t["x"] for t in spec["data"]] == [[2, 4], [2, 4], [2, 4]]
    assert "PCA" in texts(app) and ("beats PCA" in texts(app) or "PCA reconstructs better" in texts(app))
    assert "Lowest test BCE among the architectures:" in texts(app)
    assert len(app.get("image")) == 1 + 2 * 2 * 2  # originals, then autoencoder and PCA per size and architecture
    app.radio(key="sweep_metric").set_value("mse").run()
    assert_clean(app)
    assert "(MSE)" in texts(app)
    assert len(app.get("download_button")) == 1


def test_few_labels_page_shows_three_feature_kinds(trained_env):
    app = open_page("pages/few_labels.py")
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    names = [t["name"] for t in spec["data"]]
    assert names[0].endswith("codes (2-D), picked") and names[1:3] == ["PCA codes (same size)", "raw pixels"]  # then other kinds'
    assert spec["data"][0]["x"] == [10, 30, 100, 300, 1000, 2000]
    assert len(app.dataframe) == 1
    app.slider(key="probe_draws").set_value(2).run()
    assert_clean(app)
    assert "over 2 draw(s)" in texts(app)


def test_latent_page_decodes_a_one_unit_code(trained_env):
    app = open_page("pages/latent.py")
    select_model(app, "latent_model", "code 1 ")
    assert_clean(app)
    assert _digit_traces(app) == [str(d) for d in range(10)]
    y = app.slider(key="decode_y")
    assert y.min < 0 < y.max  # the flat y axis still gets a usable slider
    app.slider(key="decode_x").set_value(app.slider(key="decode_x").max).run()
    assert_clean(app)
    app.radio[0].set_value("tsne").run()
    assert_clean(app)
    wait_for_slow_map(app, "t-SNE")
    assert "t-SNE: 500 of 500 test codes" in texts(app)


def _digit_png(dataset, index: int) -> bytes:
    """A test digit as a picture someone might upload: 280x280, off-centre, dark ink on paper."""
    import io

    from PIL import Image

    big = Image.fromarray((dataset.test_images[index, ..., 0] * 255).astype("uint8")).resize((190, 190))
    paper = Image.new("L", (280, 280), 255)
    paper.paste(Image.eval(big, lambda value: 255 - value), (20, 60))
    buffer = io.BytesIO()
    paper.save(buffer, format="PNG")
    return buffer.getvalue()


def test_your_digit_page_reads_an_uploaded_digit(trained_env, dataset):
    app = open_page("pages/your_digit.py")
    select_model(app, "digit_model", "code 8 · dense · 2 epochs")
    assert "Draw a digit" in texts(app)
    app.radio(key="digit_source").set_value("Upload").run()
    app.file_uploader(key="digit_upload").upload("seven.png", _digit_png(dataset, 0), "image/png").run()
    assert_clean(app)
    shown = texts(app)
    assert "inverted to white on black" in shown
    assert "The code says" in shown and "%" in shown
    assert "test digits" in shown and "Error " in shown
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    meter, digit_map = charts[0], charts[1]
    assert meter["data"][0]["type"] == "histogram" and meter["layout"]["shapes"]  # the line where it falls
    assert digit_map["data"][-1]["marker"]["symbol"] == "star"
    assert "Through the code" in " ".join(str(image.proto) for image in app.get("image"))
    app.number_input(key="walk_end").set_value(900).run()
    assert any("must be a whole number from 0 to 499" in e.value for e in app.error)
    app.button(key="generate_digits").click().run()
    assert_clean(app)
    assert "was not trained to generate" in texts(app) and "(draw 2)" in texts(app)


@pytest.mark.parametrize("kind, message", [("truncated", "damaged or cut short"), ("text", "not an image")])
def test_your_digit_page_answers_a_bad_upload_in_one_sentence(trained_env, dataset, kind, message):
    data = _digit_png(dataset, 1)[:900] if kind == "truncated" else b"not an image at all"
    app = open_page("pages/your_digit.py")
    app.radio(key="digit_source").set_value("Upload").run()
    app.file_uploader(key="digit_upload").upload("upload.png", data, "image/png").run()
    assert_clean(app)
    assert any(message in warning.value for warning in app.warning), [w.value for w in app.warning]
    assert "Draw a digit" in texts(app)


def test_step_by_step_page_shows_every_number_of_a_step(app_env):
    app = open_page("pages/step_by_step.py")
    assert_clean(app)
    assert "Press **Next step**" in texts(app)
    app.button(key="next_step").click().run()
    assert_clean(app)
    assert "The last step: Ann" in texts(app) and "Loss" in texts(app)
    weights = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    encoder = next(spec for spec in weights if "Encoder weights" in spec["layout"]["title"]["text"])
    before, after = (plotly_array(trace["z"]) for trace in encoder["data"])
    assert not np.array_equal(before, after)  # the step changed the weights shown
    app.button(key="next_step").click().run()
    assert "The last step: Ben" in texts(app)
    app.button(key="run_epochs").click().run()  # 100 epochs
    assert_clean(app)
    assert "after 101 epoch(s)" in texts(app) or "after 100 epoch(s)" in texts(app)
    recommended = [m.value for m in app.markdown if m.value.startswith("- ")]
    assert recommended and "bought it" in " ".join(recommended)
    app.radio(key="steps_code_size").set_value(3).run()  # new settings start over
    assert "Press **Next step**" in texts(app)


def test_presets_on_home_train_then_open_at_once(app_env):
    from ae.model.presets import PRESETS

    app = open_page("pages/home.py")
    assert [app.button(key=f"preset_{preset.name}").label for preset in PRESETS] == [p.label for p in PRESETS]
    assert "trains first" in texts(app)
    app.toggle(key="present_toggle").set_value(True).run()
    assert_clean(app)
    assert app.session_state["present"] is True and app.query_params.get("present") == "1"


def test_presentation_mode_enlarges_every_chart(trained_env):
    from ae.display.figures import PROJECTOR_SCALE

    sizes = {}
    for present in ("0", "1"):
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        app.query_params["present"] = present
        app.run()
        app.switch_page("pages/latent.py").run()
        assert_clean(app)
        spec = json.loads(app.get("plotly_chart")[0].proto.spec)
        sizes[present] = (spec["layout"]["font"]["size"], spec["data"][0]["marker"]["size"])
    assert sizes["1"][0] == round(sizes["0"][0] * PROJECTOR_SCALE["font"])
    assert sizes["1"][1] > sizes["0"][1]


def test_latent_page_replays_training(trained_env):
    app = open_page("pages/latent.py")
    select_model(app, "latent_model", "code 8 · dense · 2 epochs")
    assert "Training replay" in texts(app)
    app.toggle(key="replay_show").set_value(True).run()
    assert_clean(app)
    spec = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if json.loads(c.proto.spec).get("frames"))
    labels = [frame["name"] for frame in spec["frames"]]
    assert labels[:3] == ["step 1", "step 4", "step 16"] and labels[-1] == "epoch 2"
    assert spec["layout"]["sliders"][0]["steps"][-1]["label"] == "epoch 2"


def test_latent_page_says_in_words_when_the_map_queue_is_full(trained_env, small_mnist_path, monkeypatch):
    """Issue 20: a map past the queue's bound is refused with a sentence on the page, and asked
    for again by Try again once there is room."""
    from ae.maps.bounds import IN_ALL_VARIABLE
    from ae.maps.service import MapSpec, get_map_service
    from ae.model.data import load_dataset
    from ae.storage.store import ModelStore

    monkeypatch.setenv(IN_ALL_VARIABLE, "1")
    app = open_page("pages/latent.py")
    select_model(app, "latent_model", "code 8 · dense · 2 epochs")
    maps = get_map_service(ModelStore.for_dataset(load_dataset(small_mnist_path), trained_env).root)
    filler = MapSpec("queue-filler", 1.0, "tsne", None)  # the engine's own map fills the queue of one
    maps.request(filler, np.random.default_rng(0).normal(size=(6000, 16)).astype(np.float32))
    try:
        app.radio[0].set_value("tsne").run()
        app.select_slider(key="points").set_value(2000).run()  # a map no other test saved beside the model
        assert_clean(app)
        assert [w.value for w in app.warning] == [
            "The t-SNE map was not started. The map queue is full (1 map ahead); try again in a minute."]
        assert not app.get("progress")
    finally:
        assert maps.stop(filler) == "Stopped."
    app.button(key="map_retry").click().run()
    wait_for_slow_map(app, "t-SNE")
    assert not app.warning
