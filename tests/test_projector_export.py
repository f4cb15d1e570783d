"""ae.analysis.projector_export: a real model's test codes as the Embedding Projector's files,
parsed back the way the projector reads them (the configs against projector_config.proto's
schema, with protobuf's own text and JSON parsers), and the Latent page offering the ZIP.
"""
from __future__ import annotations

import io
import json
import math
import posixpath
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from ae.analysis.projector_export import (CONFIG_JSON, CONFIG_PBTXT, METADATA, README, SPRITE, TILE, VECTORS,
                                          projector_digit_count, projector_problem, projector_zip)
from ae.analysis.results import test_set_results as model_test_set_results  # not a test: pytest collects test_*
from ae.model.architectures import build_models
from ae.model.data import load_dataset
from ae.training.worker import pixel_binary_crossentropy

NAME = "dense-c3-e1-projtest"


@pytest.fixture(scope="module")
def dataset(small_mnist_path):
    return load_dataset(small_mnist_path)


@pytest.fixture(scope="module")
def codes(dataset):
    """A dense model with a 3-number code, trained one epoch on the 2,000-digit slice; its test
    codes as the Latent page gets them."""
    keras.utils.set_random_seed(0)
    models = build_models("dense", 3)
    models.autoencoder.compile(optimizer=keras.optimizers.Adam(1e-3), loss=pixel_binary_crossentropy)
    models.autoencoder.fit(dataset.train_images, dataset.train_images, batch_size=64, epochs=1, verbose=0)
    return model_test_set_results(NAME, 1.0, models, dataset).codes


def projector_config_class():
    """ProjectorConfig from tensorboard/plugins/projector/projector_config.proto (its fields and
    numbers as published), so the configs are parsed by protobuf itself."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="projector_config_test.proto", package="tensorboard.projector",
                                               syntax="proto3")

    def message(name, fields):
        described = proto.message_type.add(name=name)
        for number, (field_name, kind, label, type_name) in enumerate(fields, start=1):
            described.field.add(name=field_name, number=number, type=kind, label=label, type_name=type_name)

    one, many = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    string, uint32, nested = field.TYPE_STRING, field.TYPE_UINT32, field.TYPE_MESSAGE
    message("SpriteMetadata", [("image_path", string, one, None), ("single_image_dim", uint32, many, None)])
    message("EmbeddingInfo", [("tensor_name", string, one, None), ("metadata_path", string, one, None),
                              ("bookmarks_path", string, one, None), ("tensor_shape", uint32, many, None),
                              ("sprite", nested, one, ".tensorboard.projector.SpriteMetadata"),
                              ("tensor_path", string, one, None)])
    message("ProjectorConfig", [("model_checkpoint_path", string, one, None),
                                ("embeddings", nested, many, ".tensorboard.projector.EmbeddingInfo"),
                                ("model_checkpoint_dir", string, one, None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorboard.projector.ProjectorConfig"))


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def projector_vectors(text: str) -> np.ndarray:
    """As the projector reads them: each non-empty line split on tabs, every field a number
    (a non-numeric first field would be taken as a label)."""
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    return np.array([[float(value) for value in row] for row in rows])


def projector_metadata(text: str) -> tuple[list[str], list[list[str]]]:
    """As the projector reads it: a tab in the first line makes that line the header."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert "\t" in lines[0]
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def test_the_export_parses_back_to_the_codes_labels_and_digits(dataset, codes):
    files = read_zip(projector_zip(codes, dataset.y_test, dataset.x_test, NAME))
    folder = f"{NAME}-projector"
    assert sorted(files) == sorted(f"{folder}/{name}" for name in (VECTORS, METADATA, SPRITE, CONFIG_PBTXT, CONFIG_JSON, README))
    count = len(dataset.y_test)

    vectors = projector_vectors(files[f"{folder}/{VECTORS}"].decode())
    assert vectors.shape == codes.shape == (count, 3)
    np.testing.assert_allclose(vectors, codes, rtol=1e-5, atol=1e-7)  # six significant digits
    assert np.ptp(codes, axis=0).min() > 0  # trained codes that vary, not a constant the test could not tell apart

    header, rows = projector_metadata(files[f"{folder}/{METADATA}"].decode())
    assert header == ["label", "test_index"]
    assert [int(row[0]) for row in rows] == dataset.y_test.tolist()
    assert [int(row[1]) for row in rows] == list(range(count))

    sprite = Image.open(io.BytesIO(files[f"{folder}/{SPRITE}"]))
    per_side = math.ceil(math.sqrt(count))
    assert sprite.size == (per_side * TILE, per_side * TILE) and per_side * TILE <= 8192  # square, as the projector needs
    pixels = np.asarray(sprite.convert("RGBA"))
    for index in (0, 1, per_side - 1, per_side, count - 1):
        row, column = divmod(index, per_side)
        tile = pixels[row * TILE:(row + 1) * TILE, column * TILE:(column + 1) * TILE]
        for channel in range(3):
            np.testing.assert_array_equal(tile[..., channel], dataset.x_test[index])  # white strokes
        np.testing.assert_array_equal(tile[..., 3] > 0, dataset.x_test[index] > 0)  # on a transparent background
    assert not pixels[(count // per_side) * TILE:, (count % per_side) * TILE:, 3].any()  # the unused tiles are empty
    # The model-input floats (0..1) make the same sprite once scaled to 0..255.
    from_floats = read_zip(projector_zip(codes, dataset.y_test, dataset.test_images, NAME))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(from_floats[f"{folder}/{SPRITE}"]))), np.asarray(sprite))

    from google.protobuf import json_format, text_format

    config_class = projector_config_class()
    pbtxt = text_format.Parse(files[f"{folder}/{CONFIG_PBTXT}"].decode(), config_class())
    as_json = json_format.Parse(files[f"{folder}/{CONFIG_JSON}"].decode(), config_class())
    assert pbtxt == as_json and len(pbtxt.embeddings) == 1
    embedding = pbtxt.embeddings[0]
    assert embedding.tensor_name == f"{NAME} test codes" and ":" not in embedding.tensor_name
    assert list(embedding.tensor_shape) == [count, 3]
    assert list(embedding.sprite.single_image_dim) == [TILE, TILE]
    for path, name in ((embedding.tensor_path, VECTORS), (embedding.metadata_path, METADATA), (embedding.sprite.image_path, SPRITE)):
        assert posixpath.join(folder, path) == f"{folder}/{name}" in files  # relative to the config, as TensorBoard reads it
    standalone = json.loads(files[f"{folder}/{CONFIG_JSON}"])["embeddings"][0]
    assert set(standalone) == {"tensorName", "tensorShape", "tensorPath", "metadataPath", "sprite"}
    assert standalone["sprite"] == {"imagePath": SPRITE, "singleImageDim": [TILE, TILE]}
    assert f"all {count:,} test digits" in files[f"{folder}/{README}"].decode()


def test_a_big_code_is_bounded_to_the_first_digits(dataset, codes):
    wide = np.tile(codes, (1, 40))  # 120 numbers per digit
    files = read_zip(projector_zip(wide, dataset.y_test, dataset.x_test, NAME, max_values=12_000))
    folder = f"{NAME}-projector"
    vectors = projector_vectors(files[f"{folder}/{VECTORS}"].decode())
    assert vectors.shape == (100, 120)
    np.testing.assert_allclose(vectors, wide[:100], rtol=1e-5, atol=1e-7)
    _, rows = projector_metadata(files[f"{folder}/{METADATA}"].decode())
    assert [int(row[0]) for row in rows] == dataset.y_test[:100].tolist()
    assert Image.open(io.BytesIO(files[f"{folder}/{SPRITE}"])).size == (280, 280)
    assert json.loads(files[f"{folder}/{CONFIG_JSON}"])["embeddings"][0]["tensorShape"] == [100, 120]
    assert "the first 100 of 500 test digits" in files[f"{folder}/{README}"].decode()
    # At the real limits: every test digit up to code size 100; 1,275 digits at 784.
    assert projector_digit_count(10_000, 32) == projector_digit_count(10_000, 100) == 10_000
    assert projector_digit_count(10_000, 784) == 1_275


def test_a_one_number_code_is_refused_in_a_sentence(dataset):
    assert projector_problem(2) is None
    assert "at least 2 numbers" in projector_problem(1)
    with pytest.raises(ValueError, match="at least 2 numbers"):
        projector_zip(np.zeros((500, 1)), dataset.y_test, dataset.x_test, NAME)
    with pytest.raises(ValueError, match="one row per digit"):
        projector_zip(np.zeros((499, 4)), dataset.y_test, dataset.x_test, NAME)


def test_the_latent_page_offers_the_projector_zip(app_env, small_mnist_path):
    from streamlit.testing.v1 import AppTest

    from ae.jobs.manager import get_manager
    from ae.model.config import TrainingConfig
    from tests.conftest import ROOT, wait_for_condition

    manager = get_manager(load_dataset(small_mnist_path), app_env)
    jobs = [manager.request(TrainingConfig(code_size=size, epochs=1, batch_size=64, train_size=500)) for size in (1, 3)]
    wait_for_condition(lambda: not any(job.snapshot().is_active for job in jobs), 180)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    app.switch_page("pages/latent.py").run()
    assert not app.exception, [e.value for e in app.exception]
    labels = [button.proto.label for button in app.get("download_button")]
    assert "For the Embedding Projector (.zip)" in labels
    captions = " ".join(caption.value for caption in app.caption)
    assert "All 500 test digits" in captions and "projector.tensorflow.org" in captions

    picker = app.selectbox(key="latent_model")
    picker.select_index([i for i, option in enumerate(picker.options) if option.startswith("code 1 ")][0]).run()
    assert not app.exception, [e.value for e in app.exception]
    assert "For the Embedding Projector (.zip)" not in [button.proto.label for button in app.get("download_button")]
    assert "The Embedding Projector needs codes of at least 2 numbers" in " ".join(caption.value for caption in app.caption)
