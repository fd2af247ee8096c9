"""The select command's work: photos ranked, the chosen ones shown as a table and written as a
list file.

The list file (`--out`) has one path per line, most valuable first, under a first line that
marks it as select's (`LIST_MARK`; lines that start with `#` are comments): an existing file
is replaced only when it carries that mark, atomically, so a user's own file is never written
over and a kill leaves the old list or the new one.
"""

import os
import sys

import numpy as np

from localizer.curation import selection
from localizer.inference import image_files
from localizer.inference.predictor import Predictor
from pipelines import files, image_header
from pipelines.errors import FlagValueError, UserError

LIST_MARK = "# localizer select"
"""How the list file begins: only a file that begins so is ever replaced."""

MARK_BYTES = 4096
"""How much of an existing `--out` file is read to find the mark."""


class ListFileError(UserError, ValueError):
    """`--out` names a folder, or a file that select did not write."""


def check_list_file(path):
    """Refuses an `--out` that is a folder or a file without `LIST_MARK`, and proves its folder
    writable now, before the photos are looked at; returns `path`."""
    if os.path.isdir(path):
        raise ListFileError(f"--out={path} is a folder; name the list file to write")
    if os.path.lexists(path) and not _carries_mark(path):
        raise ListFileError(
            f"--out={path} exists and select did not write it (its first line is not "
            f"{LIST_MARK!r}); choose another --out, or remove the file yourself"
        )
    files.check_writable_folder(
        os.path.dirname(path) or ".", "--out folder", todo="choose another --out"
    )
    return path


def _carries_mark(path):
    try:
        with open(path, "rb") as f:
            return f.read(MARK_BYTES).startswith(LIST_MARK.encode())
    except OSError:  # a broken link, a file we may not read: not ours
        return False


def list_line(path):
    """`path` as a line of the list: whole, its unprintable characters escaped
    (`image_files.printable`), and `./` before a relative path that begins with `#` (it would read
    as a comment)."""
    line = image_files.printable(path)
    return f".{os.sep}{line}" if line.startswith("#") else line


def write_list(path, chosen_paths, header):
    """Writes the list file atomically: `LIST_MARK` and `header` on the first line, then one path
    a line."""
    text = "".join(
        f"{line}\n" for line in [f"{LIST_MARK}: {header}", *map(list_line, chosen_paths)]
    )

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)

    files.atomic_write(path, write)


def table(candidates, scores, chosen, class_names):
    """The chosen photos as text lines: rank, value, its three parts, why, the model's guess of
    the class, path (last: it may hold spaces)."""
    reasons = scores.reasons()
    guesses = [class_names[i] for i in np.argmax(candidates.probabilities, axis=-1)]
    columns = ("rank", "value", *selection.WEIGHTS, "why", "guess")
    rows = []
    for rank, index in enumerate(chosen, 1):
        parts = [
            f"{scores.parts[name][index]:.2f}" if name in scores.parts else "-"
            for name in selection.WEIGHTS
        ]
        rows.append(
            (str(rank), f"{scores.values[index]:.3f}", *parts, reasons[index], guesses[index])
        )
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    numbers = len(columns) - 2  # right-aligned; why and guess are words

    def line(row, path):
        cells = zip(row, widths, strict=True)
        return "  ".join(
            [cell.rjust(w) if i < numbers else cell.ljust(w) for i, (cell, w) in enumerate(cells)]
            + [path]
        )

    return [line(columns, "path")] + [
        line(row, image_files.printable(candidates.paths[index]))
        for row, index in zip(rows, chosen, strict=True)
    ]


def listed_images(paths, stderr=None):
    """The image files of `paths` (folders listed, each file once); a `warning:` line on `stderr`
    for a folder without any, NoImagesError when no path gives one."""
    found = {path: list(image_files.image_files([path])) for path in dict.fromkeys(paths)}
    empty = [image_files.printable(path) for path, names in found.items() if not names]
    listed = image_files.distinct_files(name for path in paths for name in found[path])
    what = (
        f"{'folder' if len(empty) == 1 else 'folders'} {', '.join(empty)} "
        f"{'holds' if len(empty) == 1 else 'hold'} no image file (select looks for "
        f"{' '.join(image_header.IMAGE_EXTENSIONS)} in any letter case; subfolders are not "
        "searched)"
    )
    if not listed:
        raise image_files.NoImagesError(f"{what}; give image files, or a folder that holds them")
    if empty:
        print(
            f"warning: {what}; nothing ranked from {'it' if len(empty) == 1 else 'them'}",
            file=stderr or sys.stderr,
        )
    return listed


def check_duplicate_similarity(value):
    if value is not None and not 0.0 < value <= 1.0:
        raise FlagValueError(
            f"--duplicate_similarity={value} is not in (0, 1]; it is a cosine similarity "
            "(leave it out for the calibrated threshold)"
        )
    return value


def run(
    model_path,
    paths,
    budget,
    out_path=None,
    duplicate_similarity=None,
    max_image_pixels=image_header.MAX_IMAGE_PIXELS,
    batch_size=selection.BATCH_SIZE,
    stdout=None,
    stderr=None,
):
    """Ranks the photos of `paths`, prints the chosen ones as a table (and the near-duplicates
    skipped) to `stdout`, writes `out_path`; returns the number of files that could not be read
    (each one line on `stderr`).

    Mistakes of the whole run (the budget, `out_path`, the model, no image at all) raise before
    any photo is looked at.
    """
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if budget is None or budget < 1:
        raise FlagValueError(f"--budget={budget} must be a whole number of photos, at least 1")
    check_duplicate_similarity(duplicate_similarity)
    image_header.check_pixel_limit(max_image_pixels)
    if out_path:
        check_list_file(out_path)
    listed = listed_images(paths, stderr)
    predictor = Predictor(model_path)
    candidates, failures = selection.candidates_from_files(
        predictor, listed, max_image_pixels, batch_size
    )
    for failure in failures:
        print(f"not ranked: {failure.message}", file=stderr)
    scores = selection.value_scores(candidates)
    chosen, skipped = selection.choose_explained(candidates, budget, duplicate_similarity)
    for line in table(candidates, scores, chosen, predictor.class_names):
        print(line, file=stdout)
    if skipped:
        print("skipped, near-duplicates of a chosen photo:", file=stdout)
        for index, of in skipped.items():
            print(
                f"  {image_files.printable(candidates.paths[index])} "
                f"(of {image_files.printable(candidates.paths[of])})",
                file=stdout,
            )
    summary = (
        f"{len(chosen)} of {len(candidates)} ranked photos chosen"
        f"{f', {len(failures)} could not be read' if failures else ''}"
    )
    if out_path:
        write_list(
            out_path,
            [candidates.paths[i] for i in chosen],
            f"--model={image_files.printable(model_path)} --budget={budget}: {summary}",
        )
        summary += f"; list: {out_path}"
    print(summary, file=stdout)
    return len(failures)
