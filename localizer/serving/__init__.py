"""Serving: the SavedModel TF Serving runs as it is.

signatures.py   the names clients key on (signatures, inputs, outputs, assets)
graph.py        the serving graph (a tf.Module with both signatures)
folding.py      BatchNormalization folded into convolutions, for the serving graph
versions.py     numbered version folders, atomic publish, stale temporaries
export_lib.py   export_saved_model: write, verify, publish
verify.py       the checks against the Keras model (eager and TF1 session)
tflite.py       the TFLite conversion of predict_images
onnx_export.py  the ONNX conversion of predict_images, and running it with onnxruntime
"""
