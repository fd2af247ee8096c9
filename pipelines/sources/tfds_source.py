"""`tfds:<name>[:<version>]`: any TensorFlow Datasets dataset with an image and bounding boxes.

    --dataset=tfds:caltech_birds2011            a top-level `bbox` and `label`
    --dataset=tfds:coco/2017:1.1.0              `objects/bbox`, `objects/label`, `objects/is_crowd`
    --dataset=tfds:stanford_dogs                `objects/bbox` with the image's `label`

The dataset must already be prepared in the TFDS data dir (`--data_dir`,
default `~/tensorflow_datasets`): this source never downloads, so a run
cannot hang on a network or fetch gigabytes by surprise. The features are
found by type: the `Image` feature (`image` first), a `BBoxFeature` at the
top level or inside a `Sequence` of objects, and the `ClassLabel` `label`
of the objects or of the image (the class names are its names). Boolean
object flags named like VOC's `is_difficult` or COCO's `is_crowd` mark
objects that are never targets. Each image is reduced to one target at
index time by `--policy` (`pipelines.sources.source.choose_target`).

`pipelines.sources.voc_tfds` is this source for Pascal VOC, plus the
offline preparation from the official archives.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines.sources.source import (
    BOX,
    ID,
    IMAGE,
    LABEL,
    POLICIES,
    DatasetError,
    ImageObjects,
    IndexStats,
    Source,
    choose_target,
    digest_of_arrays,
    log_index,
)

PREFIX = "tfds:"
"""`--dataset=tfds:<name>[:<version>]` names a TFDS dataset (see `pipelines.get_source`)."""

NOT_A_TARGET_FLAGS = ("is_difficult", "is_crowd", "iscrowd")
"""Boolean object features whose objects are never chosen as the target."""

FILENAME = "image/filename"
SPLIT_ALIASES = {"val": "validation"}


@dataclasses.dataclass(frozen=True)
class FeaturePaths:
    """Where a TFDS dataset keeps what a source needs.

    objects: the `Sequence` feature holding the boxes (None: `bbox` is top-level, one box per
    image).
    label_in_objects: whether the label is per object (`objects/label`) or per image (`label`).
    """

    image: str
    images: tuple  # every top-level Image feature: all are read undecoded
    objects: str
    bbox: str
    label: str
    label_in_objects: bool
    flags: tuple
    class_names: tuple


def find_features(features, dataset):
    """`FeaturePaths` of a TFDS `FeaturesDict`; DatasetError (one line) when it lacks boxes or
    labels."""
    images = tuple(k for k, f in features.items() if isinstance(f, tfds.features.Image))
    if not images:
        raise DatasetError(
            f"TFDS dataset {dataset} has no Image feature (features: {sorted(features)})"
        )
    image = "image" if "image" in images else images[0]

    def box_keys(feature_dict):
        return [k for k, f in feature_dict.items() if isinstance(f, tfds.features.BBoxFeature)]

    objects, inner = None, features
    if not box_keys(features):
        sequences = [
            k
            for k, f in features.items()
            if isinstance(f, tfds.features.Sequence)
            and isinstance(f.feature, tfds.features.FeaturesDict)
            and box_keys(f.feature)
        ]
        if not sequences:
            raise DatasetError(
                f"TFDS dataset {dataset} has no BBoxFeature at the top level or in a Sequence of "
                f"objects (features: {sorted(features)}); use a detection dataset"
            )
        objects = "objects" if "objects" in sequences else sequences[0]
        inner = features[objects].feature
    bbox = "bbox" if "bbox" in box_keys(inner) else box_keys(inner)[0]
    if (
        objects is not None
        and "label" in inner
        and isinstance(inner["label"], tfds.features.ClassLabel)
    ):
        label, label_in_objects, label_feature = "label", True, inner["label"]
    elif "label" in features and isinstance(features["label"], tfds.features.ClassLabel):
        label, label_in_objects, label_feature = "label", False, features["label"]
    else:
        where = f"{objects}/label or label" if objects else "label"
        raise DatasetError(
            f"TFDS dataset {dataset} has no ClassLabel {where}; the class of a box is read there"
        )
    flags = tuple(k for k in NOT_A_TARGET_FLAGS if objects is not None and k in inner)
    return FeaturePaths(
        image, images, objects, bbox, label, label_in_objects, flags, tuple(label_feature.names)
    )


def split_name(spec):
    """`(name, version or None)` of `<name>[:<version>]` (the part after `tfds:`)."""
    name, _, version = spec.partition(":")
    if not name or (version == "" and spec.endswith(":")):
        raise DatasetError(
            f"--dataset=tfds:{spec}: expected tfds:<name>[:<version>], e.g. tfds:coco/2017:1.1.0"
        )
    return name, version or None


def open_builder(name, version, data_dir):
    """The TFDS builder of `name` (at `version`); DatasetError (one line) when TFDS does not know
    it."""
    full = f"{name}:{version}" if version else name
    try:
        return tfds.builder(full, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001 - TFDS raises several types; all are this one user error
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise DatasetError(
            f"cannot open TFDS dataset {full} (data dir {data_dir or '~/tensorflow_datasets'}): "
            f"{first_line}; check the name and version in the TFDS catalog"
        ) from None


class TfdsSource(Source):
    """A TFDS detection dataset read offline, one target per image chosen by `policy`.

    Args:
      dataset: `<name>[:<version>]`, e.g. `coco/2017:1.1.0` (what follows `tfds:`).
      data_dir: TFDS data dir (None: TFDS's default, `~/tensorflow_datasets`).
      policy: target policy, one of `pipelines.sources.source.POLICIES`.
    """

    name = "tfds"

    def __init__(self, dataset, data_dir=None, policy="largest"):
        if policy not in POLICIES:
            raise ValueError(f"Unknown target policy {policy!r}; expected one of {POLICIES}.")
        name, version = split_name(dataset)
        self.name = PREFIX + dataset
        self.policy = policy
        self.data_dir = str(data_dir) if data_dir else None
        self.builder = open_builder(name, version, self.data_dir)
        self.features = find_features(self.builder.info.features, self.builder.info.full_name)
        self._prepared = False
        self._indexes = {}  # (split, policy) -> index dict (see `_build_index`)

    @property
    def class_names(self):
        return list(self.features.class_names)

    def prepare(self):
        """Checks the dataset is prepared in the data dir; this source never downloads."""
        if self._prepared or self.builder.is_prepared():
            self._prepared = True
            return
        root = self.builder.data_dir_root
        name = self.builder.info.full_name.rsplit("/", 1)[0]
        raise DatasetError(
            f"TFDS dataset {self.builder.info.full_name} is not prepared in {root} (this source "
            f"never downloads); prepare it once, where there is internet, with `tfds build {name} "
            f"--data_dir={root}` (manual-download datasets: put their files in "
            f"{root}/downloads/manual first), then pass --data_dir={root}"
        )

    def _check_split(self, split):
        """The TFDS split string for `split` (`val` means `validation` where there is no `val`)."""
        known = set(self.builder.info.splits)
        parts = []
        for part in str(split).split("+"):
            name, bracket, rest = part.strip().partition("[")
            if name not in known and SPLIT_ALIASES.get(name) in known:
                name = SPLIT_ALIASES[name]
            parts.append(name + bracket + rest)
        return "+".join(parts)

    def _fallback_id(self, split, position):
        """An example's id when the dataset has no file names."""
        return f"{self.builder.info.full_name}/{split}/{position}"

    # ------------------------------------------------------------------
    # Index: which images are kept, with which target
    # ------------------------------------------------------------------

    def _tfds_dataset(self, split):
        options = tf.data.Options()
        options.deterministic = True
        read_config = tfds.ReadConfig(options=options, try_autocache=False, add_tfds_id=False)
        try:
            return self.builder.as_dataset(
                split=split,
                # Pixels are decoded later by pipelines.decode (and never for indexing).
                decoders={key: tfds.decode.SkipDecoding() for key in self.features.images},
                shuffle_files=False,
                read_config=read_config,
            )
        except (ValueError, KeyError, AssertionError) as error:
            splits = sorted(self.builder.info.splits)
            first_line = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise DatasetError(
                f"{self.builder.info.full_name} has no split {split!r} (splits: {splits}): "
                f"{first_line}"
            ) from None

    def _index(self, split):
        split = self._check_split(split)
        key = (split, self.policy)
        if key not in self._indexes:
            self.prepare()
            self._indexes[key] = self._build_index(split)
        return self._indexes[key]

    def _annotations(self, example):
        """The boxes, labels, not-a-target flags and file name of one TFDS example (inside
        `map`)."""
        paths = self.features
        objects = example[paths.objects] if paths.objects else example
        boxes = tf.reshape(tf.cast(objects[paths.bbox], tf.float32), [-1, 4])
        if paths.label_in_objects:
            labels = tf.reshape(tf.cast(objects[paths.label], tf.int64), [-1])
        else:  # one label for the image: every box is of that class
            labels = tf.fill(tf.shape(boxes)[:1], tf.cast(example[paths.label], tf.int64))
        selected = {"bbox": boxes, "label": labels}
        # Checked on the element, not the features: mock or older data may lack a flag.
        present = [
            tf.reshape(tf.cast(objects[f], tf.bool), [-1]) for f in paths.flags if f in objects
        ]
        if present:
            selected["not_a_target"] = (
                tf.reduce_any(tf.stack(present), axis=0) if len(present) > 1 else present[0]
            )
        if FILENAME in example:
            selected["id"] = example[FILENAME]
        return selected

    def _build_index(self, split):
        ds = self._tfds_dataset(split).map(self._annotations).prefetch(tf.data.AUTOTUNE)
        stats = IndexStats()
        keep, labels, boxes, ids = [], [], [], []
        for position, example in enumerate(ds.as_numpy_iterator()):
            label_values = np.asarray(example["label"]).reshape(-1)
            flags = example.get("not_a_target")
            if flags is None:
                flags = np.zeros(len(label_values), bool)
            objects = ImageObjects(
                boxes=np.asarray(example["bbox"], np.float32).reshape(-1, 4),
                labels=label_values,
                difficult=np.asarray(flags, bool).reshape(-1),
            )
            target = choose_target(objects, self.policy, stats)
            keep.append(target is not None)
            label, box = target if target is not None else (0, np.zeros(4, np.float32))
            labels.append(label)
            boxes.append(box)
            raw_id = example.get("id")
            ids.append(
                bytes(raw_id) if raw_id is not None else self._fallback_id(split, position).encode()
            )
        log_index(self.name, f"{split}, policy={self.policy}", stats)
        return {
            "keep": np.asarray(keep, bool),
            "label": np.asarray(labels, np.int32),
            "box": np.asarray(boxes, np.float32).reshape(-1, 4),
            "id": tf.constant(ids, tf.string) if ids else tf.zeros([0], tf.string),
            "has_ids": "id" in ds.element_spec,
            "stats": stats,
        }

    def index_stats(self, split):
        """The `IndexStats` of `split` under this source's policy (builds the index)."""
        return self._index(split)["stats"]

    def num_examples(self, split):
        return int(self._index(split)["keep"].sum())

    def identity(self, split):
        """The TFDS dataset and version, the policy, and a digest of the kept targets."""
        index = self._index(split)
        targets = {key: index[key] for key in ("keep", "label", "box", "id")}
        return {
            **super().identity(split),
            "tfds": f"{self.builder.info.full_name}",
            "policy": self.policy,
            "examples_digest": digest_of_arrays(targets),
        }

    # ------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------

    def load(self, split):
        index = self._index(split)
        split = self._check_split(split)
        kept = int(index["keep"].sum())
        targets = tf.data.Dataset.from_tensor_slices(
            (index["keep"], index["label"], index["box"], index["id"])
        )
        has_ids = index["has_ids"]
        image_key = self.features.image
        name = self.name

        def to_element(example, target):
            _, label, box, expected_id = target
            if has_ids:
                # The index was built on the same read order; make a change loud.
                check = tf.debugging.assert_equal(
                    example[FILENAME],
                    expected_id,
                    message=f"{name}: TFDS read order differs from the index order",
                )
                with tf.control_dependencies([check]):
                    expected_id = tf.identity(expected_id)
            return {IMAGE: example[image_key], LABEL: label, BOX: box, ID: expected_id}

        ds = tf.data.Dataset.zip((self._tfds_dataset(split), targets))
        ds = ds.filter(lambda example, target: target[0])
        ds = ds.map(to_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.apply(tf.data.experimental.assert_cardinality(kept))
