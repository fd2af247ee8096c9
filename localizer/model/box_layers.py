"""The box head's geometry layers: from logits to boxes, per-cell boxes and how they pool
(attention, centre weighting), and how the cells agree (for the box-quality head).

Serializable under the same registered names as when they lived in `layers` (`localizer>Name`),
so `.keras` files saved before the split load unchanged (`safe_mode=True`: no `Lambda`).
"""

import keras
from keras import ops

from pipelines.boxes import MIN_BOX_SIZE, grid_centres

_PACKAGE = "localizer"  # the registered names' package, as in `layers`


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BoxFromLogits(keras.layers.Layer):
    """Turns 4 unconstrained numbers into a valid BOX_FORMAT box inside the image.

    Per axis: size = sigmoid(t_size), kept within [MIN_BOX_SIZE,
    1 - MIN_BOX_SIZE] so float32 saturation cannot collapse it, then the
    box's start is placed in the free space left of it, start = (1 - size) *
    sigmoid(t_pos). So 0 <= ymin < ymax <= 1 (and the same for x) always,
    with smooth gradients everywhere, and a whole-image box is reachable.
    Input `[..., 4]` as (t_y, t_x, t_height, t_width); output `[..., 4]`
    (ymin, xmin, ymax, xmax).
    """

    def call(self, logits):
        logits = ops.cast(logits, "float32")
        position = ops.sigmoid(logits[..., 0:2])
        size = MIN_BOX_SIZE + (1.0 - 2.0 * MIN_BOX_SIZE) * ops.sigmoid(logits[..., 2:4])
        start = (1.0 - size) * position
        return ops.concatenate([start, start + size], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SelectClassBox(keras.layers.Layer):
    """Per-class regression at inference: the box of the highest-scoring class.

    Inputs `[class_boxes [B, C, 4], class_logits [B, C]]`; output `[B, 4]`.
    """

    def call(self, inputs):
        class_boxes, class_logits = inputs
        best = ops.argmax(class_logits, axis=-1)
        mask = ops.one_hot(best, ops.shape(class_boxes)[1], dtype=class_boxes.dtype)
        return ops.sum(class_boxes * mask[..., None], axis=1)

    def compute_output_shape(self, input_shapes):
        boxes_shape = input_shapes[0]
        return (boxes_shape[0], boxes_shape[2])


def cell_centres(height, width):
    """Centres of a `height x width` grid of cells, normalized: `([1, h, 1, 1], [1, 1, w, 1])`."""
    return ops.reshape(grid_centres(height), (1, -1, 1, 1)), ops.reshape(
        grid_centres(width), (1, 1, -1, 1)
    )


def decode_cell_boxes(box_logits, num_sets):
    """Per-cell boxes `[B, h, w, K, 4]` (BOX_FORMAT) from logits `[B, h, w, 4K]`.

    Each cell (centre cy, cx) predicts a box that contains its own centre and
    stays inside the image: ymin = cy * (1 - sigmoid(a)), ymax = cy + (1 - cy)
    * sigmoid(b) (the same for x). So every per-cell box is valid, and so is
    any weighted average of them.
    """
    box_logits = ops.cast(box_logits, "float32")
    shape = ops.shape(box_logits)
    cy, cx = cell_centres(shape[1], shape[2])
    fractions = ops.sigmoid(ops.reshape(box_logits, (-1, shape[1], shape[2], num_sets, 4)))
    ymin = cy * (1.0 - fractions[..., 0])
    xmin = cx * (1.0 - fractions[..., 1])
    ymax = cy + (1.0 - cy) * fractions[..., 2]
    xmax = cx + (1.0 - cx) * fractions[..., 3]
    return ops.stack([ymin, xmin, ymax, xmax], axis=-1)


def softmax_pool_boxes(attention_logits, cell_boxes):
    """`[B, h, w, K]` logits, `[B, h, w, K, 4]` boxes -> `[B, K, 4]`: boxes averaged by softmax over
    cells."""
    shape = ops.shape(cell_boxes)
    cells = shape[1] * shape[2]
    weights = ops.softmax(
        ops.reshape(ops.cast(attention_logits, "float32"), (-1, cells, shape[3])), axis=1
    )
    return ops.sum(ops.reshape(cell_boxes, (-1, cells, shape[3], 4)) * weights[..., None], axis=1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionBoxPooling(keras.layers.Layer):
    """One box from per-cell boxes, weighted by a softmax attention over cells.

    Inputs `[attention_logits [B, h, w, K], box_logits [B, h, w, 4K]]` for K
    box sets (1 class-agnostic, C per-class); per-cell boxes as in
    `decode_cell_boxes`. Output `[B, 4]` for K = 1, else `[B, K, 4]`, in
    BOX_FORMAT. The attention is learned only through the pooled box's loss
    (attach="attention_pooled"); attach="centre_weighted" supervises it (see `CellBoxes`).

    Every cell shares the same weights, so the head is translation-equivariant:
    it needs far fewer examples than a dense layer on flattened features.
    """

    def __init__(self, num_sets=1, **kwargs):
        super().__init__(**kwargs)
        self.num_sets = num_sets

    def call(self, inputs):
        attention_logits, box_logits = inputs
        boxes = softmax_pool_boxes(attention_logits, decode_cell_boxes(box_logits, self.num_sets))
        return boxes[:, 0] if self.num_sets == 1 else boxes

    def compute_output_shape(self, input_shapes):
        batch = input_shapes[0][0]
        return (batch, 4) if self.num_sets == 1 else (batch, self.num_sets, 4)

    def get_config(self):
        return {**super().get_config(), "num_sets": self.num_sets}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CellBoxes(keras.layers.Layer):
    """Per-cell class-agnostic boxes: logits `[B, h, w, 4]` -> BOX_FORMAT `[B, h, w, 4]`.

    The centre-weighted head (attach="centre_weighted", FCOS/CenterNet-style): every cell
    predicts the object's box (see `decode_cell_boxes`); training supervises
    the cells near the object's centre directly (`losses.CellBoxLoss`).
    """

    def call(self, box_logits):
        return decode_cell_boxes(box_logits, 1)[..., 0, :]

    def compute_output_shape(self, input_shape):
        return input_shape


PEAK_RADIUS = 2
"""Cells within this many of the centre map's peak vote for the box at inference
(`CentreWeightedBox`)."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CentreWeightedBox(keras.layers.Layer):
    """The dense head's box: per-cell boxes averaged by softmax(centre logits).

    Inputs `[centre_logits [B, h, w, 1], cell_boxes [B, h, w, 4]]`; output
    `[B, 4]`. The centre map is trained towards a Gaussian around the true
    box's centre (`losses.CentreLoss`), so the average is a vote of the cells
    nearest the object's centre, each of which was trained to predict the box.

    At inference only the cells within `peak_radius` of the highest centre
    score vote: when the map has two peaks (a pistol and the person holding
    it, two boards on a table) the average over every cell would give a box
    between them. Training averages over all cells (every cell's box gets its
    share of the gradient). Measured on realmix: on `train` the two agree
    (0.860 vs 0.860 mean IoU), on `val` the peak window gains +0.008 mean IoU
    and +0.034 IoU >= 0.5.
    """

    def __init__(self, peak_radius=PEAK_RADIUS, **kwargs):
        super().__init__(**kwargs)
        self.peak_radius = int(peak_radius)

    def call(self, inputs, training=None):
        centre_logits, cell_boxes = inputs
        centre_logits = ops.cast(centre_logits, "float32")
        if not training:
            centre_logits = _keep_near_peak(centre_logits, self.peak_radius)
        return softmax_pool_boxes(centre_logits, ops.cast(cell_boxes, "float32")[..., None, :])[
            :, 0
        ]

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 4)

    def get_config(self):
        return {**super().get_config(), "peak_radius": self.peak_radius}


FAR_FROM_PEAK = 30.0
"""Cells farther than the peak radius get the logit `peak - FAR_FROM_PEAK`: a softmax weight of at
most
e^-30 (1e-13) of the peak's, nothing in float32, and a value int8 quantization can hold."""


def _keep_near_peak(logits, radius):
    """`[B, h, w, 1]` logits with every cell farther than `radius` cells from the maximum set to
    `peak - 30`.

    The peak's neighbourhood is the peak mask dilated by a max-pool: no
    argmax or integer arithmetic, which would bring ops TFLite lacks (Keras'
    argmax bit-casts floats to order -0.0 before 0.0). The fill is finite and
    close to the logits, not -1e9: full-integer quantization calibrates one
    scale for this tensor, and -1e9 in its range made a step of ~4e6, every
    real logit the same level and the box an average of the whole window
    (int8 TFLite on realmix val: IoU 0.30 against 0.73 in float).
    """
    top = ops.max(logits, axis=(1, 2), keepdims=True)
    near = ops.max_pool(
        ops.cast(logits >= top, "float32"), pool_size=2 * radius + 1, strides=1, padding="same"
    )
    return ops.where(near > 0.5, logits, top - FAR_FROM_PEAK)


def _cell_weights(centre_logits, training):
    """The weights `CentreWeightedBox` gives the cells: `[B, h, w, 1]` logits -> `[B, h * w, 1]`."""
    centre_logits = ops.cast(centre_logits, "float32")
    if not training:
        centre_logits = _keep_near_peak(centre_logits, PEAK_RADIUS)
    shape = ops.shape(centre_logits)
    return ops.softmax(ops.reshape(centre_logits, (-1, shape[1] * shape[2], 1)), axis=1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VoteAgreement(keras.layers.Layer):
    """How the centre-weighted head's cells agree on its box: `[B, 2]`, for the box-quality head.

    Inputs `[centre_logits [B, h, w, 1], cell_boxes [B, h, w, 4]]`; output
    (the peak cell's weight, the weighted variance of the cells' boxes summed
    over the 4 coordinates), the cells weighed as in `CentreWeightedBox` (at
    inference only those near the peak). A sharp peak whose cells all predict
    the same box is a sure box; a flat map or cells that disagree is not.

    The spread is around the cells' own weighted mean, not the IoU with the
    output box: min/max against that box made full-integer TFLite quantize
    the box with the cells' shared scale (int8 boxes off by 0.15).
    """

    def call(self, inputs, training=None):
        centre_logits, cell_boxes = inputs
        weights = _cell_weights(centre_logits, training)  # [B, cells, 1]
        cells = ops.reshape(ops.cast(cell_boxes, "float32"), (-1, ops.shape(weights)[1], 4))
        mean = ops.sum(cells * weights, axis=1, keepdims=True)
        spread = ops.sum(ops.square(cells - mean) * weights, axis=(1, 2))
        return ops.concatenate([ops.max(weights, axis=1), spread[:, None]], axis=-1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 2)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CentreWeightedFeatures(keras.layers.Layer):
    """The dense head's features where it looks: `[B, h, w, C]` averaged by softmax(centre logits)
    -> `[B, C]`.

    Inputs `[centre_logits [B, h, w, 1], features [B, h, w, C]]`; the cells
    weigh what they weigh in `CentreWeightedBox`.
    """

    def call(self, inputs, training=None):
        centre_logits, features = inputs[0], ops.cast(inputs[1], "float32")
        weights = _cell_weights(centre_logits, training)  # [B, cells, 1]
        return ops.sum(
            ops.reshape(features, (-1, ops.shape(weights)[1], ops.shape(features)[3])) * weights,
            axis=1,
        )

    def compute_output_shape(self, input_shapes):
        return (input_shapes[1][0], input_shapes[1][3])
