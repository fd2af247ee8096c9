"""A reader for the small YAML subset of Ultralytics `data.yaml` files (no PyYAML needed).

What Ultralytics, Roboflow and CVAT write, and all this reads:

    # comments, also after a value
    path: ../datasets/coco8          # scalars, plain or 'quoted' or "quoted"
    train: images/train
    val: [images/val, images/extra]  # flow lists
    test:                            # empty: null
    nc: 2
    names:                           # a block map (index: name) ...
      0: person
      1: bicycle
    names: ['person', 'bicycle']     # ... or a flow list, or a block list of "- name" lines
    download: |                      # block scalars are read as text
      python code ...
    roboflow:                        # nested maps are kept as raw text lines
      workspace: x

Anything else (anchors, tabs, multi-document files) is a `DatasetError` naming
the line. Values stay strings (or None); the caller converts what it uses.
PyYAML would read more, but it would be a new dependency for the five keys
the `yolo` source reads.
"""

from pipelines.sources.source import DatasetError

_HINT = (
    "data.yaml is read as the YAML subset Ultralytics writes (key: value, lists, index: name maps)"
)


def strip_comment(line):
    """`line` without a trailing `# comment` (a `#` inside quotes, or glued to a word, is text)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def parse_scalar(text, where):
    """A plain or quoted scalar as a string; `''`, `~` and `null` are None."""
    text = text.strip()
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text[0] in "'\"":
        if len(text) < 2 or text[-1] != text[0]:
            raise DatasetError(f"{where}: unterminated quoted value {text!r}; {_HINT}")
        inner = text[1:-1]
        return inner.replace("''", "'") if text[0] == "'" else inner.replace('\\"', '"')
    if text[0] in "&*!|>{[@`":
        raise DatasetError(f"{where}: unsupported value {text!r}; {_HINT}")
    return text


def split_flow(text, where):
    """The items of a flow collection's inside (`a, 'b, c', d`), split on commas outside quotes."""
    items, current, quote = [], "", None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            items.append(current)
            current = ""
            continue
        current += char
    if quote:
        raise DatasetError(f"{where}: unterminated quote in {text!r}; {_HINT}")
    items.append(current)
    if items and not items[-1].strip():
        items.pop()  # a trailing comma
    return items


def parse_flow(text, where):
    """A one-line `[...]` list or `{key: value, ...}` map."""
    inner = text.strip()[1:-1]
    if text.strip().startswith("["):
        return [parse_scalar(item, where) for item in split_flow(inner, where)]
    result = {}
    for item in split_flow(inner, where):
        key, colon, value = item.partition(":")
        if not colon:
            raise DatasetError(f"{where}: {item.strip()!r} is not 'key: value'; {_HINT}")
        result[parse_scalar(key, where)] = parse_scalar(value, where)
    return result


def parse_value(text, where):
    text = text.strip()
    if (text.startswith("[") and text.endswith("]")) or (
        text.startswith("{") and text.endswith("}")
    ):
        return parse_flow(text, where)
    return parse_scalar(text, where)


class RawBlock(list):
    """The lines of a block nested deeper than this reader follows (kept as text, never a value to
    use)."""


def parse_block(lines, where):
    """An indented block: a list of `- item` lines, a map of `key: value` lines, or nested raw
    text."""
    indent = min(len(text) - len(text.lstrip(" ")) for _, text in lines)
    if any(len(text) - len(text.lstrip(" ")) > indent for _, text in lines):
        return RawBlock(
            text.strip() for _, text in lines
        )  # nested deeper (e.g. roboflow: metadata)
    items = [(number, text.strip()) for number, text in lines]
    if all(text == "-" or text.startswith("- ") for _, text in items):
        return [parse_value(text[1:], f"{where} line {number}") for number, text in items]
    result = {}
    for number, text in items:
        key, colon, value = text.partition(": ") if ": " in text else text.partition(":")
        if not colon or text.startswith("- "):
            raise DatasetError(f"{where} line {number}: {text!r} is not 'key: value'; {_HINT}")
        result[parse_scalar(key, f"{where} line {number}")] = parse_value(
            value, f"{where} line {number}"
        )
    return result


def parse_data_yaml(text, path):
    """The top-level mapping of a data.yaml text; raises DatasetError naming the line it cannot
    read."""
    result = {}
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        raw = lines[number]
        number += 1
        where = f"{path} line {number}"
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise DatasetError(f"{where}: indented with a tab; YAML indents with spaces")
        line = strip_comment(raw)
        if not line.strip() or line.strip() == "---":
            continue
        if line[0] == " ":
            raise DatasetError(f"{where}: indented line outside a block; {_HINT}")
        key, colon, value = line.partition(": ") if ": " in line else line.partition(":")
        if not colon:
            raise DatasetError(f"{where}: {line!r} is not 'key: value'; {_HINT}")
        key = parse_scalar(key, where)
        block = []
        block_scalar = value.strip() in ("|", ">", "|-", ">-", "|+", ">+")
        while number < len(lines):
            following = lines[number] if block_scalar else strip_comment(lines[number])
            # PyYAML writes a list under a key without indenting it ("names:\n- a\n- b").
            unindented_item = (
                not value.strip() and not block_scalar and following.split(" ")[0] == "-"
            )
            if following.strip() and not following.startswith(" ") and not unindented_item:
                break
            if following.strip():
                block.append((number + 1, following))
            number += 1
        if block_scalar:
            result[key] = "\n".join(text.strip() for _, text in block)
        elif block:
            if value.strip():
                raise DatasetError(f"{where}: {key} has a value and an indented block; {_HINT}")
            result[key] = parse_block(block, f"{path}")
        else:
            result[key] = parse_value(value, where)
    return result
