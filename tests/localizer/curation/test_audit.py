"""`python -m localizer.audit`: every example judged out of sample, written where a person reads."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest

import pipelines
from localizer.curation import audit, audit_report, out_of_sample
from localizer.curation import suspects as suspects_lib
from pipelines.sources import writers
from tests import fixtures
from tests.pipelines.test_orientation import UPRIGHT_BOX, tagged_voc_folder

TINY = (
    "model.backbone=tiny",
    "model.weights=none",
    "model.image_size=32",
    "model.head_units=32",
    "pipeline.batch_size=4",
    "frozen_epochs=1",
    "feature_passes=2",
)
ORIENTATIONS = (1, 6, 3, 8, 1, 6, 1, 8)
"""Phone photos stored turned, tagged, annotated upright (`tagged_voc_folder`)."""


def audit_command(*args):
    return fixtures.run_python(
        "-m", "localizer.audit", *args, *(f"--set={override}" for override in TINY), timeout=600
    )


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A photo folder with one class swapped, audited with 2 folds."""
    root = tmp_path_factory.mktemp("audit")
    data_dir = tagged_voc_folder(root / "photos", ORIENTATIONS)
    swapped = root / "photos" / "Annotations" / "photo2_o3.xml"
    swapped.write_text(swapped.read_text().replace("<name>cat</name>", "<name>dog</name>"))
    report_dir = str(root / "report")
    run = audit_command(
        "--dataset=voc_dir", f"--data_dir={data_dir}", f"--report_dir={report_dir}", "--folds=2"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return data_dir, report_dir, run


def read_rows(report_dir):
    with open(os.path.join(report_dir, audit_report.SUSPECTS_FILE), newline="") as f:
        return list(csv.DictReader(f))


def test_every_example_is_ranked_once_with_upright_pixel_boxes(audited):
    data_dir, report_dir, run = audited
    rows = read_rows(report_dir)
    assert sorted(row["id"] for row in rows) == sorted(
        f"photo{i}_o{o}" for i, o in enumerate(ORIENTATIONS)
    )
    assert [int(row["rank"]) for row in rows] == list(range(1, len(ORIENTATIONS) + 1))
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    for row in rows:
        given = [float(row[f"given_{k}"]) for k in ("xmin", "ymin", "xmax", "ymax")]
        np.testing.assert_allclose(given, UPRIGHT_BOX[1], atol=0.6)  # 48x64 upright, every one
        assert (int(row["image_width"]), int(row["image_height"])) == (64, 48)
        assert row["file"] == os.path.join(data_dir, "JPEGImages", f"{row['id']}.jpg")
        assert row["kind"] in suspects_lib.KINDS
    swapped = next(row for row in rows if row["id"] == "photo2_o3")
    assert swapped["given_class"] == "dog"
    assert "suspects among 8 examples" in run.stdout


def test_the_report_shows_the_first_rows_with_pictures(audited):
    _, report_dir, _ = audited
    page = open(os.path.join(report_dir, audit_report.REPORT_FILE), encoding="utf-8").read()
    rows = read_rows(report_dir)
    for row in rows[: audit_report.REPORT_ROWS]:
        assert row["id"] in page
        assert (
            os.path.getsize(
                os.path.join(
                    report_dir,
                    audit_report.THUMBNAILS,
                    audit_report.thumbnail_name({"rank": int(row["rank"])}),
                )
            )
            > 100
        )
    summary = json.load(open(os.path.join(report_dir, audit_report.SUMMARY_FILE)))
    assert summary["examples"] == 8 and summary["folds"] == 2
    assert sum(summary["kinds"].values()) == 8


def test_nothing_is_written_into_the_dataset(audited):
    data_dir, _, _ = audited
    assert sorted(os.listdir(data_dir)) == ["Annotations", "ImageSets", "JPEGImages", "labels.txt"]


def test_a_second_audit_replaces_its_own_files_but_never_a_users(audited, tmp_path):
    data_dir, report_dir, _ = audited
    audit_report.check_report_dir(report_dir, data_dir)  # the audit's own folder: reusable
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(audit_report.AuditDirError, match="did not write"):
        audit_report.check_report_dir(str(tmp_path), data_dir)
    with pytest.raises(audit_report.AuditDirError, match="inside the dataset"):
        audit_report.check_report_dir(os.path.join(data_dir, "report"), data_dir)


def test_mistakes_are_one_line(tmp_path):
    data_dir = fixtures.make_voc_folder(tmp_path / "voc")
    run = audit_command(
        "--dataset=voc_dir", f"--data_dir={data_dir}", f"--report_dir={tmp_path / 'r'}", "--folds=3"
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: the split has 4 usable examples")
    assert "Traceback" not in run.stderr


def test_folds_hold_every_class_evenly():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 3)
    folds = out_of_sample.assign_folds(labels, 3, seed=0)
    for label in range(3):
        counts = np.bincount(folds[labels == label], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1
    np.testing.assert_array_equal(folds, out_of_sample.assign_folds(labels, 3, seed=0))


def test_every_view_of_the_features_is_traced_to_its_example(tmp_path):
    """The augmented passes come shuffled: each row must still name its own example (or a fold
    model would train on a view of an example it judges). With augmentation off every view of an
    example is its plain view, so a row's features must equal its example's plain row."""
    import dataclasses

    from localizer import model as model_lib
    from localizer.training import config as config_lib
    from pipelines import augment

    data_dir = fixtures.make_voc_folder(tmp_path / "voc")
    source = pipelines.source_with_options("voc_dir", data_dir)
    config = config_lib.apply_overrides(config_lib.default_config(), TINY).resolve(
        source.class_names
    )
    pipeline = dataclasses.replace(config.input_pipeline(), augment=augment.AugmentConfig.off())
    backbone = model_lib.build_model(config.model).get_layer("backbone")
    features = out_of_sample.split_features(backbone, source, "train", pipeline, passes=3)
    assert sorted(features.ids) == ["img0", "img1", "img2", "img3"]
    assert len(features.example) == 4 + 2 * 4  # batches of 4: every view kept
    plain = features.features[features.example]
    np.testing.assert_allclose(features.features, plain, atol=1e-4)
    np.testing.assert_array_equal(features.labels, features.labels[features.example])


def test_near_duplicate_photos_are_judged_in_one_fold():
    """A copy with the same wrong label in another fold would teach the model judging it."""
    embeddings = np.eye(6, 8, dtype=np.float32)
    embeddings[3] = embeddings[0]
    embeddings[5] = 0.999 * embeddings[3] + 0.045 * np.eye(8)[7]  # a copy of the copy
    groups = out_of_sample.duplicate_groups(embeddings, 0.99)
    assert groups[0] == groups[3] == groups[5] and len(set(groups)) == 4
    labels = np.array([0, 1, 2, 0, 1, 0])
    for seed in range(5):
        folds = out_of_sample.assign_folds(labels, 3, seed, groups)
        assert folds[0] == folds[3] == folds[5]


def test_a_fold_model_never_trains_on_what_it_judges():
    example = np.array([0, 1, 2, 3, 2, 0, 1, 3])  # rows: a plain pass, then an augmented one
    assignment = np.array([0, 1, 0, 1])
    rows = out_of_sample.training_rows(example, assignment, fold=0)
    assert set(example[rows]) == {1, 3}
    assert rows.sum() == 4


def test_corrections_read_back_as_the_suggested_labels(tmp_path):
    """What the corrections file holds is what suspects.csv suggests, as the voc_dir source reads
    it."""
    from tests.localizer.curation.test_suspects import CENTRE, looks, result

    photos = tmp_path / "photos"
    os.makedirs(photos)
    paths = []
    for i in range(3):
        paths.append(str(photos / f"img{i}.png"))
        fixtures.write_image(paths[-1], fixtures.make_image(100, 100, [], seed=i))
    found = looks(
        given_boxes=[CENTRE, [0.0, 0.0, 0.2, 0.2], CENTRE],
        boxes=[CENTRE] * 3,
        probabilities=[[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]],
        labels=[0, 0, 0],
        quality=[0.9, 0.9, 0.9],
    )
    ranking = suspects_lib.rank(result(found), list(fixtures.CLASSES))
    files = {f"img{i}": paths[i] for i in range(3)}
    labels = audit_report.correction_labels(ranking, files)
    assert [writers.example_id(label) for label in labels] == ["img1", "img0"]  # box, class
    out = tmp_path / "corrections"
    writers.write_labels("voc", str(out), labels, list(fixtures.CLASSES))
    os.makedirs(out / "JPEGImages")
    for label in labels:
        os.link(label.image_path, out / "JPEGImages" / os.path.basename(label.image_path))
    source = pipelines.source_with_options("voc_dir", str(out))
    element = {e["id"].numpy().decode(): e for e in source.load("train")}
    for i, label in enumerate(labels):
        example = element[writers.example_id(label)]
        assert int(example["label"]) == ranking.suggested_labels[i]
        np.testing.assert_allclose(example["box"], ranking.suggested_boxes[i], atol=1e-3)
    assert int(element["img0"]["label"]) == 1  # the class the model gives
    np.testing.assert_allclose(element["img1"]["box"], CENTRE, atol=1e-3)  # the model's box


def test_a_csv_dataset_s_corrections_name_its_photos(tmp_path):
    """A CSV example's id is its file name; its corrections (a COCO file) name the photo once."""
    from tests.localizer.curation.test_suspects import CENTRE, looks, result

    found = looks(
        given_boxes=[CENTRE], boxes=[CENTRE], probabilities=[[0.05, 0.9, 0.05]], labels=[0]
    )
    found = dataclasses.replace(found, ids=np.array(["cat.jpg"]))
    ranking = suspects_lib.rank(result(found), list(fixtures.CLASSES))
    photos = {"cat.jpg": str(tmp_path / "images" / "cat.jpg")}
    written = audit_report.write_corrections(
        str(tmp_path / "report"), ranking, photos, list(fixtures.CLASSES), "csv", "train"
    )
    assert written == {"format": "coco", "count": 1}
    document = json.load(
        open(
            tmp_path / "report" / audit_report.CORRECTIONS / "annotations" / "instances_train.json"
        )
    )
    assert [image["file_name"] for image in document["images"]] == ["cat.jpg"]


def test_no_corrections_for_a_dataset_without_files():
    from tests.localizer.curation.test_suspects import CENTRE, looks, result

    found = looks(given_boxes=[CENTRE], boxes=[CENTRE], probabilities=[[0, 1, 0]], labels=[0])
    ranking = suspects_lib.rank(result(found), list(fixtures.CLASSES))
    assert (
        audit_report.write_corrections("unused", ranking, None, fixtures.CLASSES, "tfds", "x")
        is None
    )


def test_small_photos_are_drawn_large_enough_to_see():
    import io

    from PIL import Image

    png = audit_report.thumbnail(np.zeros([16, 12, 3], np.uint8), [1, 1, 8, 8], [2, 2, 9, 9], "x")
    assert min(Image.open(io.BytesIO(png)).size) >= audit_report.MIN_THUMBNAIL_SIDE * 12 // 16 - 12


def test_a_users_audit_json_does_not_open_a_folder(tmp_path):
    (tmp_path / "audit.json").write_text("{}")
    with pytest.raises(audit_report.AuditDirError, match="did not write"):
        audit_report.check_report_dir(str(tmp_path))
    audit_report.check_report_dir(str(tmp_path / "new"))
    audit_report.mark_report_dir(str(tmp_path / "new"))
    audit_report.check_report_dir(str(tmp_path / "new"))  # marked before the long part: ours


def test_too_few_folds_or_examples_are_refused():
    with pytest.raises(audit.AuditError, match="at least 2 folds"):
        audit.check_folds(1, 100)
    with pytest.raises(audit.AuditError, match="too few for 5 folds"):
        audit.check_folds(5, 9)
