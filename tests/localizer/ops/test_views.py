"""Inference views, box merging, and the evaluation report."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from localizer import model as model_lib
from localizer.inference import evaluation, image_files, report
from localizer.inference.predictor import Predictor
from localizer.ops import views
from pipelines import boxes as box_lib
from pipelines import input_pipeline, render
from tests import fixtures

REQUIRED_KEYS = {
    "num_examples",
    "classification_accuracy",
    "mean_iou",
    "median_iou",
    "macro_mean_iou",
    "iou_accuracy",
    "localization_accuracy",
    "macro_localization_accuracy",
    "top5_localization_error",
    "per_class",
}


def test_multicrop_merge_hand_made_case():
    # Four views: the whole image (view 0), a crop that agrees, a crop that
    # agrees less confidently, and a corner crop that cut the object and
    # predicts a truncated box with high confidence.
    boxes = tf.constant(
        [
            [
                [0.2, 0.2, 0.6, 0.6],
                [0.22, 0.2, 0.62, 0.6],
                [0.2, 0.24, 0.6, 0.64],
                [0.4, 0.4, 0.6, 0.6],
            ]
        ]
    )
    probabilities = tf.constant([[[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1]]])
    box, merged, _, _ = views.merge_views(boxes, probabilities)
    # Mean probabilities pick class 0 (0.65). The truncated box overlaps view 0
    # with IoU 0.25 < 0.5 and is left out; the others weigh 0.8, 0.6, 0.3.
    expected = (0.8 * boxes[0, 0] + 0.6 * boxes[0, 1] + 0.3 * boxes[0, 2]) / 1.7
    np.testing.assert_allclose(box[0], expected, atol=1e-6)
    np.testing.assert_allclose(merged[0], [0.65, 0.35], atol=1e-6)
    # Without the agreement test the truncated box would pull the result.
    everything = views.merge_views(boxes, probabilities, agreement_iou=0.0).boxes
    assert not np.allclose(everything[0], expected, atol=1e-3)


def test_per_class_boxes_merge_per_class():
    boxes = tf.constant([[[0.2, 0.2, 0.6, 0.6], [0.2, 0.2, 0.6, 0.6]]])
    probabilities = tf.constant([[[0.9, 0.1], [0.5, 0.5]]])
    class_boxes = tf.constant(
        [
            [
                [[0.2, 0.2, 0.6, 0.6], [0.0, 0.0, 0.5, 0.5]],
                [[0.2, 0.2, 0.6, 0.6], [0.0, 0.0, 0.6, 0.5]],
            ]
        ]
    )
    merged = views.merge_views(boxes, probabilities, class_boxes).class_boxes
    # Class 1: views weigh 0.1 and 0.5 (both agree with view 0's class-1 box).
    np.testing.assert_allclose(
        merged[0, 1], [0.0, 0.0, (0.1 * 0.5 + 0.5 * 0.6) / 0.6, 0.5], atol=1e-6
    )
    np.testing.assert_allclose(merged[0, 0], [0.2, 0.2, 0.6, 0.6], atol=1e-6)


@pytest.mark.parametrize("mode", views.TTA_MODES)
@pytest.mark.parametrize("resize_mode", ["letterbox", "stretch"])
def test_views_map_back_exactly(mode, resize_mode):
    """A perfect prediction in every view's frame maps back to the true box."""
    image = tf.zeros((60, 90, 3), tf.uint8)
    true_box = tf.constant([0.3, 0.4, 0.6, 0.7])
    inputs, windows, mirrored = views.render_views(image, 48, resize_mode, mode)
    assert inputs.shape[1:] == (48, 48, 3) and inputs.shape[0] == len(views.view_crops(mode))
    in_view = box_lib.reframe(true_box, windows)
    in_view = tf.where(mirrored[:, None], box_lib.flip_left_right(in_view), in_view)
    back = views.views_to_original(in_view[None], windows[None], mirrored[None])
    # Crops that cut the object give a clipped box; the whole-image views are exact.
    np.testing.assert_allclose(back[0, 0], true_box, atol=1e-5)
    if mode == "flip":
        np.testing.assert_allclose(back[0, 1], true_box, atol=1e-5)


@pytest.fixture
def tiny_model_path(tmp_path):
    config = model_lib.ModelConfig(
        num_classes=3,
        class_names=fixtures.CLASSES,
        backbone="tiny",
        weights="none",
        image_size=32,
        attach="flattened",
        regression="per_class",  # per-class boxes exercise top-5 localization
    )
    path = str(tmp_path / "tiny.keras")
    model = model_lib.build_model(config)
    # Its last layer is zero-initialized: random weights make the box quality depend on the image.
    layer = model.get_layer("heads").get_layer("quality_dense")
    kernel, bias = layer.get_weights()
    layer.set_weights(
        [np.random.default_rng(0).normal(0.0, 1.0, kernel.shape).astype("float32"), bias]
    )
    model.save(path)
    return path


@pytest.mark.parametrize("tta", ["none", "multicrop"])
def test_evaluate_writes_every_key_and_plot(tmp_path, voc_folder, tiny_model_path, tta):
    predictor = Predictor(tiny_model_path)
    source = pipelines.get_source("voc_dir", data_dir=voc_folder)
    result = evaluation.evaluate(predictor, source, "train", tta, batch_size=3)
    paths = report.write_report(result, predictor.class_names, str(tmp_path / "report"))
    best, worst, ious, confidences = result.best, result.worst, result.ious, result.confidences
    metrics = json.loads(open(paths["metrics"]).read())
    assert REQUIRED_KEYS <= set(metrics)
    assert metrics["num_examples"] == len(fixtures.VOC_EXAMPLES["train"])
    assert set(metrics["iou_accuracy"]) == {"0.5", "0.7", "0.75", "0.9"}
    assert set(metrics["per_class"]) == set(fixtures.CLASSES)
    # The class probability is always ranked against the IoUs, the model's box quality when it has
    # one.
    assert set(confidences) == {"score", "box_quality"}
    assert {"box_quality_auroc", "box_quality_spearman", "box_quality_risk_coverage"} <= set(
        metrics
    )
    assert metrics["score_spearman"] is None or -1.0 <= metrics["score_spearman"] <= 1.0
    assert [row["coverage"] for row in metrics["score_risk_coverage"]] == [1.0, 0.9, 0.8, 0.5]
    assert metrics["score_risk_coverage"][0]["mean_iou"] == pytest.approx(
        metrics["mean_iou"], abs=1e-6
    )
    assert "Confidence `score`" in open(paths["report"]).read()
    assert "Confidence `box_quality`" in open(paths["report"]).read()
    # What became of each image: one kind each, and every image in one size bin.
    assert sum(metrics["errors"]["kinds"].values()) == pytest.approx(1.0)
    assert metrics["errors"]["kinds"]["localized"] == pytest.approx(
        metrics["localization_accuracy"]
    )
    assert (
        sum(s["count"] for s in metrics["errors"]["by_object_size"].values())
        == metrics["num_examples"]
    )
    assert "What became of the images" in open(paths["report"]).read()
    for name in ("iou_histogram", "per_class", "confusion_matrix", "examples", "risk_coverage"):
        assert open(paths[name], "rb").read(8) == b"\x89PNG\r\n\x1a\n", name
    assert "| mean_iou |" in open(paths["report"]).read()
    # Boxes were compared in the original image: each example's true box is
    # the fixture's largest object in its own pixels, and its IoU is that of
    # the two boxes shown.
    truth = {}
    for example_id, height, width, objects, _ in fixtures.VOC_EXAMPLES["train"]:
        name, (xmin, ymin, xmax, ymax) = max(
            objects, key=lambda o: (o[1][2] - o[1][0]) * (o[1][3] - o[1][1])
        )
        truth[example_id] = [ymin / height, xmin / width, ymax / height, xmax / width]
    for record in best + worst:
        np.testing.assert_allclose(record["true_box"], truth[record["id"]], atol=1e-6)
        expected_iou = box_lib.iou(record["true_box"][None], record["box"][None]).numpy()[0]
        assert record["iou"] == pytest.approx(expected_iou, abs=1e-6)
    assert [r["iou"] for r in best] == sorted((r["iou"] for r in best), reverse=True)
    assert metrics["mean_iou"] == pytest.approx(float(np.mean(ious)), abs=1e-6)


def test_class_mismatch_is_refused(tmp_path, tiny_model_path):
    source = pipelines.get_source("synthetic", sizes={"val": 4})
    with pytest.raises(ValueError, match="classes"):
        evaluation.evaluate(Predictor(tiny_model_path), source, "val")


def test_predict_cli_lines_errors_and_exit_code(tmp_path, voc_folder, tiny_model_path):
    import subprocess
    import sys

    images = os.path.join(voc_folder, "JPEGImages")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localizer.predict",
            f"--model={tiny_model_path}",
            f"--draw_dir={tmp_path / 'drawn'}",
            images,
            str(broken),
            str(tmp_path / "missing.png"),
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    good = [l for l in lines if "error" not in l]
    bad = {os.path.basename(l["file"]) for l in lines if "error" in l}
    assert len(good) == 6 and bad == {"broken.jpg", "missing.png"}
    record = good[0]
    assert record["class"] in fixtures.CLASSES and len(record["top5"]) == 3
    height, width = record["image_size"]
    xmin, ymin, xmax, ymax = record["box_pixels_xyxy"]
    assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
    assert len(os.listdir(tmp_path / "drawn")) == 6


def test_zoom_window_is_square_in_pixels_inside_the_image_and_around_the_box():
    size = tf.constant([200, 400])
    # A 20 x 20 px box centred at (100, 200): window side = max(2 * 20, 0.3 * 400) = 120 px.
    window = render.zoom_window([0.45, 0.475, 0.55, 0.525], size).numpy()
    np.testing.assert_allclose((window[2] - window[0]) * 200, 120, atol=1e-3)
    np.testing.assert_allclose((window[3] - window[1]) * 400, 120, atol=1e-3)
    np.testing.assert_allclose(
        [(window[0] + window[2]) / 2, (window[1] + window[3]) / 2], [0.5, 0.5], atol=1e-6
    )
    # Near a corner: shifted inside the image, still containing the box.
    corner_box = np.array([0.0, 0.0, 0.1, 0.05])
    window = render.zoom_window(corner_box, size).numpy()
    assert window[0] == 0.0 and window[1] == 0.0 and np.all(window[2:] >= corner_box[2:])
    # A box wider than the image's height: the window spans the height, centred vertically.
    window = render.zoom_window([0.1, 0.1, 0.9, 0.9], size).numpy()
    np.testing.assert_allclose([window[1], window[3]], [0.0, 1.0], atol=1e-6)
    assert window[0] < 0.0 and window[2] > 1.0 and abs(window[0] + window[2] - 1.0) < 1e-6


def test_refinement_view_maps_a_perfect_prediction_back_to_the_true_box():
    image = tf.zeros((60, 90, 3), tf.uint8)
    true_box = tf.constant([[0.3, 0.4, 0.4, 0.5]])
    inputs, windows = views.render_zoom_views(
        image[None], tf.constant([[60, 90]]), true_box, 48, "letterbox"
    )
    assert inputs.shape == (1, 48, 48, 3)
    back = render.to_original_frame(box_lib.reframe(true_box, windows), windows)
    np.testing.assert_allclose(back, true_box, atol=1e-5)


REFINE_FIRST = tf.constant([[0.2, 0.2, 0.6, 0.6], [0.2, 0.2, 0.6, 0.6], [0.2, 0.2, 0.6, 0.6]])
REFINE_ZOOM = tf.constant(
    [[0.22, 0.2, 0.6, 0.62], [0.7, 0.7, 0.9, 0.9], [0.7, 0.7, 0.9, 0.9]]
)  # agree, not, not


def test_refinement_without_qualities_keeps_the_first_box_when_the_looks_disagree():
    probabilities = tf.constant([[0.8, 0.2], [0.6, 0.4], [0.5, 0.5]])
    zoom_probabilities = tf.constant([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    first, zoom = (
        views.Look(REFINE_FIRST, probabilities),
        views.Look(REFINE_ZOOM, zoom_probabilities),
    )
    for rule in views.REFINE_RULES:  # no qualities: agreement, whatever the rule
        boxes, merged, class_boxes, quality = views.merge_refinement(first, zoom, rule=rule)
        np.testing.assert_allclose(
            boxes, [REFINE_ZOOM[0], REFINE_FIRST[1], REFINE_FIRST[2]], atol=1e-6
        )
        np.testing.assert_allclose(merged, [[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]], atol=1e-6)
        assert quality is None and class_boxes is None
    with pytest.raises(ValueError, match="refinement rule"):
        views.merge_refinement(first, zoom, rule="vote")


def test_refinement_by_quality_blends_agreeing_looks_and_picks_the_better_rated_otherwise():
    probabilities = tf.fill([3, 2], 0.5)
    first_quality, zoom_quality = tf.constant([0.3, 0.4, 0.4]), tf.constant([0.9, 0.1, 0.8])
    first = views.Look(REFINE_FIRST, probabilities, quality=first_quality)
    zoom = views.Look(REFINE_ZOOM, probabilities, quality=zoom_quality)
    boxes, _, _, quality = views.merge_refinement(first, zoom, rule=views.BY_QUALITY)
    w = 0.9 / (0.9 + 0.3)  # agreeing: weighted by quality
    np.testing.assert_allclose(
        boxes,
        [w * REFINE_ZOOM[0] + (1 - w) * REFINE_FIRST[0], REFINE_FIRST[1], REFINE_ZOOM[2]],
        atol=1e-6,
    )
    # Disagreeing looks: the better-rated box, with the lower of the two qualities.
    np.testing.assert_allclose(quality, [w * 0.9 + (1 - w) * 0.3, 0.1, 0.4], atol=1e-6)
    # The agreement rule with qualities: the kept look's quality.
    boxes, _, _, quality = views.merge_refinement(first, zoom, rule=views.AGREEMENT)
    np.testing.assert_allclose(boxes, [REFINE_ZOOM[0], REFINE_FIRST[1], REFINE_FIRST[2]], atol=1e-6)
    np.testing.assert_allclose(quality, [0.9, 0.4, 0.4], atol=1e-6)


def test_evaluate_with_refinement(voc_folder, tiny_model_path):
    predictor = Predictor(tiny_model_path)
    source = pipelines.get_source("voc_dir", data_dir=voc_folder)
    result = evaluation.evaluate(predictor, source, "train", "flip", batch_size=2, refine=True)
    summary, ious, confidences = result.summary, result.ious, result.confidences
    assert summary["num_examples"] == len(fixtures.VOC_EXAMPLES["train"])
    # Batched evaluation gives what the predictor gives image by image.
    one_by_one, qualities = [], []
    for features in input_pipeline.decoded(source, "train"):
        box, _, quality = predictor.predict_image(
            features[pipelines.IMAGE], tta="flip", refine=True
        )
        one_by_one.append(box_lib.iou(features[pipelines.BOX][None], box[None]).numpy()[0])
        qualities.append(quality)
    np.testing.assert_allclose(ious, one_by_one, atol=1e-5)
    np.testing.assert_allclose(confidences["box_quality"], qualities, atol=1e-5)


def test_box_quality_follows_the_box_through_views_and_refinement():
    # Three views: 0 and 1 agree (IoU 1), 2 does not; view weights = probability of the merged class
    # (0).
    boxes = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    probabilities = tf.constant([[[0.9, 0.1], [0.3, 0.7], [1.0, 0.0]]])
    quality = tf.constant([[0.8, 0.2, 0.0]])
    merged = views.merge_view_qualities(boxes, probabilities, quality).numpy()
    np.testing.assert_allclose(merged, [(0.9 * 0.8 + 0.3 * 0.2) / (0.9 + 0.3)], atol=1e-6)
    one_view = views.merge_view_qualities(
        boxes[:, :1], probabilities[:, :1], quality[:, :1]
    ).numpy()
    np.testing.assert_allclose(one_view, [0.8], atol=1e-6)


def _predict_records(model_path, voc_folder, **kwargs):
    import io

    out = io.StringIO()
    failures = image_files.run(
        model_path, [os.path.join(voc_folder, "JPEGImages")], out=out, **kwargs
    )
    assert failures == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_predict_gives_box_quality_and_marks_unsure_boxes(tmp_path, voc_folder, tiny_model_path):
    records = _predict_records(tiny_model_path, voc_folder)
    assert records and all(0.0 <= r["box_quality"] <= 1.0 and "unsure" not in r for r in records)
    # A threshold halfway between two of the (4-decimal) qualities, so rounding cannot decide a
    # side.
    qualities = sorted({r["box_quality"] for r in records})
    middle = len(qualities) // 2
    cut = (
        (qualities[middle - 1] + qualities[middle]) / 2
        if len(qualities) > 1
        else qualities[0] + 0.01
    )
    marked = _predict_records(
        tiny_model_path, voc_folder, min_box_quality=cut, draw_dir=str(tmp_path / "d")
    )
    assert [r.get("unsure", False) for r in marked] == [r["box_quality"] < cut for r in marked]
    assert any(r.get("unsure") for r in marked)
    assert len(os.listdir(tmp_path / "d")) == len(records)
    with pytest.raises(ValueError, match="min_box_quality=1.5 is not in"):
        _predict_records(tiny_model_path, voc_folder, min_box_quality=1.5)


def test_min_box_quality_is_refused_for_a_model_without_box_quality(tmp_path, voc_folder):
    config = model_lib.ModelConfig(
        num_classes=3,
        class_names=fixtures.CLASSES,
        backbone="tiny",
        weights="none",
        image_size=32,
        box_quality=False,
    )
    path = str(tmp_path / "old.keras")
    model_lib.build_model(config).save(path)
    assert all("box_quality" not in r for r in _predict_records(path, voc_folder))
    with pytest.raises(ValueError, match="has no box_quality output"):
        _predict_records(path, voc_folder, min_box_quality=0.5)
