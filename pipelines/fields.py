"""Config fields that carry their own rule, and the one checker that walks a config tree.

Every field of the config dataclasses (`TrainConfig`, `DataConfig`, `ModelConfig`,
`PipelineConfig`, `AugmentConfig`) declares what it accepts where it is declared, in the field's
metadata (Model Garden's `hyperparams` keep restrictions beside the config; here each field holds
its own):

    image_size: int = fields.field(224, fields.integer(32, 4096, multiple=32))

`check(config)` walks the tree and raises `ConfigError` naming the first field that breaks its
rule; a field without a rule is a bug (a test makes sure every field has one). Rules between
fields stay in each config's `validate()`. A field may also name the command-line flag that sets
it (`flag=` help text: `localizer.train` defines the flag from the field).
"""

import dataclasses

from pipelines.errors import UserError

RULE = "rule"
FLAG = "flag"
"""Metadata keys: the field's `Rule`; the help text of the flag that sets it, if one does."""
FLAG_ENUM = "flag_enum"
"""Metadata key: the flag lists the field's choices (`DEFINE_enum`) instead of taking any text."""


class ConfigError(UserError, ValueError):
    """A config field, or a combination of fields, is wrong (an experiment, --config or --set)."""


class Rule:
    """What a field accepts. `problem(value)`: what is wrong with `value`, in words, or None."""

    def __init__(self, optional=False):
        self.optional = optional  # None is accepted

    def problem(self, value):
        if value is None:
            return None if self.optional else "must be set"
        return self._problem(value)

    def _problem(self, value):
        raise NotImplementedError


class Number(Rule):
    def __init__(self, whole, low=None, high=None, multiple=None, optional=False):
        super().__init__(optional)
        self.whole, self.low, self.high, self.multiple = whole, low, high, multiple

    def _problem(self, value):
        if self.whole and (not isinstance(value, int) or isinstance(value, bool)):
            return "must be a whole number"
        if not _is_number(value) or value != value:  # NaN
            return "must be a number"
        if self.low is not None and value < self.low:
            return f"must be at least {self.low}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high}"
        if self.multiple and value % self.multiple:
            return f"must be a multiple of {self.multiple}"
        return None


class _Text(Rule):
    def _problem(self, value):
        return None if isinstance(value, str) and value else "must be a non-empty text"


class _Boolean(Rule):
    def _problem(self, value):
        return None if isinstance(value, bool) else "must be true or false"


class _Choice(Rule):
    def __init__(self, choices, optional=False):
        super().__init__(optional)
        self.choices = tuple(choices)

    def _problem(self, value):
        if value in self.choices:
            return None
        return f"must be one of {list(self.choices) + ([None] if self.optional else [])}"


class _Names(Rule):
    def _problem(self, value):
        ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) and v for v in value)
        return None if ok and len(set(value)) == len(value) else "must be distinct non-empty names"


class _Range(Rule):
    def __init__(self, high=None):
        super().__init__()
        self.high = high

    def _problem(self, value):
        ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_number, value))
        if not ok or not 0 < value[0] <= value[1]:
            return "must be (low, high) with 0 < low <= high"
        if self.high is not None and value[1] > self.high:
            return f"must be (low, high) with 0 < low <= high <= {self.high}"
        return None


class _Check(Rule):
    def __init__(self, function, optional=False):
        super().__init__(optional)
        self.function = function

    def _problem(self, value):
        return self.function(value)


def integer(low=None, high=None, multiple=None, optional=False):
    """A whole number in [low, high] (inclusive; None leaves a side open)."""
    return Number(True, low, high, multiple, optional)


def real(low=None, high=None, optional=False):
    """A number (int or float, not bool, not NaN) in [low, high]."""
    return Number(False, low, high, None, optional)


def text(optional=False):
    """A non-empty string."""
    return _Text(optional)


def boolean():
    return _Boolean()


def choice(choices, optional=False):
    return _Choice(choices, optional)


def names():
    """Distinct non-empty strings (a tuple or list)."""
    return _Names()


def positive_range(high=None):
    """`(low, high)` numbers with 0 < low <= high (<= `high` when given)."""
    return _Range(high)


def check_with(function, optional=False):
    """A rule of its own: `function(value)` says what is wrong in words, or None."""
    return _Check(function, optional)


def field(default=dataclasses.MISSING, rule=None, *, default_factory=dataclasses.MISSING, **meta):
    """`dataclasses.field` with the field's `rule` (and `flag=`/`flag_enum=`) in its metadata."""
    metadata = {RULE: rule, **{key: value for key, value in meta.items() if value is not None}}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def leaves(config, prefix=""):
    """`(dotted path, value, dataclasses.Field)` of every non-dataclass field of a config tree."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, f


def problem(f, value):
    """What is wrong with `value` for field `f` (a `dataclasses.Field`), or None."""
    rule = f.metadata.get(RULE)
    if rule is None:
        raise TypeError(
            f"config field {f.name} has no rule; declare it with pipelines.fields.field"
        )
    return rule.problem(value)


def check(config, prefix=""):
    """Raises `ConfigError` naming the first field of `config` that breaks its rule.

    `prefix`: the config's own path in the tree (`"model."` for a `ModelConfig`), for the message.
    """
    for path, value, f in leaves(config, prefix):
        wrong = problem(f, value)
        if wrong:
            raise ConfigError(
                f"config field {path}={value!r} {wrong}; fix it in the experiment or with "
                f"--set={path}=..."
            )
    return config


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
