"""Preview a dataset: a grid of decoded and augmented examples with their boxes.

    python -m pipelines.show --dataset=voc_dir --data_dir=/data/my_voc_folder --out=grid.png

Each row shows examples as decoded (left half) and the same examples as the
training pipeline gives them to the model after augmentation and resizing
(right half). If boxes do not sit on their objects, the box format is wrong.
The examples are drawn across the classes (round-robin over the classes in a
seeded order, `--seed`), not the first ones of the split: datasets are often
sorted by class, and a grid of one class hides a wrong label mapping.
"""

import itertools
import os

import matplotlib
import tensorflow as tf

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from absl import flags, logging  # noqa: E402

from pipelines import boxes as box_lib  # noqa: E402
from pipelines import (  # noqa: E402  # noqa: E402
    cli,
    dataset_flags,  # noqa: E402
    files,
    input_pipeline,
    render,
)
from pipelines.sources.source import BOX, IMAGE, LABEL, stratified_indices  # noqa: E402

FLAGS = flags.FLAGS


def draw_example(ax, image, box, title):
    """Draws an image and its BOX_FORMAT box on a matplotlib axis."""
    height, width = image.shape[:2]
    xmin, ymin, xmax, ymax = box_lib.from_internal(box, box_lib.PIXEL_XYXY, height, width).numpy()
    ax.imshow(image)
    ax.add_patch(
        plt.Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, color="lime", linewidth=2)
    )
    ax.set_title(title, fontsize=8)
    ax.axis("off")


LABEL_SCAN_LIMIT = 1000
"""Examples of a split whose labels are read to choose a preview's (the first ones; reading every
label of a large split would cost a pass over it, and the synthetic source renders each example)."""


def sample_across_classes(source, split, count, seed=0):
    """A dataset of `count` source elements of `split`, stratified by class
    (`stratified_indices`)."""
    ds = source.load(split).take(LABEL_SCAN_LIMIT)
    labels = list(ds.map(lambda element: element[LABEL]).as_numpy_iterator())
    chosen = stratified_indices(labels, count, seed)
    wanted = set(chosen)
    picked = {
        i: element
        for i, element in enumerate(ds.take(max(chosen, default=-1) + 1).as_numpy_iterator())
        if i in wanted
    }
    return tf.data.Dataset.from_generator(
        lambda: (picked[i] for i in chosen), output_signature=ds.element_spec
    )


def preview_grid(source, split, config, num_examples, out_path, columns=4):
    """Writes a PNG: `num_examples` decoded examples (across the classes) and their augmented
    versions."""
    sample = sample_across_classes(source, split, num_examples, config.seed or 0)
    raw = input_pipeline.decode_and_sanitize(sample)
    augmented = input_pipeline.augment_and_resize(raw, config, training=True)
    rows = -(-num_examples // columns)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(4 * columns, 2.2 * rows), squeeze=False)
    names = source.class_names
    pairs = itertools.islice(zip(raw, augmented, strict=True), num_examples)
    for i, (plain, aug) in enumerate(pairs):
        r, c = divmod(i, columns)
        draw_example(axes[r][c], plain[IMAGE].numpy(), plain[BOX], names[int(plain[LABEL])])
        draw_example(
            axes[r][columns + c],
            aug[IMAGE].numpy(),
            aug[BOX],
            "augmented: " + names[int(aug[LABEL])],
        )
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"{source.name} [{split}]: decoded (left) and as trained on (right)")
    fig.tight_layout()
    files.atomic_write(
        out_path,
        lambda temporary: fig.savefig(
            temporary, dpi=80, format="png", metadata=files.mark_metadata(PREVIEW_MARK)
        ),
    )
    plt.close(fig)
    return out_path


MAX_EXAMPLES_SHOWN = 256
"""A grid larger than this is no preview (and its figure's memory grows with it)."""

PREVIEW_MARK = "localizer pipelines.show"
"""Written into each preview PNG (`files.mark_metadata`): only such files are replaced."""


def check_output(path, data_dir=None):
    """`--out` must be a new file, or a preview this command wrote before: never a file the user
    brought,
    never inside the dataset.
    """
    if not path.lower().endswith(".png"):
        raise cli.UserError(f"--out={path} must end in .png")
    if data_dir and files.inside(os.path.dirname(os.path.abspath(path)), data_dir):
        raise cli.UserError(
            f"--out={path} is inside the dataset folder {data_dir}; write the preview elsewhere"
        )
    if os.path.exists(path) and not files.carries_mark(path, PREVIEW_MARK):
        raise cli.UserError(
            f"--out={path} exists and is not a preview written by pipelines.show; "
            f"choose a new file name"
        )
    files.check_writable_folder(os.path.dirname(os.path.abspath(path)), "output folder")
    return path


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(
            f"unexpected argument {argv[1]!r}; every option is a --flag (see --helpshort)"
        )
    cli.require_positive(FLAGS.num_examples, "num_examples")
    cli.require_positive(FLAGS.image_size, "image_size")
    if FLAGS.image_size > render.MAX_IMAGE_SIZE or FLAGS.num_examples > MAX_EXAMPLES_SHOWN:
        raise cli.UserError(
            f"--image_size={FLAGS.image_size} / --num_examples={FLAGS.num_examples}: at most "
            f"{render.MAX_IMAGE_SIZE} px and {MAX_EXAMPLES_SHOWN} examples"
        )
    check_output(FLAGS.out, FLAGS.data_dir)
    source = dataset_flags.source_from_flags(FLAGS)
    config = input_pipeline.PipelineConfig(
        image_size=FLAGS.image_size,
        resize_mode=FLAGS.resize_mode,
        shuffle_buffer=64,
        seed=FLAGS.seed,
    )
    path = preview_grid(source, FLAGS.split, config, FLAGS.num_examples, FLAGS.out)
    logging.info("Wrote %s", path)
    print(path)


def define_flags():
    dataset_flags.define_dataset_flags()
    flags.DEFINE_string("out", "grid.png", "Output PNG (a new file, or an earlier preview).")
    flags.DEFINE_integer("num_examples", 16, "Examples to show.")
    flags.DEFINE_integer("image_size", 224, "Model input size.")
    flags.DEFINE_enum("resize_mode", "letterbox", list(render.RESIZE_MODES), "Resize mode.")
    flags.DEFINE_integer("seed", 0, "Shuffle and augmentation seed.")


if __name__ == "__main__":
    cli.run(main, define_flags)
