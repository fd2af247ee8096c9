"""Validating on the weights' moving average (`TrainConfig.ema_momentum`): a pair of callbacks that
put the optimizer's averages into the model around the callbacks between them.
"""

import keras


def _ema_pairs(optimizer):
    """`[(weight, its moving average), ...]` of an optimizer built with `use_ema=True`."""
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not averages:
        raise ValueError(
            "ema_momentum > 0 needs the optimizer's moving averages (AdamW(use_ema=True)), built."
        )
    return list(zip(optimizer._trainable_variables, averages, strict=True))


def _swap_with_average(optimizer):
    """Exchanges the values of the trained weights and their moving averages."""
    for weight, average in _ema_pairs(optimizer):
        trained = weight.numpy()
        weight.assign(average)
        average.assign(trained)


class ValidateWithAverage(keras.callbacks.Callback):
    """At each epoch's end, the weights' moving average goes into the model until
    `RestoreTrainedWeights`.

    The callbacks listed between the two (the IoU callback: validation and
    best.keras) see the averaged weights; those after it (the backup) save the
    trained weights and their average as the optimizer holds them, so a
    resumed run continues exactly. After the stage's last epoch the average
    stays: it is what the stage hands on (final.keras, the next stage).
    Keras' SwapEMAWeights swaps for the callbacks after it, backups included,
    and so resumes from the average.
    """

    def on_epoch_end(self, epoch, logs=None):
        _swap_with_average(self.model.optimizer)


class RestoreTrainedWeights(keras.callbacks.Callback):
    """Undoes `ValidateWithAverage` after the callbacks between them; after the last epoch, keeps
    the average."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params["epochs"]:
            _swap_with_average(self.model.optimizer)
            return
        for weight, trained in _ema_pairs(self.model.optimizer):
            trained.assign(
                weight
            )  # fit's finalize_variable_values then leaves the average in place
