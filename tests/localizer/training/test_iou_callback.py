"""Tests of localizer/training/iou_callback.py: the preview grid."""

import numpy as np

from localizer.training import iou_callback


def test_prediction_grid_draws_true_green_and_predicted_red():
    images = np.zeros((4, 20, 20, 3), np.uint8)
    true = np.array([[0.1, 0.1, 0.5, 0.5]] * 4, np.float32)
    predicted = np.array([[0.5, 0.5, 0.9, 0.9]] * 4, np.float32)
    grid = iou_callback.prediction_grid(images, true, predicted, columns=3).numpy()[0]
    assert grid.shape == (40, 60, 3)  # 2 rows of 3, the sixth tile empty
    tile = grid[:20, :20]
    assert np.allclose(tile[1, 5], [0, 1, 0]) and np.allclose(
        tile[5, 1], [0, 1, 0]
    )  # the true box's edges
    assert np.allclose(tile[17, 13], [1, 0, 0]) and np.allclose(
        tile[13, 17], [1, 0, 0]
    )  # the predicted one's
    assert np.allclose(tile[5, 5], 0) and np.allclose(tile[13, 13], 0)  # inside the outlines
    assert np.allclose(grid[20:, 40:], 0)  # the padding tile
