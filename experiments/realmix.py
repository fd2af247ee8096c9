"""Steps of the ladder on realmix that are recipes of their own, and the default's noise.

`conv_two_stage`: the first ladder's recipe (`experiments.common.CONV_RECIPE`: flatten + dense box
head on stride-32 features) in two stages, heads on frozen feature passes then the top 30% of the
backbone fine-tuned. `dense16_320`: the dense (centre-weighted) box head on stride-16 + stride-32
features at 320 px (a 20x20 grid), crops that zoom in up to ~3.5x (crop area down to 8%), the top
30% fine-tuned for 12 epochs. `default_seed1`: the default recipe with seed 1, how much of a
difference between its rows is noise.

    python -m experiments.run realmix_conv_two_stage    # by name: realmix_<variant>
    python -m localizer.train --config=experiments/realmix.py:dense16_320 \
        --workdir=work/realmix_dense16_320
    python -m localizer.evaluate --model=work/realmix_dense16_320/best.keras \
        --dataset=voc_dir --data_dir=../shared/data/realmix --refine

Results: experiments/RESULTS.md, rows "realmix_*".
"""

from experiments.common import CONV_RECIPE, default_recipe, variant

VARIANTS = {
    "conv_two_stage": CONV_RECIPE,
    "dense16_320": {
        "model.attach": "centre_weighted",
        "model.feature_stride": 16,
        "model.image_size": 320,
        "pipeline.augment.crop_area_range": (0.08, 1.0),
        "fine_tune_epochs": 12,
        "fine_tune_fraction": 0.3,
        "best_metric": "localization_accuracy",
    },
    "default_seed1": {"seed": 1},
}


def get_config(arg="default_seed1"):
    return default_recipe(**variant(VARIANTS, arg, __file__))
