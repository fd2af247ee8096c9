"""Effect of test-time augmentation (none, flip, multicrop; each without and with the zoomed
refinement) on realmix.

    python -m experiments.tta_effect --model=work/realmix_default/best.keras [--split=train]

Evaluates the same model with each mode (boxes compared in the original
images) and, for a model with a box-quality head, the refinement with each
rule of merging the two looks (`localizer.ops.views.REFINE_RULES`);
writes experiments/results/tta_effect.json (tta_effect_<split>.json for
another split) plus a table.
"""

import json
import os
import time

from absl import app, flags

from localizer.ops.views import TTA_MODES

FLAGS = flags.FLAGS
KEYS = ("mean_iou", "macro_mean_iou", "localization_accuracy", "classification_accuracy")
QUALITY_KEYS = ("box_quality_auroc", "box_quality_spearman")  # models with a box-quality head


def main(argv):
    del argv
    import pipelines
    from experiments import results
    from experiments.common import REALMIX_DIR
    from localizer import provenance
    from localizer.inference import evaluation
    from localizer.inference.predictor import Predictor
    from localizer.ops import views

    predictor = Predictor(FLAGS.model)
    source = pipelines.get_source("voc_dir", data_dir=FLAGS.data_dir or REALMIX_DIR)
    # (row name, mode, refine, rule): every mode plain, then refined by the default rule, then by
    # the others.
    other_rules = (
        [r for r in views.REFINE_RULES if r != views.REFINE_RULE]
        if predictor.has_box_quality
        else []
    )
    modes = FLAGS.modes
    settings = [(mode, mode, False, views.REFINE_RULE) for mode in modes]
    settings += [(f"{mode} + refine", mode, True, views.REFINE_RULE) for mode in modes]
    settings += [
        (f"{mode} + refine ({rule} rule)", mode, True, rule)
        for rule in other_rules
        for mode in modes
    ]
    rows = {}
    for name, mode, refine, rule in settings:
        predictor.refine_rule = rule
        start = time.perf_counter()
        summary = evaluation.evaluate(
            predictor, source, FLAGS.split, mode, progress=False, refine=refine
        ).summary
        seconds = time.perf_counter() - start
        rows[name] = {k: summary[k] for k in KEYS + QUALITY_KEYS if k in summary}
        rows[name].update({f"iou_acc_{t}": v for t, v in summary["iou_accuracy"].items()})
        rows[name]["seconds"] = round(seconds, 1)
    extra_flags = "" if FLAGS.split == "val" else f" --split={FLAGS.split}"
    if list(modes) != list(views.TTA_MODES):
        extra_flags += "".join(f" --modes={mode}" for mode in modes)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores",
        "command": f"python -m experiments.tta_effect --model={FLAGS.model}{extra_flags}",
        "split": FLAGS.split,
        "refine_rule": views.REFINE_RULE if predictor.has_box_quality else views.AGREEMENT,
        "modes": rows,
        "code": provenance.code_version(),
    }
    path = results.tta_path(FLAGS.split)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    flags.DEFINE_string(
        "model", None, "A .keras file or SavedModel folder trained on realmix.", required=True
    )
    flags.DEFINE_string("data_dir", None, "VOC folder (default: ../shared/data/realmix).")
    flags.DEFINE_string("split", "val", "The split measured (train: the one rules are chosen on).")
    flags.DEFINE_multi_enum(
        "modes", list(TTA_MODES), list(TTA_MODES), "Test-time modes measured (default: all)."
    )
    app.run(main)
