"""Find label errors: `python -m localizer.audit`.

    python -m localizer.audit --dataset=voc_dir --data_dir=/data/my_voc_folder \
        [--split=train] --report_dir=reports/audit

Every example of the split is judged by a model that never trained on it
(k-fold: `--folds` models, each trained on the others' frozen backbone
features as the default recipe's frozen stage trains) and ranked by how
likely its label is wrong: the class (the given class improbable), the box
(elsewhere, too loose, too tight, off) or a near-duplicate photo given another
class. The report dir receives suspects.csv (every example, most suspect first,
pixel boxes of the upright photo), report.html (the first 50 with pictures)
and corrections/ (the suspects' suggested labels in the dataset's own format,
to review and copy in). Nothing is written into the dataset.

Flags and `main` only: the work is `localizer.curation.audit`.
"""

import os

from absl import flags

from localizer.curation import audit, audit_report, suspects
from pipelines import cli, dataset_flags

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(
            f"unexpected argument {argv[1]!r}; every option is a --flag (see --helpshort)"
        )
    config = audit.default_config(FLAGS.set)
    source = dataset_flags.source_from_flags(FLAGS)
    summary = audit.audit(
        config,
        source,
        FLAGS.split,
        FLAGS.report_dir,
        FLAGS.dataset,
        folds=FLAGS.folds,
        data_dir=FLAGS.data_dir,
    )
    kinds = ", ".join(
        f"{n} {kind}" for kind, n in sorted(summary["kinds"].items()) if kind != suspects.NONE
    )
    print(
        f"{summary['suspects']} suspects among {summary['examples']} examples ({kinds}) in "
        f"{summary['seconds']:.0f} s."
    )
    for name in (audit_report.SUSPECTS_FILE, audit_report.REPORT_FILE):
        print(f"{name}: {os.path.join(FLAGS.report_dir, name)}")
    corrections = summary["corrections"]
    if corrections and corrections["count"]:
        print(
            f"Corrections ({corrections['format']}, {corrections['count']} labels to review): "
            f"{os.path.join(FLAGS.report_dir, audit_report.CORRECTIONS)}"
        )


def define_flags():
    dataset_flags.define_dataset_flags(default_split="train")
    flags.DEFINE_string(
        "report_dir", None, "Where suspects.csv, report.html and corrections/ go.", required=True
    )
    flags.DEFINE_integer(
        "folds", audit.DEFAULT_FOLDS, "Models, each judging the examples the others trained on."
    )
    flags.DEFINE_multi_string(
        "set",
        [],
        "Change the audit's model or its head training: field.path=value, as train's --set "
        "(model.*, frozen_epochs, frozen_lr, feature_passes, pipeline.*, seed; the fine-tuning "
        "stage is not used).",
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
