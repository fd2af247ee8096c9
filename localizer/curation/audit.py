"""The label audit: out-of-sample looks at every example of a split, ranked by how likely its label
is wrong, written as a table, a page and a corrections file (`localizer.audit` runs it).

`out_of_sample` makes the honest predictions (k-fold on frozen backbone
features), `suspects` ranks them, `audit_report` writes what a person reads.
Nothing is written into the dataset.
"""

import time

import numpy as np
from absl import logging

from localizer.curation import audit_report, out_of_sample
from localizer.curation import suspects as suspects_lib
from localizer.training import config as config_lib
from pipelines import input_pipeline
from pipelines.errors import UserError
from pipelines.sources import writers
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


def audit(config, source, split, report_dir, dataset_kind, folds=DEFAULT_FOLDS, data_dir=None):
    """Audits `split` of `source` (`config`: a `TrainConfig`, resolved here); writes the report dir.

    Returns `audit.json`'s dict. The report dir is checked before the long part.
    """
    audit_report.check_report_dir(report_dir, data_dir)
    config = config.resolve(source.class_names)
    config.validate()
    examples = source.num_examples(split)
    check_usable(source, split, config.data.max_skipped_fraction)
    check_folds(folds, examples)
    original_files = source.original_files(split)
    corrections_format = audit_report.correction_format(dataset_kind)
    corrections_dir = f"{report_dir}/{audit_report.CORRECTIONS}"
    if original_files is not None:
        writers.check_output(
            corrections_format,
            corrections_dir,
            list(original_files.values()),
            list(source.class_names),
            ids=list(original_files),
            split=split,
            what="the report dir's corrections/",
        )
    start = time.time()
    logging.info(
        "Auditing %d examples of %s[%s] with %d folds.", examples, source.name, split, folds
    )
    bar = out_of_sample.progress_bar(folds, "fold")
    result = out_of_sample.out_of_sample(
        config, source, split, folds, progress=lambda fold: bar.add(1)
    )
    ranking = suspects_lib.rank(result, list(source.class_names))
    table = audit_report.rows(ranking, list(source.class_names), original_files)
    audit_report.write_suspects_csv(f"{report_dir}/{audit_report.SUSPECTS_FILE}", table)
    shown = [row["id"] for row in table[: audit_report.REPORT_ROWS]]
    audit_report.write_report(
        report_dir,
        table,
        upright_images(source, split, shown),
        f"Label audit of {source.name} [{split}]: {ranking.suspects} suspects of {examples}",
    )
    corrections = audit_report.correction_labels(ranking, original_files)
    if corrections and original_files is not None:
        writers.write_labels(
            corrections_format, corrections_dir, corrections, list(source.class_names), split
        )
    summary = audit_report.summary_json(
        ranking,
        dataset=source.name,
        split=split,
        examples=int(examples),
        folds=folds,
        seconds=round(time.time() - start, 1),
        corrections=corrections_format if original_files is not None else None,
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
