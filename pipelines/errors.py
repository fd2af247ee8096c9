"""The base class of user mistakes: the one kind of error a command shows as one line.

Every command runs under `pipelines.cli.run`: an exception derived from
`UserError` becomes `error: <what>, <where>, <what to do>` on stderr and the
error's `exit_code`; any other exception is a bug and keeps its traceback.
A module that finds a mistake in its input defines its own subclass (one per
meaning) or raises `UserError` itself; it imports nothing but this module.
"""

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix (input, flag, file, environment); the message is the whole line.

    Like absl's `UsageError`, but for every command of this project and for the
    library code below them: library code raises it where it knows the mistake
    is the user's, and the command line shows it.
    """

    exit_code = EXIT_USER_ERROR


class FlagValueError(UserError, ValueError):
    """A flag's value is outside what it may be; the message names the flag (`--name=value`)."""
