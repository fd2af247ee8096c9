"""Computation that inference and serving share, below both (like Model Garden's `ops/`).

views.py        the test-time views of an image and how their predictions merge: the same
                graph in evaluation, `predict`, the serving signatures and the export's checks
statistics.py   the numpy evaluation figures (`summarize`, `error_breakdown`): the same in
                `evaluate`'s report and in training's validation (the IoU callback)
"""
