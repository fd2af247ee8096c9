"""Inference: a trained localizer run on images, for evaluation, `predict` and serving.

views.py        the test-time views of an image and how their predictions merge
                (the computation the serving graph runs too)
predictor.py    Predictor: a .keras file or an exported SavedModel, ready to run
evaluation.py   a dataset split through a Predictor: every metric, streaming
report.py, plots.py   metrics.json, report.md and the figures
image_files.py  predictions for image files, as JSON lines, optionally drawn
"""
