"""The label audit: out-of-sample looks at every example of a split, ranked by how likely its label
is wrong, written as a table, a page and a corrections file (`localizer.audit` runs it).

`out_of_sample` makes the honest predictions (k-fold on frozen backbone
features), `suspects` ranks them, `audit_report` writes what a person reads.
Nothing is written into the dataset.
"""

import collections
import sys
import time

import numpy as np
from absl import logging

from localizer import provenance
from localizer.curation import audit_report, out_of_sample
from localizer.curation import suspects as suspects_lib
from localizer.training import config as config_lib
from pipelines import input_pipeline
from pipelines.errors import UserError
from pipelines.sources.source import ID, IMAGE, Selected, check_usable

DEFAULT_FOLDS = 5
"""Each fold model trains on 4/5 of the split: close to what a model of the whole split knows, for
5 head trainings on one feature cache."""
MIN_EXAMPLES_PER_FOLD = 2


class AuditError(UserError, ValueError):
    """The audit cannot run as asked (too few examples for its folds, ...)."""


def check_folds(folds, examples):
    if folds < 2:
        raise AuditError(f"--folds={folds}: an audit needs at least 2 folds (a model per fold)")
    if examples < folds * MIN_EXAMPLES_PER_FOLD:
        raise AuditError(
            f"the split has {examples} usable examples, too few for {folds} folds (at least "
            f"{MIN_EXAMPLES_PER_FOLD} each); lower --folds or audit a larger split"
        )


def check_training(config):
    """The audit trains the frozen stage's heads only: it needs epochs there."""
    if config.frozen_epochs < 1:
        raise AuditError(
            f"frozen_epochs={config.frozen_epochs}: the audit's fold models train their heads "
            "for frozen_epochs (the frozen stage; fine_tune_* are not used); set it to 1 or more"
        )


def check_distinct_ids(source, split):
    """Refuses a split whose examples share an id (a split file listing one twice, `a.jpg` and
    `a.png`): suspects.csv and the corrections name examples by id."""
    ids = [x.decode() for x in source.load(split).map(lambda e: e[ID]).as_numpy_iterator()]
    repeated = sorted(x for x, n in collections.Counter(ids).items() if n > 1)
    if repeated:
        raise AuditError(
            f"{source.name} split {split!r}: {len(repeated)} example ids repeat "
            f"({', '.join(repeated[:3])}{', ...' if len(repeated) > 3 else ''}); an audit names "
            "each example by its id: give each photo its own name (or list it once)"
        )


def warn_about_small_classes(labels, class_names, folds):
    """A class with fewer examples than folds leaves some fold model without it, which then
    calls that class wrong: say so."""
    counts = np.bincount(labels, minlength=len(class_names))
    small = [f"{class_names[i]} ({n})" for i, n in enumerate(counts) if 0 < n < folds]
    if small:
        print(
            f"warning: {', '.join(small)}: fewer examples than --folds={folds}; some fold "
            "models never saw the class, so its examples may be called wrong_class",
            file=sys.stderr,
        )


def audit(config, source, split, report_dir, dataset_kind, folds=DEFAULT_FOLDS, data_dir=None):
    """Audits `split` of `source` (`config`: a `TrainConfig`, resolved here); writes the report dir.

    Returns `audit.json`'s dict. The report dir and the data are checked before the long part.
    """
    audit_report.check_report_dir(report_dir, data_dir)
    config = config.resolve(source.class_names)
    config.validate()
    check_training(config)
    examples = source.num_examples(split)
    check_usable(source, split, config.data.max_skipped_fraction)
    check_folds(folds, examples)
    check_distinct_ids(source, split)
    audit_report.mark_report_dir(report_dir)
    start = time.time()
    logging.info(
        "Auditing %d examples of %s[%s] with %d folds.", examples, source.name, split, folds
    )
    bar = out_of_sample.progress_bar(folds, "fold")
    result = out_of_sample.out_of_sample(
        config, source, split, folds, progress=lambda fold: bar.add(1)
    )
    class_names = list(source.class_names)
    warn_about_small_classes(result.looks.labels, class_names, folds)
    ranking = suspects_lib.rank(result, class_names)
    original_files = source.original_files(split)
    table = audit_report.rows(ranking, class_names, original_files)
    audit_report.write_suspects_csv(f"{report_dir}/{audit_report.SUSPECTS_FILE}", table)
    shown = [row["id"] for row in table[: audit_report.REPORT_ROWS]]
    audit_report.write_report(
        report_dir,
        table,
        upright_images(source, split, shown),
        f"Label audit of {source.name} [{split}]: {ranking.suspects} suspects of {examples}",
    )
    corrections = audit_report.write_corrections(
        report_dir, ranking, original_files, class_names, dataset_kind, split
    )
    summary = audit_report.summary_json(
        ranking,
        dataset=source.name,
        split=split,
        examples=int(examples),
        folds=folds,
        seconds=round(time.time() - start, 1),
        corrections=corrections,
        code=provenance.code_version(),
    )
    audit_report.write_summary(report_dir, summary)
    return summary


def upright_images(source, split, ids):
    """`{id: uint8 [H, W, 3]}` of the named examples, decoded as training decodes them (upright)."""
    images = {}
    for element in input_pipeline.decoded(Selected(source, {split: ids}), split):
        images[element[ID].numpy().decode()] = np.asarray(element[IMAGE])
    return images


def default_config(overrides=()):
    """The audit's model: the project's default recipe, its frozen stage (`--set` changes it)."""
    return config_lib.apply_overrides(config_lib.default_config(), overrides)
