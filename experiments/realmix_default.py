"""The project's default recipe (`localizer.training.config.default_config()`) on realmix.

Centre-weighted box head on a stride-16 + stride-32 feature pyramid of
EfficientNet-Lite0 (ImageNet, offline) and the box-quality head; heads on
frozen feature passes, then the whole backbone fine-tuned (BatchNorm frozen)
for 40 epochs (`boxes_fine_tune_all` and `boxes_long_schedule`
together); every number is a `TrainConfig` default. Evaluated with the zoomed refinement
(`--refine`, the default).

    make train EXPERIMENT=realmix_default
    python -m experiments.run realmix_default
    python -m localizer.evaluate --model=work/realmix_default/best.keras \
        --dataset=voc_dir --data_dir=../shared/data/realmix --refine

Result: experiments/RESULTS.md, row "realmix_default".
"""

from experiments.common import default_recipe


def get_config():
    return default_recipe()
