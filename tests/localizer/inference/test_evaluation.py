"""Tests of localizer/inference/evaluation.py: evaluate's figures, plots and refinement."""

import json

import numpy as np
import pytest

import pipelines
from localizer.inference import evaluation, report
from localizer.inference.predictor import Predictor
from pipelines import boxes as box_lib
from pipelines import input_pipeline
from tests import fixtures


@pytest.mark.parametrize("tta", ["none", "multicrop"])
def test_evaluate_writes_every_key_and_plot(tmp_path, voc_folder, per_class_model_path, tta):
    predictor = Predictor(per_class_model_path)
    source = pipelines.get_source("voc_dir", data_dir=voc_folder)
    result = evaluation.evaluate(predictor, source, "train", tta, batch_size=3)
    paths = report.write_report(result, predictor.class_names, str(tmp_path / "report"))
    best, worst, ious, confidences = result.best, result.worst, result.ious, result.confidences
    metrics = json.loads(open(paths["metrics"]).read())
    assert fixtures.SUMMARY_KEYS <= set(metrics)
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


def test_class_mismatch_is_refused(tmp_path, per_class_model_path):
    source = pipelines.get_source("synthetic", sizes={"val": 4})
    with pytest.raises(ValueError, match="classes"):
        evaluation.evaluate(Predictor(per_class_model_path), source, "val")


def test_evaluate_with_refinement(voc_folder, per_class_model_path):
    predictor = Predictor(per_class_model_path)
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
