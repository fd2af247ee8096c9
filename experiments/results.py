"""Regenerates experiments/RESULTS.md from the run records (`experiments.records`).

    python -m experiments.results write      # rewrite experiments/RESULTS.md (also: no argument)
    python -m experiments.results record work/NAME [--name=NAME]   # record a run, then write
    python -m experiments.results check      # records that would not rerun as they ran

RESULTS.md is generated from the records alone (and the benchmarks' JSON files) and shows what
was actually run; it is the one place figures are written, and everything else links to it.
"""

import json
import os
import re
import shlex
import sys

from experiments.records import check_records, read_runs, record

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "results", "bench_pipeline.json")
BENCH_TRAINING = os.path.join(HERE, "results", "bench_training.json")


def tta_path(split):
    """Where `experiments.tta_effect` writes its table for `split` (val: tta_effect.json)."""
    return os.path.join(
        HERE, "results", "tta_effect.json" if split == "val" else f"tta_effect_{split}.json"
    )


TTA = tta_path("val")
TTA_TRAIN = tta_path("train")
"""The same model's test-time table on its training split: where refinement rules are chosen."""
BENCH_SERVING = os.path.join(HERE, "results", "bench_serving.json")
BENCH_INT8 = os.path.join(HERE, "results", "bench_int8.json")
RESULTS_MD = os.path.join(HERE, "RESULTS.md")
# The tables, in order. Each run appears in the first group that names it;
# runs named nowhere go to "Other runs".
GROUPS = (
    (
        "The ladder: from the tutorials' recipe to the default",
        (
            "quickstart",
            "tutorial_baseline",
            "realmix_frozen_plain",
            "realmix_aug_features",
            "frozen_dense_head",
            "frozen_dense16",
            "realmix_conv_two_stage",
            "realmix_dense16_320",
            "realmix_default",
        ),
    ),
    (
        "One change at a time against the frozen reference (realmix_aug_features)",
        (
            "realmix_aug_features",
            "frozen_reference_seed1",
            "frozen_fc_head",
            "frozen_per_class",
            "realmix_spatial",
            "frozen_dense_head",
            "frozen_conv16",
            "frozen_dense16",
            "frozen_loss_l2",
            "frozen_loss_smooth_l1",
            "frozen_loss_diou",
            "frozen_loss_ciou",
            "frozen_alpha_025",
            "frozen_alpha_075",
            "frozen_no_aug",
        ),
    ),
    (
        "Backbones, against the default recipe (realmix_default)",
        (
            "realmix_default",
            "backbone_lite0_scratch",
            "backbone_mobilenet_v2_scratch",
            "backbone_lite2",
        ),
    ),
    (
        "Better boxes: one change at a time against the default before them (boxes_* rows; "
        "realmix_default is the new default)",
        (
            "boxes_reference",
            "boxes_fine_tune_all",
            "boxes_long_schedule",
            "boxes_ema",
            "boxes_zoom_views",
            "boxes_288",
            "realmix_default",
            "realmix_default_seed1",
            "realmix_default_rerun",
        ),
    ),
)


BENCH_HOSTILE = os.path.join(HERE, "results", "bench_hostile.json")
BENCH_DISTRIBUTED = os.path.join(HERE, "results", "bench_distributed.json")


def _read_json(path):
    """The JSON in `path`, or None when the benchmark has not been run."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _fmt(value):
    return "-" if value is None else f"{value:.3f}"


def table_rows(runs):
    yield (
        "| run | what | mean IoU | class-avg IoU | IoU>=0.5 | IoU>=0.75 | IoU>=0.9 | loc acc | "
        "class acc | train time | peak mem | date, machine | commit | command |"
    )
    yield "|" + "---|" * 14
    for run in runs:
        s = run["summary"]
        best = s.get("best") or {}
        acc = best.get("iou_accuracy", {})
        yield (
            f"| {run['name']} | {run['what']} | {_fmt(best.get('mean_iou'))} | "
            f"{_fmt(best.get('macro_mean_iou'))} | {_fmt(acc.get('0.5'))} | "
            f"{_fmt(acc.get('0.75'))} | {_fmt(acc.get('0.9'))} | "
            f"{_fmt(best.get('localization_accuracy'))} | "
            f"{_fmt(best.get('classification_accuracy'))} | {s['train_seconds'] / 60:.1f} min | "
            f"{s.get('peak_memory_mb', '-')} MB | {s.get('date', '-')}, {s.get('machine', '-')} | "
            f"{_commit(run)} | `{shlex.join(run['command'])}` |"
        )


def _commit(run):
    code = run.get("code") or {}
    commit = run.get("commit") or code.get("commit")
    if not commit:
        return "not recorded"
    return commit[:7] + ("+dirty" if code.get("dirty") else "")


def hostile_section():
    bench = _read_json(BENCH_HOSTILE)
    if bench is None:
        return []
    lines = [
        "## Hostile inputs: peak memory",
        "",
        f"`{bench['command']}`; {bench['machine']}; {bench['date']}; commit "
        f"{(bench.get('code') or {}).get('commit', '?')[:7]}. Each case in its own process (peak "
        "RSS of the child); each image bomb is followed by a good image in the same `predict` "
        "call.",
        "",
        "| input | file size | peak RSS | exit code | good file still predicted "
        "| the bomb's line |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in bench["cases"].items():
        good = (
            "-"
            if case["good_file_predicted"] is None
            else ("yes" if case["good_file_predicted"] else "no")
        )
        lines.append(
            f"| {name} | {case['file_bytes']} B | {case['peak_rss_mb']} MB | {case['exit_code']} | "
            f"{good} | {(case['bomb_line'] or '-').replace('|', '/')[:160]} |"
        )
    return lines + [""]


def bench_section():
    bench = _read_json(BENCH)
    if bench is None:
        return []
    lines = [
        "## Input pipeline throughput",
        "",
        f"`{bench['command']}` on {bench['data']}; {bench['machine']}; {bench['date']}. "
        "Medians of the runs; ratios within one run.",
        "",
        "| loader | images/s (median) | x python loader | runs |",
        "|---|---|---|---|",
    ]
    for name, value in bench["images_per_s_median"].items():
        lines.append(
            f"| {name} | {value} | {bench['ratio_to_python_loader'][name]} "
            f"| {', '.join(map(str, bench['images_per_s_runs'][name]))} |"
        )
    return lines + [""]


def bench_training_section():
    bench = _read_json(BENCH_TRAINING)
    if bench is None:
        return []
    lines = [
        "## Training throughput",
        "",
        f"`{bench['command']}`: {bench['model']}; {bench['machine']}; {bench['date']}. "
        "Medians of the runs, one process, the same compiled train step.",
        "",
        "| feed | steps/s (median) | images/s | runs (steps/s) |",
        "|---|---|---|---|",
    ]
    for name, value in bench["steps_per_s_median"].items():
        lines.append(
            f"| {name} | {value} | {bench['images_per_s_median'][name]} "
            f"| {', '.join(map(str, bench['steps_per_s_runs'][name]))} |"
        )
    lines += [
        "",
        f"- Pipeline from JPEG / in-memory tensors: **{bench['ratio_pipeline_to_in_memory']}** "
        "(1.0 = the input pipeline never limits training).",
        f"- Frozen stage, heads on cached features vs the frozen model on images: "
        f"**{bench['feature_cache_speedup']}x** faster per step (the backbone then runs once per "
        "image and feature pass instead of once per epoch).",
        "",
    ]
    return lines


def tta_section():
    tables = [t for t in (_read_json(TTA), _read_json(TTA_TRAIN)) if t is not None]
    if not tables:
        return []
    lines = ["## Test-time augmentation", ""]
    for tta in tables:
        lines += _tta_table(tta)
    return lines


def _tta_table(tta):
    rule = tta.get("refine_rule")
    lines = [
        f"`{tta['command']}` on realmix `{tta['split']}`; {tta['machine']}; {tta['date']}; commit "
        f"{_commit(tta)}. Boxes compared in the original images"
        + (
            f'; "+ refine" merges the two looks by the `{rule}` rule (the default).'
            if rule
            else "."
        ),
        "",
        "| mode | mean IoU | class-avg IoU | IoU>=0.5 | IoU>=0.75 | IoU>=0.9 | loc acc | class acc "
        "| box_quality AUROC | box_quality Spearman | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in tta["modes"].items():
        lines.append(
            f"| {mode} | {_fmt(r['mean_iou'])} | {_fmt(r['macro_mean_iou'])} | "
            f"{_fmt(r['iou_acc_0.5'])} | {_fmt(r['iou_acc_0.75'])} | {_fmt(r['iou_acc_0.9'])} | "
            f"{_fmt(r['localization_accuracy'])} | {_fmt(r['classification_accuracy'])} | "
            f"{_fmt(r.get('box_quality_auroc'))} | {_fmt(r.get('box_quality_spearman'))} | "
            f"{r['seconds']} |"
        )
    return lines + [""]


def serving_section():
    from experiments.bench_serving import PATH_LABELS

    bench = _read_json(BENCH_SERVING)
    if bench is None:
        return []
    lines = [
        "## Serving speed",
        "",
        f"`{bench['command']}`: {bench['model']}, exported with `--tflite --tflite_int8 --onnx` "
        f"and `refine`; {bench['data']}; {bench['machine']}; {bench['date']}; commit "
        f"{_commit(bench)}. Every runtime of one export on the same photos, taking turns call by "
        f"call in one process; medians of {bench['runs']} runs. Share of peak: the model's "
        f"{bench['model_gflops_per_image']} GFLOPs per image (TF's profiler; twice that for "
        "`serving_default`'s two looks) at the images/s reached, over this CPU's float32 peak "
        f"as TensorFlow reaches it ({bench['peak_gflops_per_s']} GFLOP/s, a 2048x2048 matmul); "
        "int8 computes in integers, so its share only compares. Before: the serving graph as it "
        "was (`LocalizerServing(optimize=False)`, the Keras model reading its variables).",
        "",
        "| batch | runtime | p50 ms | p99 ms | images/s | share of peak | x SavedModel time |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch, paths in bench["batches"].items():
        for name, r in paths.items():
            lines.append(
                f"| {batch} | {PATH_LABELS[name]} | {r['latency_ms_p50']} | "
                f"{r['latency_ms_p99']} | {r['images_per_s']} | {r['share_of_peak']:.1%} | "
                f"{r['x_savedmodel_time']} |"
            )
    compute = [
        f"{rows['serving_default']['x_model_compute']}x at batch {batch}"
        for batch, rows in bench["batches"].items()
        if "serving_default" in rows
    ]
    lines += [
        "",
        "`serving_default` (decode, render, both looks, box mapping) against its model compute "
        f"(the SavedModel's predict_images time for its {bench['looks_per_photo']} looks): "
        f"{', '.join(compute)}. Sizes (MB): "
        + ", ".join(f"{name} {size}" for name, size in bench["size_mb"].items())
        + ".",
        "",
    ]
    return lines


LABEL_AUDIT = os.path.join(HERE, "results", "label_audit.json")
LABEL_EFFICIENCY = os.path.join(HERE, "results", "label_efficiency.json")


def label_audit_section():
    bench = _read_json(LABEL_AUDIT)
    if bench is None:
        return []
    lines = [
        "## Label audit: injected label errors found",
        "",
        "`python -m experiments.label_noise`: a share of realmix `train` made wrong (a third "
        "each: class swapped, box moved elsewhere, box grown to most of the photo), then "
        "`python -m localizer.audit` on the copy; recall is the share of the injected errors "
        "within the first 10% of `suspects.csv`. Time: the whole audit command on this machine.",
        "",
        "| seed | injected | recall@10% all | wrong class | box elsewhere | box grown | audit time "
        "| folds | date, machine | commit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in bench["runs"].items():
        recall = run["recall_at_10_percent"]
        lines.append(
            f"| {name} | {sum(run['injected'].values())} of {run.get('examples', '?')} "
            f"| {recall['all']:.3f} | {recall['wrong_class']:.3f} | {recall['box_elsewhere']:.3f} "
            f"| {recall['box_grown']:.3f} | {run['seconds'] / 60:.1f} min | {run['folds']} "
            f"| {run['date']}, {run['machine']} | {_commit(run)} |"
        )
    notes = [f"- {name}: {run['note']}." for name, run in bench["runs"].items() if run.get("note")]
    return lines + ([""] + notes if notes else []) + [""]


def label_efficiency_section():
    bench = _read_json(LABEL_EFFICIENCY)
    if bench is None:
        return []
    strategies = list(next(iter(bench["seeds"].values())))
    lines = [
        "## What to label next: select vs random (simulation)",
        "",
        f"`{bench['command']}`; {bench['machine']}; {bench['date']}; commit {_commit(bench)}. "
        f"realmix `train` is the pool: {bench['start']:.0%} labelled at first (seeded), then "
        f"{bench['step']:.0%} more per step, chosen by `localizer.curation.selection` (the step's "
        "model looks at each unlabelled photo, both looks) or at random; the heads retrain on the "
        f"labelled photos' frozen features ({bench['feature_passes']} passes, "
        f"{bench['frozen_epochs']} epochs) and are scored on `val` (class-averaged IoU of the "
        "plain output). Mean over the seeds, each seed's value in brackets.",
        "",
        "![label efficiency](results/label_efficiency.png)",
        "",
        "| labelled | " + " | ".join(strategies) + " |",
        "|---|" + "---|" * len(strategies),
    ]
    runs = list(bench["seeds"].values())
    for step, row in enumerate(runs[0][strategies[0]]):
        cells = []
        for name in strategies:
            values = [run[name][step]["macro_mean_iou"] for run in runs]
            each = ", ".join(f"{v:.3f}" for v in values)
            cells.append(f"{sum(values) / len(values):.3f} ({each})")
        lines.append(f"| {row['fraction']:.0%} ({row['labelled']}) | " + " | ".join(cells) + " |")
    return lines + [""]


def bench_distributed_section():
    bench = _read_json(BENCH_DISTRIBUTED)
    if bench is None:
        return []
    lines = [
        "## Training across workers",
        "",
        f"`{bench['command']}`: {bench['model']}; {bench['machine']}; {bench['date']}; commit "
        f"{(bench.get('code') or {}).get('commit', '?')[:7]}. Each set-up in fresh processes; the "
        "chief's median step time.",
        "",
        "| set-up | processes | intra-op threads | global batch | steps/s | images/s | median step "
        "(s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in bench["setups"].items():
        lines.append(
            f"| {name} | {s['processes']} | {s['intra_op_threads']} | {s['global_batch']} "
            f"| {s['steps_per_s']} | {s['images_per_s']} | {s['median_step_seconds']} |"
        )
    lines += [
        "",
        f"- Scaling efficiency, two workers against twice one single-thread process: "
        f"**{bench['scaling_efficiency']}**; two workers against one process on all cores: "
        f"**{bench['speedup_over_one_process_all_cores']}x** the images/s.",
        "- On one machine the two workers share its cores, caches and memory bandwidth, and each "
        "step all-reduces every trainable gradient over loopback gRPC: this measures the "
        "multi-worker loop's and the collectives' overhead. On a cluster each worker brings its "
        "own cores; what is left to weigh is the all-reduce over the network against the step's "
        "compute.",
        "",
    ]
    return lines


def int8_section():
    bench = _read_json(BENCH_INT8)
    if bench is None:
        return []
    evaluation, latency, sizes = bench["evaluation"], bench["latency_batch_1"], bench["size_mb"]
    lines = [
        "## int8 TFLite: what full-integer quantization costs",
        "",
        f"`{bench['command']}`: the realmix_default model, exported with `--tflite --tflite_int8` "
        f"({bench['calibration_images']} calibration images of {bench['calibration_split']}), "
        f"evaluated on {bench['data']} with `--refine` by the same evaluation code; "
        f"{bench['machine']}; {bench['date']}; commit {_commit(bench)}. Latency: `predict_images` "
        "at batch 1 on rendered images, XNNPACK on, the paths taking turns call by call; medians "
        "of the runs, ratios within each run.",
        "",
        "| model | class-avg IoU | mean IoU | loc acc | class acc | batch-1 latency ms | x "
        "SavedModel | size MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = (
        ("Keras / SavedModel (float32)", "keras", "savedmodel_predict_images", "savedmodel"),
        ("TFLite float32", "tflite_float", "tflite_float", "tflite_float"),
        ("TFLite int8", "tflite_int8", "tflite_int8", "tflite_int8"),
    )
    for label, metrics_key, latency_key, size_key in rows:
        m, t = evaluation[metrics_key], latency[latency_key]
        lines.append(
            f"| {label} | {_fmt(m['macro_mean_iou'])} | {_fmt(m['mean_iou'])} "
            f"| {_fmt(m['localization_accuracy'])} | {_fmt(m['classification_accuracy'])} "
            f"| {t['ms_median']} | {t['x_savedmodel_median']} | {sizes[size_key]} |"
        )
    verdict = "within" if bench["int8_within_margin"] else "NOT within"
    lines += [
        "",
        f"int8 loses {bench['int8_macro_iou_drop']:+.4f} class-averaged IoU against the float "
        f"model ({verdict} the 0.015 allowed); ops left in float in the int8 file: "
        f"{', '.join(bench['float_ops_in_int8']) or 'none'}.",
        "",
    ]
    return lines


def results_markdown():
    """RESULTS.md's text, from the run records, the benchmark JSONs and results/NOTES.md only."""
    by_name = read_runs()
    named = {name for _, names in GROUPS for name in names}
    tables = []
    for title, names in GROUPS + (("Other runs", tuple(sorted(set(by_name) - named))),):
        present = [by_name[name] for name in names if name in by_name]
        if present:
            tables += [f"### {title}", "", *table_rows(present), ""]
    lines = [
        "# Results",
        "",
        "Generated by `python -m experiments.results write` from the run records in "
        "`experiments/results/runs/` (each written by `python -m experiments.run NAME` after the "
        "run) and the benchmarks' JSON files beside them; do not edit by hand. Each record holds "
        "the commit, the whole resolved config and the command that reruns it as it ran (the "
        "command column). Validation figures are the best epoch's (by the run's `best_metric`: "
        "localization accuracy before the dense head, class-averaged IoU since) on the `val` "
        "split, the model's plain output (no `--refine`: see the test-time table); training used "
        "`train` only.",
        "",
        "## Training runs",
        "",
        *tables,
        *bench_section(),
        *bench_training_section(),
        *bench_distributed_section(),
        *tta_section(),
        *serving_section(),
        *int8_section(),
        *hostile_section(),
        *label_audit_section(),
        *label_efficiency_section(),
    ]
    notes_path = os.path.join(HERE, "results", "NOTES.md")
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            lines += [f.read().strip(), ""]
    return portable_text("\n".join(lines))


def portable_text(text):
    """`text` without the paths of the machine that ran: a work dir's path from its `work/`, a
    temporary folder left out."""
    text = re.sub(r"/tmp/tmp\w+/", "", text)
    return re.sub(r"(?<![\w./])/[^\s`|:]*?/(work/[^\s`|:]+)", r"\1", text)


def write_results(path=RESULTS_MD):
    with open(path, "w") as f:
        f.write(results_markdown())
    return path


USAGE = __doc__


def main(argv):
    if len(argv) >= 2 and argv[1] == "check":
        problems = check_records()
        print("\n".join(problems) or "Every record reruns from its own config and commit.")
        return 1 if problems else 0
    if len(argv) >= 3 and argv[1] == "record":
        from experiments import names

        name = next((a.split("=", 1)[1] for a in argv[3:] if a.startswith("--name=")), None)
        name = name or os.path.basename(os.path.normpath(argv[2]))
        known = name in names.experiments()
        print(
            record(
                argv[2],
                name,
                names.spec(name) if known else None,
                names.describe(name) if known else None,
            )
        )
    elif len(argv) >= 2 and argv[1] != "write":
        print(USAGE)
        return 2
    print(write_results())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
