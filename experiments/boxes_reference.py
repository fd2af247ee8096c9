"""The default recipe before issue 14's better-boxes candidates (`experiments.common.candidate`, no
change): their reference.

    python -m experiments.run boxes_reference

Its record is the run of `realmix_default` at commit 7f33655, when this was
the default (the same config; its command column says so).
Result: experiments/RESULTS.md, row "boxes_reference".
"""

from experiments.common import candidate


def get_config():
    return candidate()
