"""localizer: single-object localization (one class label, one box per image).

Boxes are normalized [ymin, xmin, ymax, xmax] everywhere inside; see
`pipelines.boxes.BOX_FORMAT`.
"""

__version__ = "0.1.0"
