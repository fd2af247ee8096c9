"""Reads an Ultralytics `data.yaml` with PyYAML's safe loader, its plain values kept as text.

`load(text, path)` is `yaml.safe_load` with one difference: a plain scalar stays the text it
reads as (only an empty value, `~` and `null` are None), as Ultralytics' users read their file:
`names: [no, yes]` are the classes 'no' and 'yes' (YAML 1.1 would make them False and True),
`0: person` keys the class by '0', `val: 2024-01-01` is a folder name. The caller converts what
it uses (`nc`, `names` keys). A file PyYAML cannot read is a one-line `DatasetError` naming the
file, the line and PyYAML's reason.
"""

import yaml

from pipelines.sources.source import DatasetError

_NULL = "tag:yaml.org,2002:null"


class TextLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that resolves no plain scalar but null: numbers, booleans and dates stay
    text."""


TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == _NULL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    if any(tag == _NULL for tag, _ in resolvers)
}


def load(text, path):
    """The top-level mapping of a data.yaml text (an empty file is `{}`); DatasetError otherwise."""
    try:
        config = yaml.load(text, Loader=TextLoader)  # a SafeLoader: builds no objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path} line {mark.line + 1}" if mark else path
        parts = (getattr(error, "context", None), getattr(error, "problem", None))
        reason = ", ".join(part for part in parts if part) or str(error).splitlines()[0]
        raise DatasetError(f"{where}: not valid YAML ({reason})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise DatasetError(
            f"{path}: not a YAML mapping of 'key: value' lines (train:, val:, names:, ...)"
        )
    return config
