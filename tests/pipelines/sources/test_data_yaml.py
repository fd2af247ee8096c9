"""Tests of pipelines/sources/data_yaml.py: the data.yaml of YOLO datasets."""

import pytest

from pipelines.sources import data_yaml
from pipelines.sources.source import DatasetError

ULTRALYTICS_YAML = """\
# Ultralytics YOLO, AGPL-3.0 license
# COCO8 dataset https://docs.ultralytics.com/datasets/detect/coco8/

path: coco8 # dataset root dir
train: images/train # train images (relative to 'path') 4 images
val: "images/val"
test: # test images (optional)

# Classes
names:
  0: person
  1: 'traffic light'
  2: "hair # drier"

# Download script/URL (optional)
download: |
  from pathlib import Path
  url: not a key
extra:
- a
- b
"""


def test_data_yaml_reads_what_ultralytics_writes_values_as_text():
    parsed = data_yaml.load(ULTRALYTICS_YAML, "data.yaml")
    assert (
        parsed["path"] == "coco8"
        and parsed["train"] == "images/train"
        and parsed["val"] == "images/val"
    )
    assert parsed["test"] is None
    assert parsed["names"] == {"0": "person", "1": "traffic light", "2": "hair # drier"}
    assert parsed["download"] == "from pathlib import Path\nurl: not a key\n"
    assert parsed["extra"] == ["a", "b"]  # PyYAML's unindented block list
    assert data_yaml.load("names: ['a, b', c]\nval: [x, y]", "d")["names"] == ["a, b", "c"]
    assert data_yaml.load("names: {0: a, 1: b}", "d")["names"] == {"0": "a", "1": "b"}
    assert data_yaml.load("names:\n  - a\n  - b  # c\n", "d")["names"] == ["a", "b"]
    # Plain values stay the text they read as (YAML 1.1 would give False, True, 1.0 and a date).
    assert data_yaml.load("names: [no, yes, 1.0]\nnc: 3\nval: 2024-01-01", "d") == {
        "names": ["no", "yes", "1.0"],
        "nc": "3",
        "val": "2024-01-01",
    }
    assert data_yaml.load("", "d") == {} and data_yaml.load("test: ~", "d") == {"test": None}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("names:\n\t- a", r"^data.yaml line 2: not valid YAML \(.*found character '\\t'"),
        ("just text", r"^data.yaml: not a YAML mapping of 'key: value' lines"),
        ("- train", r"^data.yaml: not a YAML mapping"),
        ("train: 'x", r"^data.yaml line 1: not valid YAML \(while scanning a quoted scalar"),
        ("a: 1\n---\nb: 2", r"^data.yaml line 2: .*expected a single document"),
        ("x: [a\ny: b", r"^data.yaml line 2: not valid YAML"),
        ("names: {[a]: b}", r"^data.yaml line 1: not valid YAML \(.*unhashable key"),
    ],
)
def test_data_yaml_errors_are_one_line_naming_the_file_and_line(text, fragment):
    with pytest.raises(DatasetError, match=fragment) as raised:
        data_yaml.load(text, "data.yaml")
    assert "\n" not in str(raised.value)
