"""What the demo page runs: one photo file -> predict's JSON record and the upright image.

It serves what the model serves. An export's version folder answers through its
`serving_default` signature (encoded bytes in, as TF Serving runs it: the
export's own decoding, EXIF orientation, refinement and pixel limit); a `.keras`
(or `.tflite`, `.onnx`) file through `Predictor`, the path `predict` runs, with
predict's defaults (one view, refined). Both records come from
`image_files.prediction_record`, so the page's JSON is the line `predict` prints.
"""

import os

import tensorflow as tf

from localizer.inference import image_files
from localizer.inference.predictor import Predictor, load_saved_model
from localizer.ops import statistics
from localizer.serving import signatures
from pipelines import image_header

PREDICT_REFINE = True
"""predict's default (`--refine`): a `.keras` model takes the second, zoomed look, as there."""

DEFAULT_MIN_BOX_QUALITY = statistics.LOC_IOU_THRESHOLD
"""Where the page marks a box unsure: a predicted IoU under the localization criterion's, i.e. a
box the model itself expects not to count as found."""


class ServingDefault:
    """An export's version folder, run through `serving_default` (one photo's bytes per call)."""

    def __init__(self, path):
        self.path = path
        self._loaded, self.metadata = load_saved_model(path)  # one-line errors for a bad folder
        self._serve = self._loaded.signatures[signatures.SERVING_SIGNATURE]
        self.has_box_quality = signatures.OUTPUT_BOX_QUALITY in self._serve.structured_outputs

    @property
    def class_names(self):
        return self.metadata["class_names"]

    def predict_bytes(self, data):
        """Encoded image bytes -> `(box [4] BOX_FORMAT of the upright image, probabilities [C],
        box quality or None)`; raises InvalidArgumentError where the graph refuses the bytes."""
        outputs = self._serve(**{signatures.BYTES_INPUT: tf.constant([data])})
        quality = outputs.get(signatures.OUTPUT_BOX_QUALITY)
        return (
            outputs[signatures.OUTPUT_BOX][0].numpy(),
            outputs[signatures.PROBABILITIES][0].numpy(),
            None if quality is None else float(quality[0]),
        )


class DemoModel:
    """A model path as the demo runs it (see the module docstring).

    `min_box_quality`: where `"unsure": true` starts; None gives `DEFAULT_MIN_BOX_QUALITY` to a
    model with a box-quality head (none to a model without). A value given for a model without
    the head, or outside [0, 1], is refused as predict refuses it.
    """

    def __init__(self, path, min_box_quality=None, max_image_pixels=image_header.MAX_IMAGE_PIXELS):
        self.path = path
        self.max_image_pixels = image_header.check_pixel_limit(max_image_pixels)
        if os.path.isdir(path):
            self.serving = ServingDefault(path)
            self.predictor = None
        else:
            self.serving = None
            self.predictor = Predictor(path)
        model = self.serving or self.predictor
        self.class_names = list(model.class_names)
        self.has_box_quality = model.has_box_quality
        image_files.check_min_box_quality(self, min_box_quality)
        if min_box_quality is None and self.has_box_quality:
            min_box_quality = DEFAULT_MIN_BOX_QUALITY
        self.min_box_quality = min_box_quality

    @property
    def runs(self):
        """What answers, in words, for the page."""
        if self.serving:
            return f"the export's {signatures.SERVING_SIGNATURE} signature"
        return "the model as predict runs it"

    def predict(self, path, name):
        """`(record, upright image)` for the photo file `path`, the record's `"file"` being `name`.

        The header is checked before anything is decoded (format, pixel limit, truncation: as
        predict's `read_image`). Raises what predict catches per file: OSError, ImageHeaderError,
        InvalidArgumentError.
        """
        if self.predictor:
            record, image = image_files.predict_file(
                self.predictor,
                path,
                refine=PREDICT_REFINE,
                max_image_pixels=self.max_image_pixels,
                min_box_quality=self.min_box_quality,
            )
            return {**record, "file": name}, image
        image = image_files.read_image(path, self.max_image_pixels)  # checked, upright: drawn
        with open(path, "rb") as f:
            box, probabilities, quality = self.serving.predict_bytes(f.read())
        height, width = image.shape[:2]
        record = image_files.prediction_record(
            name, self.class_names, box, probabilities, quality, height, width, self.min_box_quality
        )
        return record, image
