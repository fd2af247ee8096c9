"""The model layer: backbones, layers, heads, the functional model, losses and metrics.

    config.py       ModelConfig: where the box head attaches, how it regresses
    outputs.py      the output names every other layer keys on
    backbones.py    the registry of pretrained backbones (+ efficientnet_lite*.py,
                    torch_weights.py: EfficientNet-Lite with real ImageNet weights)
    layers.py       the custom Keras layers (no Lambda: models load with safe_mode)
    box_layers.py   the box head's geometry layers (cell boxes, attention and centre pooling)
    heads.py        the classification and box heads
    builder.py      build_model, its training views, freezing and metadata
    losses.py, metrics.py   pure functions + thin Keras wrappers (the numpy evaluation
                            statistics: localizer.ops.statistics)

The names below are the package's public API (`from localizer import model`).
"""

from localizer.model.builder import (
    Localizer,
    build_model,
    features_training_view,
    freeze_backbone,
    leaf_layers,
    model_metadata,
    prediction_view,
    training_view,
    unfreeze_top_of_backbone,
)
from localizer.model.config import (
    ATTACH_MODES,
    ATTENTION_POOLED,
    CENTRE_WEIGHTED,
    FLATTENED,
    HEAD_CONFIGURATIONS,
    LEGACY_ATTACH_NAMES,
    POOLED,
    REGRESSION_MODES,
    ModelConfig,
)
from localizer.model.heads import build_heads
from localizer.model.outputs import (
    BOX,
    BOX_QUALITY,
    CELL_BOXES,
    CENTRE_LOGITS,
    CLASS_BOXES,
    CLASS_LOGITS,
    LOCALIZATION,
    QUALITY_AND_BOX,
)

__all__ = [
    "ATTACH_MODES",
    "ATTENTION_POOLED",
    "BOX",
    "BOX_QUALITY",
    "CELL_BOXES",
    "CENTRE_LOGITS",
    "CENTRE_WEIGHTED",
    "CLASS_BOXES",
    "CLASS_LOGITS",
    "FLATTENED",
    "HEAD_CONFIGURATIONS",
    "LEGACY_ATTACH_NAMES",
    "LOCALIZATION",
    "POOLED",
    "QUALITY_AND_BOX",
    "REGRESSION_MODES",
    "Localizer",
    "ModelConfig",
    "build_heads",
    "build_model",
    "features_training_view",
    "freeze_backbone",
    "leaf_layers",
    "model_metadata",
    "prediction_view",
    "training_view",
    "unfreeze_top_of_backbone",
]
