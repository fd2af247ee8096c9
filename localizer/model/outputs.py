"""Names of the model's outputs: one place for the Keras model, the losses, the
metrics, inference and the serving signatures.

The inference model's outputs are `CLASS_LOGITS`, `BOX` and, when built with
`ModelConfig.box_quality` (models saved before it have none: code that reads
it treats it as optional), `BOX_QUALITY`; the training views add
`CLASS_BOXES` (per-class regression), `CENTRE_LOGITS` and `CELL_BOXES` (the
dense head), `LOCALIZATION` (box ++ logits, for the class-and-box metric) and
`QUALITY_AND_BOX` (quality ++ gradient-stopped box, for the box-quality loss)
over the same layers.
"""

CLASS_LOGITS = "class_logits"
BOX = "box"
CLASS_BOXES = "class_boxes"
LOCALIZATION = "localization"
CENTRE_LOGITS = "centre_logits"
CELL_BOXES = "cell_boxes"
BOX_QUALITY = "box_quality"
"""The model's estimate, in [0, 1], of the IoU of its own box with the true box (float32 `[B]`)."""
QUALITY_AND_BOX = "quality_and_box"

INFERENCE_OUTPUTS = (CLASS_LOGITS, BOX, BOX_QUALITY)
"""The inference model's outputs, in order; `BOX_QUALITY` only where the model has it."""
