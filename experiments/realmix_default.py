"""The project's default recipe (`localizer.config.default_config()`) on realmix.

Dense box head on a stride-16 + stride-32 feature pyramid of EfficientNet-Lite0
(ImageNet, offline), 224 px; heads on 5 frozen feature passes (1 plain, 4
augmented with crops zooming in up to ~3.5x; 12 epochs), then the top 40% of
the backbone fine-tuned (10 epochs, lr 1e-4). Evaluated with the zoomed
refinement (`--refine`).

    make train EXPERIMENT=realmix_default
    python -m experiments.run realmix_default
    python -m localizer.evaluate --model=work/realmix_default/best.keras \
        --dataset=voc_dir --data_dir=../shared/data/realmix --refine

Result: experiments/RESULTS.md, row "realmix_default".
"""

from experiments.common import realmix


def get_config():
    return realmix()
