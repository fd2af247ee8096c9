"""The one error contract of every command line (train, evaluate, predict, export, pipelines.show).

Like absl's `app.UsageError`, but for every user mistake: an exception derived
from `pipelines.errors.UserError` (a flag error, a missing or damaged file, a
folder that cannot be written, a refused work dir, a full disk) is one line on
stderr, `error: <what>, <where>, <what to do>`, and its `exit_code` (2; 3 for a
multi-worker run whose peer is gone: rerun every worker to resume), never a
traceback (`--debug` shows it). A bad file among many is that file's line and
the others go on (exit 1, the command's own business). Anything else is a bug:
it keeps its traceback and Python's exit code 1, whatever its type (a
ValueError from Keras is no user mistake). A full disk reported by a library
(an OSError or a TensorFlow error whose words say so) is an environment
condition, not a bug: one line and exit 2 as well.

    if __name__ == "__main__":
        cli.run(main, define_flags)
"""

import os
import sys
import traceback

from absl import app, flags

from pipelines import files
from pipelines.errors import EXIT_USER_ERROR, FlagValueError, UserError

EXIT_SOME_FILES_FAILED = 1


def error_line(error):
    """`error: ...` on one line, whatever the exception's message looks like."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in message:
        message = f"{message}: {error.filename}"
    if files.is_disk_full(error) and not isinstance(error, files.DiskFullError):
        # The writers that know their file raise DiskFullError; this one's path is unknown (or just
        # named).
        message = f"{message}; free space on that disk (df -h) and run the command again"
    first = " ".join(message.strip().split())
    return f"error: {first[:2000]}"


def as_user_error(error):
    """`error` as a UserError whose line is the one it would have had.

    For an OSError or a TensorFlow error met reading files the user named (their data), converted
    at the edge where the files are known to be theirs; elsewhere such an error is a bug.
    """
    if isinstance(error, UserError):
        return error
    converted = UserError(error_line(error).removeprefix("error: "))
    converted.__cause__ = error
    return converted


def report(error):
    print(error_line(error), file=sys.stderr)
    if _debug():
        traceback.print_exception(error, file=sys.stderr)


def _debug():
    return "debug" in flags.FLAGS and flags.FLAGS["debug"].present and flags.FLAGS.debug


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(error_line(UserError(f"{error}; see --helpshort")), file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


OWN_PACKAGES = ("localizer", "pipelines")
"""Packages whose flags a command takes; absl's own and TensorFlow's stay in --helpfull."""


def adopt_own_flags(flag_values=flags.FLAGS):
    """Makes every flag our packages defined a key flag of the main module.

    absl's --help and --helpshort list only the main module's key flags: the
    dataset flags (`pipelines.dataset_flags`) and --debug (here) would be missing from
    the help that every error line points to.
    """
    main_module = sys.argv[0]  # the name absl files the main module's flags under
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if module.split(".")[0] in OWN_PACKAGES:
            for flag in module_flags:
                flag_values.register_key_flag_for_module(main_module, flag)


def run(main, define_flags):
    """Defines the flags (and --debug), then runs `main` under the error contract."""
    define_flags()
    flags.DEFINE_boolean("debug", False, "Show the traceback of an error.")
    adopt_own_flags()

    def guarded(argv):
        try:
            return main(argv)
        except UserError as error:
            _leave(error, error.exit_code)
        except Exception as error:
            # A full disk is no bug, whichever library's error says so; anything else is one.
            if not files.is_disk_full(error):
                raise
            _leave(error, EXIT_USER_ERROR)

    app.run(guarded, flags_parser=_parse_flags)


def _leave(error, code):
    report(error)
    # TF's C++ threads (tf.data, the summary writer, collectives) can crash or hang on
    # the way out after an error such as a full disk or a lost peer: leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def require_positive(value, flag):
    if value is None or value < 1:
        raise FlagValueError(f"--{flag}={value} must be at least 1")
    return value
