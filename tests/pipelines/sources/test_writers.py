"""Tests of pipelines/sources/writers.py: labels written in each format read back the same by the
project's own sources (Label Studio's by its documented percent units), upright for a turned
phone photo, and never over a file the writer did not write."""

import json
import os
import shutil
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import pipelines
from pipelines.sources import writers
from pipelines.sources.source import BOX, ID, LABEL
from tests import fixtures
from tests.pipelines.test_orientation import stored_pixels, tagged_jpeg

# (file name, upright height, width, class, upright pixel xmin, ymin, xmax, ymax, EXIF orientation)
PHOTOS = [
    ("a.png", 48, 64, "cat", (10, 8, 40, 36), None),
    ("b.jpg", 60, 80, "dog", (5, 12, 50, 40), None),
    ("c_turned.jpg", 48, 64, "plate", (6, 4, 30, 44), 6),  # stored 64 high, 48 wide, tagged 6
]


def make_photos(folder):
    """The photos of PHOTOS in `folder`; their labels (upright boxes), the second for review."""
    os.makedirs(folder, exist_ok=True)
    labels = []
    for i, (name, height, width, class_name, xyxy, orientation) in enumerate(PHOTOS):
        path = os.path.join(folder, name)
        upright = fixtures.make_image(height, width, [(class_name, xyxy)], seed=i)
        if orientation:
            with open(path, "wb") as f:
                f.write(tagged_jpeg(stored_pixels(upright, orientation), orientation))
        else:
            fixtures.write_image(path, upright)
        xmin, ymin, xmax, ymax = xyxy
        labels.append(
            writers.Label(
                image_path=path,
                height=height,
                width=width,
                label=fixtures.CLASSES.index(class_name),
                box=np.array([ymin / height, xmin / width, ymax / height, xmax / width]),
                score=0.9 - 0.1 * i,
                box_quality=0.8 - 0.3 * i,
                review=i == 1,
            )
        )
    return labels


def read_back(fmt, out, photos, split="train"):
    """`{id: (label, box)}` of the labels in `out` as the project's source reads them, the photos
    put where the format wants them (COCO reads them where they are, through image_dir)."""
    if fmt == "coco":
        source = pipelines.source_with_options("coco", out, image_dir=photos)
    else:
        image_dir = os.path.join(out, "JPEGImages" if fmt == "voc" else f"images/{split}")
        os.makedirs(image_dir, exist_ok=True)
        for name in os.listdir(photos):
            shutil.copy(os.path.join(photos, name), image_dir)
        source = pipelines.source_with_options("voc_dir" if fmt == "voc" else fmt, out)
    assert source.class_names == list(fixtures.CLASSES)
    index = source.index(split)
    return {
        example: (int(label), box)
        for example, label, box in zip(index[ID], index[LABEL], index[BOX], strict=True)
    }


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_each_format_reads_back_the_same_classes_and_upright_boxes(tmp_path, fmt):
    photos = str(tmp_path / "photos")
    labels = make_photos(photos)
    out = str(tmp_path / "out")
    written = writers.write_labels(fmt, out, labels, fixtures.CLASSES)
    assert written and all(os.path.isfile(path) for path in written)
    back = read_back(fmt, out, photos)
    assert sorted(back) == ["a", "b", "c_turned"]
    for label in labels:
        got_label, got_box = back[writers.example_id(label)]
        assert got_label == label.label
        np.testing.assert_allclose(got_box, label.box, atol=1e-3, err_msg=label.image_path)


def test_label_studio_tasks_hold_upright_percent_boxes_and_match_their_config(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(writers.LABEL_STUDIO_ROOT_ENV, str(tmp_path))
    photos = str(tmp_path / "photos")
    labels = make_photos(photos)
    out = tmp_path / "ls"
    writers.write_labels("labelstudio", str(out), labels, fixtures.CLASSES)
    tasks = json.loads((out / "tasks_train.json").read_text())
    config = ET.fromstring((out / writers.LABEL_STUDIO_CONFIG).read_text())
    image = config.find("Image")
    rectangles = config.find("RectangleLabels")
    assert [label.get("value") for label in rectangles] == list(fixtures.CLASSES)
    assert rectangles.get("toName") == image.get("name")
    assert len(tasks) == len(labels)
    for task, label in zip(tasks, labels, strict=True):
        url = task["data"][image.get("value").lstrip("$")]
        assert url.startswith("/data/local-files/?d=")
        (relative,) = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["d"]
        assert os.path.join(str(tmp_path), relative) == os.path.abspath(label.image_path)
        (prediction,) = task["predictions"]
        assert prediction["model_version"] and prediction["score"] == pytest.approx(label.score)
        (result,) = prediction["result"]
        assert result["type"] == "rectanglelabels"
        assert result["from_name"] == rectangles.get("name")
        assert result["to_name"] == image.get("name")
        # Label Studio's units: x, y, width, height in percent of original_width/original_height.
        assert (result["original_height"], result["original_width"]) == (label.height, label.width)
        value = result["value"]
        box = [
            value["y"] / 100,
            value["x"] / 100,
            (value["y"] + value["height"]) / 100,
            (value["x"] + value["width"]) / 100,
        ]
        np.testing.assert_allclose(box, label.box, atol=1e-3)
        assert value["rectanglelabels"] == [fixtures.CLASSES[label.label]]
        assert task["data"]["review"] is label.review
        assert task["data"]["box_quality"] == pytest.approx(label.box_quality)


def test_review_is_marked_where_the_format_allows_and_difficult_never(tmp_path):
    photos = str(tmp_path / "photos")
    labels = make_photos(photos)
    for fmt in ("voc", "coco", "yolo"):
        writers.write_labels(fmt, str(tmp_path / fmt), labels, fixtures.CLASSES)
    for label in labels:
        example = writers.example_id(label)
        obj = ET.parse(tmp_path / "voc" / "Annotations" / f"{example}.xml").getroot().find("object")
        assert obj.findtext("difficult") == "0" and obj.findtext("pose") == "Unspecified"
        attributes = obj.find("attributes").iter("attribute")
        attributes = {a.findtext("name"): a.findtext("value") for a in attributes}
        assert attributes["review"] == str(label.review).lower()
        assert float(attributes["box_quality"]) == pytest.approx(label.box_quality)
        line = (tmp_path / "yolo" / "labels" / "train" / f"{example}.txt").read_text()
        assert len(line.split()) == 5  # YOLO: class cx cy w h, no room for a flag
    coco = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    for annotation, label in zip(coco["annotations"], labels, strict=True):
        assert annotation["score"] == pytest.approx(label.score)
        assert annotation["attributes"]["review"] is label.review
        assert annotation["iscrowd"] == 0 and annotation["segmentation"] == []


def test_a_rewrite_replaces_its_own_files_and_keeps_other_splits(tmp_path):
    photos = str(tmp_path / "photos")
    labels = make_photos(photos)
    out = tmp_path / "yolo"
    writers.write_labels("yolo", str(out), labels, fixtures.CLASSES)
    writers.write_labels("yolo", str(out), labels[:1], fixtures.CLASSES, split="val")
    writers.write_labels("yolo", str(out), labels[1:], fixtures.CLASSES)  # a.png left train
    assert sorted(os.listdir(out / "labels" / "train")) == ["b.txt", "c_turned.txt"]
    assert os.listdir(out / "labels" / "val") == ["a.txt"]
    data_yaml = (out / "data.yaml").read_text()
    assert "train: images/train\n" in data_yaml and "val: images/val\n" in data_yaml
    os.makedirs(out / "images" / "val")
    shutil.copy(labels[0].image_path, out / "images" / "val")
    assert sorted(read_back("yolo", str(out), photos)) == ["b", "c_turned"]
    assert list(read_back("yolo", str(out), photos, split="val")) == ["a"]


def _tree(folder):
    """`{relative path: content}` of every file under `folder`."""
    tree = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                tree[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return tree


def test_never_writes_over_a_users_file_or_an_edited_label(tmp_path):
    photos = str(tmp_path / "photos")
    labels = make_photos(photos)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's notes")
    with pytest.raises(writers.LabelsOutputError) as error:
        writers.write_labels("voc", str(out), labels, fixtures.CLASSES)
    assert str(error.value) == (
        f"out dir {out} holds notes.txt, which was not written there by localizer; labels go "
        "only into a new folder or over their own unchanged files, choose another out dir"
    )
    assert _tree(out) == {"notes.txt": b"the user's notes"}
    (out / "notes.txt").unlink()
    writers.write_labels("voc", str(out), labels, fixtures.CLASSES)
    edited = out / "Annotations" / "a.xml"
    edited.write_text(edited.read_text().replace("<xmin>10</xmin>", "<xmin>12</xmin>"))  # LabelImg
    before = _tree(out)
    with pytest.raises(writers.LabelsOutputError, match="Annotations/a.xml, which was changed"):
        writers.write_labels("voc", str(out), labels, fixtures.CLASSES)
    with pytest.raises(writers.LabelsOutputError, match="holds voc labels .*: another format"):
        writers.write_labels("yolo", str(out), labels, fixtures.CLASSES)
    assert _tree(out) == before
    (out / "JPEGImages").mkdir()  # the photos moved in, as for voc_dir
    shutil.copy(labels[0].image_path, out / "JPEGImages")
    edited.write_text(edited.read_text().replace("<xmin>12</xmin>", "<xmin>10</xmin>"))
    with pytest.raises(writers.LabelsOutputError, match="holds JPEGImages/a.png, which was not"):
        writers.write_labels("voc", str(out), labels, fixtures.CLASSES)


def test_labels_never_go_among_the_photos(tmp_path):
    photos = tmp_path / "photos"
    labels = make_photos(str(photos))
    for out, verb in ((photos, "is"), (photos / "labels", "lies inside")):
        with pytest.raises(writers.LabelsOutputError) as error:
            writers.write_labels("coco", str(out), labels, fixtures.CLASSES)
        message = str(error.value)
        assert message.startswith(f"out dir {out} {verb} {photos}, the folder of the photo")
    assert sorted(os.listdir(photos)) == sorted(name for name, *_ in PHOTOS)


def test_labels_a_format_cannot_hold_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    photos = str(tmp_path / "photos")
    labels = make_photos(photos)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(labels[0].image_path, other)
    twin = writers.Label(**{**labels[0].__dict__, "image_path": str(other / "a.png")})
    with pytest.raises(writers.LabelsFormatError, match="would share the id 'a'"):
        writers.write_labels("yolo", str(tmp_path / "out"), [labels[0], twin], fixtures.CLASSES)
    spaced = writers.Label(**{**labels[0].__dict__, "id": "my photo"})
    with pytest.raises(writers.LabelsFormatError, match="white space"):
        writers.write_labels("voc", str(tmp_path / "out"), [spaced], fixtures.CLASSES)
    writers.check_output("coco", str(tmp_path / "out2"), [spaced.image_path], fixtures.CLASSES)
    monkeypatch.setenv(writers.LABEL_STUDIO_ROOT_ENV, str(other))
    outside = f"not under {writers.LABEL_STUDIO_ROOT_ENV}"
    with pytest.raises(writers.LabelsFormatError, match=outside):
        writers.write_labels("labelstudio", str(tmp_path / "out"), labels, fixtures.CLASSES)
    assert not os.path.exists(tmp_path / "out")
