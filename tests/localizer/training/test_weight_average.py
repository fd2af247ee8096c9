"""Tests of localizer/training/weight_average.py: EMA validation."""

import keras
import numpy as np

from localizer.training import weight_average


class _WeightsAtEpochEnd(keras.callbacks.Callback):
    """Records the model's weights and the optimizer's moving averages at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.weights, self.averages = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.numpy() for w in self.model.trainable_weights])
        self.averages.append(
            [a.numpy() for a in self.model.optimizer._model_variables_moving_average]
        )


def _ema_fit(initial, callbacks, epochs=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.set_weights(initial)
    model.compile(
        optimizer=keras.optimizers.AdamW(0.05, use_ema=True, ema_momentum=0.5), loss="mse"
    )
    x = np.linspace(-1, 1, 48, dtype=np.float32).reshape(16, 3)
    model.fit(
        x,
        x.sum(axis=1, keepdims=True),
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    return model


def test_validating_with_the_average_leaves_training_on_the_trained_weights():
    keras.utils.set_random_seed(0)
    initial = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)]
    ).get_weights()
    plain = _WeightsAtEpochEnd()
    reference = _ema_fit(initial, [plain])  # the moving average computed, never swapped in
    validated, after = _WeightsAtEpochEnd(), _WeightsAtEpochEnd()
    model = _ema_fit(
        initial,
        [
            weight_average.ValidateWithAverage(),
            validated,
            weight_average.RestoreTrainedWeights(),
            after,
        ],
    )
    for epoch in range(3):
        # Between the two callbacks the model holds the average of that moment ...
        for seen, average in zip(validated.weights[epoch], plain.averages[epoch], strict=False):
            np.testing.assert_allclose(seen, average, rtol=1e-5, atol=1e-6)
        if epoch < 2:  # ... and after them the trained weights, so training goes on unchanged.
            for seen, trained in zip(after.weights[epoch], plain.weights[epoch], strict=False):
                np.testing.assert_allclose(seen, trained, rtol=1e-5, atol=1e-6)
    assert not np.allclose(
        plain.weights[0][0], plain.averages[0][0]
    )  # the test can tell them apart
    # After the last epoch the average stays, in the model as in the reference's finalize.
    for final, expected in zip(model.get_weights(), reference.get_weights(), strict=False):
        np.testing.assert_allclose(final, expected, rtol=1e-5, atol=1e-6)
    for seen, average in zip(after.weights[2], plain.averages[2], strict=False):
        np.testing.assert_allclose(seen, average, rtol=1e-5, atol=1e-6)
