"""The project's default recipe (`localizer.training.config.default_config()`) on realmix.

Centre-weighted box head on a stride-16 + stride-32 feature pyramid of
EfficientNet-Lite0 (ImageNet, offline); heads on frozen feature passes, then
the top of the backbone fine-tuned, and the box-quality head; every number is
a `TrainConfig` default. Evaluated with the zoomed refinement (`--refine`, the default).

    make train EXPERIMENT=realmix_default
    python -m experiments.run realmix_default
    python -m localizer.evaluate --model=work/realmix_default/best.keras \
        --dataset=voc_dir --data_dir=../shared/data/realmix --refine

Result: experiments/RESULTS.md, row "realmix_default".
"""

from experiments.common import default_recipe


def get_config():
    return default_recipe()
