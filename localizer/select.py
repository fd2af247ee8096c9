"""Choose which unlabelled photos to label next: `python -m localizer.select`.

    python -m localizer.select --model=work/realmix_default/best.keras photos/ --budget=50
    [--out=to_label.txt]

Looks at every photo twice, as predict does (the whole photo, then zoomed on its box), and
ranks the photos by the value of labelling them: low predicted box quality, an uncertain
class, and a first and zoomed look that disagree (`localizer.curation.selection`). Prints the
`--budget` most valuable as a table (rank, value, its parts, why, the model's guess, path),
skipping a photo that is a near-duplicate of one already chosen (a re-saved, resized or
mirrored copy). `--out` receives the same photos, one path per line under a `#` line that
marks the file as select's: an existing file without that mark is refused. A file that
cannot be read gets its own `not ranked:` line on stderr, the others are still ranked, and the
exit code is 1.

Flags and `main` only: the work is `localizer.curation.to_label`.
"""

import sys

from absl import flags

from localizer.curation import selection, to_label
from pipelines import cli, dataset_flags

FLAGS = flags.FLAGS


def main(argv):
    paths = argv[1:]
    if not paths:
        raise cli.UserError(
            "no photo given; usage: python -m localizer.select --model=MODEL --budget=N "
            "IMAGE_OR_FOLDER..."
        )
    cli.require_positive(FLAGS.batch_size, "batch_size")
    failures = to_label.run(
        FLAGS.model,
        paths,
        FLAGS.budget,
        out_path=FLAGS.out,
        duplicate_similarity=FLAGS.duplicate_similarity,
        max_image_pixels=FLAGS.max_image_pixels,
        batch_size=FLAGS.batch_size,
    )
    sys.exit(cli.EXIT_SOME_FILES_FAILED if failures else 0)


def define_flags():
    flags.DEFINE_string(
        "model",
        None,
        "A .keras file, an exported SavedModel version folder, or a .tflite file in its "
        "assets.extra/ (exports: near-duplicates found by a thumbnail, not the backbone).",
        required=True,
    )
    flags.DEFINE_integer("budget", None, "How many photos to choose (at least 1).", required=True)
    flags.DEFINE_string(
        "out",
        None,
        "Also write the chosen paths here, one a line, most valuable first (a new file, or "
        "one select wrote).",
    )
    flags.DEFINE_float(
        "duplicate_similarity",
        None,
        "Cosine similarity of two photos' embeddings from which they count as near-duplicates "
        f"(default: calibrated, {selection.DUPLICATE_SIMILARITY[selection.FEATURES]} for a "
        f".keras model's features, {selection.DUPLICATE_SIMILARITY[selection.THUMBNAIL]} for "
        "an export's thumbnails).",
    )
    flags.DEFINE_integer("batch_size", selection.BATCH_SIZE, "Photos per batch.")
    dataset_flags.define_pixel_limit_flag()


if __name__ == "__main__":
    cli.run(main, define_flags)
