"""The names of an example's parts: the keys of every dict the data pipeline passes along.

A source yields dicts with `IMAGE` (uint8 `[H, W, 3]` pixels or encoded bytes) or instead
`IMAGE_PATH` (a file path), `LABEL` (int32 class index), `BOX` (float32 `[4]`,
`pipelines.boxes.BOX_FORMAT`) and `ID` (a `tf.string` naming the example); see
`pipelines.sources.source` for what each holds where.
"""

IMAGE = "image"
IMAGE_PATH = "image_path"
LABEL = "label"
BOX = "box"
ID = "id"
