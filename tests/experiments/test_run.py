"""Tests of experiments/run.py."""

from experiments import run as run_lib


def test_run_records_an_existing_run_without_retraining(tmp_path, monkeypatch):
    calls, recorded = [], []
    monkeypatch.setattr(run_lib.subprocess, "call", lambda command: calls.append(command) or 0)
    monkeypatch.setattr(
        run_lib.records, "record", lambda workdir, name, *what: recorded.append(name) or name
    )
    monkeypatch.setattr(run_lib, "WORK_ROOT", str(tmp_path))
    (tmp_path / "quickstart").mkdir()
    (tmp_path / "quickstart" / "train_summary.json").write_text("{}")
    assert run_lib.run_experiment("quickstart") and calls == [] and recorded == ["quickstart"]
    assert run_lib.run_experiment("frozen_alpha_025")
    assert "--config=experiments/frozen.py:alpha_025" in calls[0]
    # --rerun deletes the old work dir so the run starts fresh instead of resuming.
    assert run_lib.run_experiment("quickstart", rerun=True)
    assert not (tmp_path / "quickstart").exists()
    monkeypatch.setattr(run_lib.subprocess, "call", lambda command: 1)
    assert not run_lib.run_experiment("frozen_loss_l2") and recorded[-1] != "frozen_loss_l2"
