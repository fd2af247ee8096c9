"""Inference: a trained localizer run on images, for evaluation and `predict` (the test-time
views themselves, which the serving graph runs too, are `localizer.ops.views`).

predictor.py    Predictor: a .keras file or an exported SavedModel, ready to run
evaluation.py   a dataset split through a Predictor: every metric, streaming
report.py, plots.py   metrics.json, report.md and the figures
image_files.py  predictions for image files, as JSON lines, optionally drawn
annotations.py  predict's predictions as label files for labelling tools (--annotations)
demo_model.py   one photo -> predict's record, through serving_default for an export (the demo)
demo_page.py    the demo's Gradio page (python -m localizer.demo)
"""
