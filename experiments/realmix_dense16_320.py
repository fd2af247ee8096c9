"""Dense head on stride-16 features, zoom-in crops, two stages (top 30%, 12 epochs), 320 px.

The dense box head on a stride-16 + stride-32 feature pyramid
(`frozen_dense16`), 320 px input (a 20x20 grid), crops that zoom in up to
~3.5x (crop area down to 8% of the image, so the model also learns objects
seen large, as the zoomed refinement shows them), then the default two stages:
heads on 5 frozen feature passes (12 epochs), top 30% of the backbone
fine-tuned (12 epochs; 30% stops short of the stride-16 block, which the
default recipe's 40% includes).

    python -m experiments.run realmix_dense16_320
    python -m localizer.evaluate --model=work/realmix_dense16_320/best.keras \
        --dataset=voc_dir --data_dir=../shared/data/realmix --refine

Result: experiments/RESULTS.md, row "realmix_dense16_320".
"""

from experiments.common import realmix


def get_config():
    return realmix(
        **{
            "model.attach": "centre_weighted",
            "model.feature_stride": 16,
            "model.image_size": 320,
            "pipeline.augment.crop_area_range": (0.08, 1.0),
            "fine_tune_epochs": 12,
            "fine_tune_fraction": 0.3,
            "best_metric": "localization_accuracy",
        }
    )
