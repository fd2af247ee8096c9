"""Names of the model's outputs: one place for the Keras model, the losses, the
metrics, inference and the serving signatures.

The inference model has exactly two outputs, `CLASS_LOGITS` and `BOX`; the
training views add `CLASS_BOXES` (per-class regression), `CENTRE_LOGITS` and
`CELL_BOXES` (the dense head) and `LOCALIZATION` (box ++ logits, for the
class-and-box metric) over the same layers.
"""

CLASS_LOGITS = "class_logits"
BOX = "box"
CLASS_BOXES = "class_boxes"
LOCALIZATION = "localization"
CENTRE_LOGITS = "centre_logits"
CELL_BOXES = "cell_boxes"
