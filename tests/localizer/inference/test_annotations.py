"""Tests of localizer/inference/annotations.py: predict's `--annotations=FORMAT --out=DIR` writes
what its JSON lines say, in files the project's own sources read back."""

import io
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from localizer.inference import annotations, image_files
from pipelines.sources import writers
from tests import fixtures
from tests.pipelines.sources.test_writers import make_photos, read_back


@pytest.mark.parametrize("fmt", writers.FORMATS)
def test_predict_writes_each_format_as_its_json_lines_say(
    tmp_path, random_tiny_model_path, monkeypatch, capsys, fmt
):
    monkeypatch.setenv(writers.LABEL_STUDIO_ROOT_ENV, str(tmp_path))
    photos = tmp_path / "photos"
    make_photos(str(photos))  # a PNG, a JPEG and an EXIF-turned JPEG
    (photos / "d_broken.jpg").write_bytes(b"not an image")
    out = io.StringIO()
    failures = image_files.run(
        random_tiny_model_path,
        [str(photos)],
        out=out,
        refine=False,
        min_box_quality=0.5,
        annotations=fmt,
        out_dir=str(tmp_path / "out"),
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert failures == 1 and "error" in lines[-1]  # the broken file: its line, the others go on
    records = {os.path.splitext(os.path.basename(r["file"]))[0]: r for r in lines[:-1]}
    assert list(records) == ["a", "b", "c_turned"]
    assert records["c_turned"]["image_size"] == [48, 64]  # upright
    assert {record.get("unsure", False) for record in records.values()} == {True, False}
    assert f"wrote {fmt} labels of 3 photos to {tmp_path / 'out'}" in capsys.readouterr().err
    if fmt == "labelstudio":
        tasks = json.loads((tmp_path / "out" / "tasks_train.json").read_text())
        back = {}
        for task in tasks:
            (result,) = task["predictions"][0]["result"]
            value = result["value"]
            box = np.array([value["y"], value["x"], value["y"] + value["height"]])
            box = np.append(box, value["x"] + value["width"]) / 100
            class_name = value["rectanglelabels"][0]
            example = task["data"]["example_id"]
            back[example] = (fixtures.CLASSES.index(class_name), box)
    else:
        back = read_back(fmt, str(tmp_path / "out"), str(photos))
    assert sorted(back) == sorted(records)
    if fmt != "yolo":  # YOLO has no review flag
        assert _review_marks(fmt, tmp_path / "out") == {
            example: record.get("unsure", False) for example, record in records.items()
        }
    for example, record in records.items():
        assert fixtures.CLASSES[back[example][0]] == record["class"]
        np.testing.assert_allclose(back[example][1], record["box"], atol=1e-3, err_msg=example)


def test_annotations_and_out_go_together(tmp_path, tiny_model_path):
    with pytest.raises(annotations.AnnotationFlagsError) as error:
        image_files.run(tiny_model_path, [str(tmp_path)], annotations="voc")
    assert str(error.value) == (
        "--annotations=voc needs --out=DIR, the folder its label files go to; add --out, or "
        "drop --annotations"
    )
    with pytest.raises(annotations.AnnotationFlagsError, match="needs --annotations=FORMAT"):
        image_files.run(tiny_model_path, [str(tmp_path)], out_dir=str(tmp_path / "out"))
    with pytest.raises(annotations.AnnotationFlagsError, match="--draw_dir=.* lies inside --out"):
        annotations.check_flags("coco", str(tmp_path / "out"), str(tmp_path / "out" / "drawn"))


def test_predict_refuses_an_out_dir_holding_a_users_file_before_the_first_photo(
    tmp_path, tiny_model_path
):
    photos = tmp_path / "photos"
    make_photos(str(photos))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "labels.txt").write_text("the user's classes")
    out = io.StringIO()
    with pytest.raises(writers.LabelsOutputError) as error:
        image_files.run(
            tiny_model_path, [str(photos)], out=out, annotations="voc", out_dir=str(out_dir)
        )
    assert str(error.value).startswith(f"--out {out_dir} holds labels.txt, which was not written")
    assert out.getvalue() == ""  # nothing predicted
    assert os.listdir(out_dir) == ["labels.txt"]
    with pytest.raises(writers.LabelsOutputError, match="the folder of the photo"):
        image_files.run(
            tiny_model_path, [str(photos)], annotations="yolo", out_dir=str(photos / "labels")
        )


def _review_marks(fmt, out):
    """`{example id: review}` as the written files mark it."""
    if fmt == "voc":
        marks = {}
        for name in os.listdir(out / "Annotations"):
            obj = ET.parse(out / "Annotations" / name).getroot().find("object")
            attributes = {a.findtext("name"): a.findtext("value") for a in obj.iter("attribute")}
            marks[os.path.splitext(name)[0]] = attributes["review"] == "true"
        return marks
    if fmt == "coco":
        document = json.loads((out / "annotations" / "instances_train.json").read_text())
        return {
            os.path.splitext(image["file_name"])[0]: annotation["attributes"]["review"]
            for image, annotation in zip(document["images"], document["annotations"], strict=True)
        }
    tasks = json.loads((out / "tasks_train.json").read_text())
    return {task["data"]["example_id"]: task["data"]["review"] for task in tasks}
