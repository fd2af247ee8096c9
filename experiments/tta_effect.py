"""Effect of test-time augmentation (none, flip, multicrop; each without and with the zoomed refinement) on realmix val.

    python -m experiments.tta_effect --model=work/realmix_default/best.keras

Evaluates the same model with each mode (boxes compared in the original
images) and writes experiments/results/tta_effect.json plus a table.
"""

import json
import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "tta_effect.json")
KEYS = ("mean_iou", "macro_mean_iou", "localization_accuracy", "classification_accuracy")


def main(argv):
    del argv
    import pipelines
    from experiments.common import REALMIX_DIR
    from localizer.inference import evaluation, views
    from localizer import provenance
    from localizer.inference.predictor import Predictor

    predictor = Predictor(FLAGS.model)
    source = pipelines.get_source("voc_dir", data_dir=FLAGS.data_dir or REALMIX_DIR)
    rows = {}
    for refine in (False, True):
        for mode in views.TTA_MODES:
            name = f"{mode} + refine" if refine else mode
            start = time.perf_counter()
            summary = evaluation.evaluate(predictor, source, "val", mode, progress=False, refine=refine)[0]
            seconds = time.perf_counter() - start
            rows[name] = {k: summary[k] for k in KEYS}
            rows[name].update({f"iou_acc_{t}": v for t, v in summary["iou_accuracy"].items()})
            rows[name]["seconds"] = round(seconds, 1)
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores",
        "command": f"python -m experiments.tta_effect --model={FLAGS.model}", "split": "val", "modes": rows,
        "code": provenance.code_version(),
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    flags.DEFINE_string("model", None, "A .keras file or SavedModel folder trained on realmix.", required=True)
    flags.DEFINE_string("data_dir", None, "VOC folder (default: ../shared/data/realmix).")
    app.run(main)
