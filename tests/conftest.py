"""Shared pytest set-up: quiet TensorFlow, small fixtures generated on the fly."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download: TFDS and Keras must fail fast instead of waiting on a network.
os.environ.setdefault("TFDS_DISABLE_GCS", "1")

import pytest  # noqa: E402

from tests import fixtures  # noqa: E402


@pytest.fixture
def voc_folder(tmp_path):
    """A tiny Pascal VOC folder (see `fixtures.make_voc_folder`)."""
    return fixtures.make_voc_folder(tmp_path / "voc")


@pytest.fixture
def csv_folder(tmp_path):
    """A tiny CSV dataset (see `fixtures.make_csv_folder`)."""
    return fixtures.make_csv_folder(tmp_path / "csv")


# --- the tiny model, saved once per session (tests read the file, never change it) -------------


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """`fixtures.tiny_model()` saved as a .keras file."""
    path = str(tmp_path_factory.mktemp("tiny") / "tiny.keras")
    fixtures.tiny_model().save(path)
    return path


@pytest.fixture(scope="session")
def random_tiny_model_path(tmp_path_factory):
    """`fixtures.tiny_model(randomize=True)` saved: outputs that depend on the image."""
    path = str(tmp_path_factory.mktemp("tiny") / "model.keras")
    fixtures.tiny_model(randomize=True).save(path)
    return path


@pytest.fixture(scope="session")
def per_class_model_path(tmp_path_factory):
    """The tiny model with per-class boxes (top-5 localization) and a drawn box quality head."""
    path = str(tmp_path_factory.mktemp("tiny") / "per_class.keras")
    fixtures.tiny_model(
        randomize={"quality_dense": 1.0}, attach="flattened", regression="per_class"
    ).save(path)
    return path
