"""Tests of localizer/inference/report.py: where reports go."""

import json
import os

import pytest

from localizer.inference import report
from tests.localizer.inference.test_predictor import METADATA, _export_with_metadata


def test_report_dir_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "report.md").write_text("my notes")
    with pytest.raises(ValueError, match="not from an earlier report"):
        report.check_report_dir(str(tmp_path))
    (tmp_path / "metrics.json").write_text(
        json.dumps({"model": "m", "split": "val", "num_examples": 3})
    )
    report.check_report_dir(str(tmp_path))  # an earlier report's files are ours to replace


def test_outputs_never_go_inside_the_dataset(tmp_path):
    from pipelines import cli, show

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="inside the dataset"):
        report.check_report_dir(str(data / "report"), str(data))
    with pytest.raises(cli.UserError, match="inside the dataset"):
        show.check_output(str(data / "images" / "grid.png"), str(data))
    show.check_output(str(tmp_path / "grid.png"), str(data))


def test_reports_on_exports_go_to_the_reports_area_not_into_the_export(tmp_path, monkeypatch):
    """TF Serving watches the export's base path: evaluate's default report dir stays out of it."""
    from localizer import evaluate
    from pipelines import files

    monkeypatch.chdir(tmp_path)
    version_dir = _export_with_metadata(tmp_path / "models" / "localizer", json.dumps(METADATA))
    (version_dir / "saved_model.pb").write_bytes(b"")
    (version_dir / "assets.extra" / "localizer_int8.tflite").write_bytes(b"TFL3")
    expected = {
        "models/localizer/1": os.path.join("reports", "localizer-1-val"),
        "models/localizer/1/": os.path.join("reports", "localizer-1-val"),
        str(version_dir / "assets.extra" / "localizer_int8.tflite"): os.path.join(
            "reports", "localizer-1-localizer_int8-val"
        ),
    }
    for model, report_dir in expected.items():
        assert evaluate.default_report_dir(model, "val") == report_dir
        assert not files.inside(report_dir, tmp_path / "models")
    keras_model = os.path.join(
        "work", "run", "best.keras"
    )  # a .keras file's report stays in its work dir
    assert evaluate.default_report_dir(keras_model, "val") == str(
        tmp_path / "work" / "run" / "report-val"
    )
