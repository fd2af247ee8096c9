"""What training minimizes and reports: one target per model output, the
multi-task loss, the metrics, the optimizer and its schedule (`compile_model`).
"""

import keras
import tensorflow as tf

from localizer.model import CENTRE_WEIGHTED, losses, metrics
from localizer.model.outputs import (
    BOX,
    CELL_BOXES,
    CENTRE_LOGITS,
    CLASS_BOXES,
    CLASS_LOGITS,
    LOCALIZATION,
    QUALITY_AND_BOX,
)
from pipelines.sources.source import LABEL


def training_targets(model_config):
    """Maps pipeline targets {"label", "box"} to one target per output of the training view."""
    per_class = model_config.regression == "per_class"
    centre_weighted = model_config.attach == CENTRE_WEIGHTED

    def to_targets(inputs, targets):
        label = tf.cast(targets[LABEL], tf.int32)
        box = tf.cast(targets[BOX], tf.float32)
        packed = tf.concat([box, tf.cast(label, tf.float32)[..., None]], axis=-1)
        y = {CLASS_LOGITS: label, BOX: box, LOCALIZATION: packed}
        if per_class:
            y[CLASS_BOXES] = packed
        if centre_weighted:  # both auxiliary losses derive their per-cell targets from the box
            y[CENTRE_LOGITS] = box
            y[CELL_BOXES] = box
        if (
            model_config.box_quality
        ):  # the target, the box's IoU with this box, is computed in the loss
            y[QUALITY_AND_BOX] = box
        return inputs, y

    return to_targets


def learning_rate_schedule(peak, steps_per_epoch, epochs, warmup_epochs):
    """Linear warm-up to `peak`, then cosine decay to zero."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(int(steps_per_epoch * warmup_epochs), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.01 if warmup else peak,
        decay_steps=total - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(train_model, config, peak_lr, steps_per_epoch, epochs):
    """Compiles a training view with the multi-task loss and the IoU metrics."""
    per_class = CLASS_BOXES in train_model.output
    box_output = CLASS_BOXES if per_class else BOX
    box_loss = (
        losses.PerClassBoxLoss(config.box_loss) if per_class else losses.BoxLoss(config.box_loss)
    )
    loss = {CLASS_LOGITS: losses.ClassificationLoss(config.label_smoothing), box_output: box_loss}
    loss_weights = losses.combined_loss_weights(config.alpha, box_output)
    if CENTRE_LOGITS in train_model.output:
        # The centre-weighted head's per-cell supervision, on the box side of the alpha weighting.
        loss[CELL_BOXES] = losses.CellBoxLoss(config.box_loss)
        loss[CENTRE_LOGITS] = losses.CentreLoss()
        loss_weights[CELL_BOXES] = (1.0 - config.alpha) * config.cell_box_loss_weight
        loss_weights[CENTRE_LOGITS] = (1.0 - config.alpha) * config.centre_loss_weight
    if QUALITY_AND_BOX in train_model.output:
        # On the box side too; its inputs are gradient-stopped, so it trains the quality head alone.
        loss[QUALITY_AND_BOX] = losses.BoxQualityLoss()
        loss_weights[QUALITY_AND_BOX] = (1.0 - config.alpha) * config.box_quality_loss_weight
    train_model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=learning_rate_schedule(
                peak_lr, steps_per_epoch, epochs, config.warmup_epochs
            ),
            weight_decay=config.weight_decay,
            use_ema=config.ema_momentum > 0,
            ema_momentum=config.ema_momentum or 0.99,  # Keras checks it even when unused
        ),
        loss=loss,
        loss_weights=loss_weights,
        metrics={
            CLASS_LOGITS: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            BOX: [
                metrics.MeanBoxIoU(),
                metrics.IoUAccuracy(0.5),
                metrics.IoUAccuracy(0.75),
                metrics.IoUAccuracy(0.9),
            ],
            LOCALIZATION: [metrics.LocalizationAccuracy()],
        },
        jit_compile=config.jit_compile,
    )
