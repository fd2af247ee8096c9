"""Dense head on stride-16 features, two stages, 224 px (realmix).

`frozen_dense16` followed by fine-tuning: heads on 5 frozen feature passes (12
epochs), then the top 40% of the backbone (from block 10, so the stride-16
features are tuned too) fine-tuned for 10 epochs. Crops zoom in up to ~3.5x
(crop area down to 8%), so the model also sees small objects large, as the
zoomed refinement (`--refine`) shows them.

    python -m experiments.run realmix_dense16
    python -m localizer.evaluate --model=work/realmix_dense16/best.keras \
        --dataset=voc_dir --data_dir=../shared/data/realmix --refine

Result: experiments/RESULTS.md, row "realmix_dense16".
"""

from experiments.common import realmix

DENSE16 = {
    "model.attach": "dense", "model.feature_stride": 16,
    "pipeline.augment.crop_area_range": (0.08, 1.0), "fine_tune_fraction": 0.4,
}


def get_config():
    return realmix(**DENSE16)
