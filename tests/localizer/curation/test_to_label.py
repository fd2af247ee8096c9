"""`python -m localizer.select` (localizer.curation.to_label) with the tiny model on a few small
photos: the list, its file, a bad photo among good ones, exact duplicates."""

import io
import os
import shutil

import pytest

from localizer.curation import to_label
from pipelines.errors import FlagValueError
from tests import fixtures
from tests.localizer.test_commands import assert_user_error, run

PHOTOS = {  # name: (height, width, objects)
    "a.jpg": (48, 64, [("cat", (10, 8, 40, 36))]),
    "b.png": (64, 48, [("dog", (4, 20, 40, 60))]),
    "c.jpg": (56, 56, [("plate", (30, 2, 54, 20))]),
    "d.png": (40, 72, [("cat", (2, 2, 20, 20)), ("dog", (30, 10, 70, 38))]),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 64 px tiny model whose outputs depend on the image; a folder of four photos, an exact
    copy of the first under another name, and a file that is no image."""
    root = tmp_path_factory.mktemp("select")
    model = str(root / "tiny.keras")
    fixtures.tiny_model(randomize=True, image_size=64).save(model)
    photos = root / "photos"
    photos.mkdir()
    for seed, (name, (height, width, objects)) in enumerate(PHOTOS.items()):
        fixtures.write_image(str(photos / name), fixtures.make_image(height, width, objects, seed))
    shutil.copyfile(photos / "a.jpg", photos / "a copy.jpg")
    (photos / "broken.jpg").write_bytes(b"not a photo\n" * 8)
    return {"model": model, "photos": str(photos)}


def test_the_list_a_bad_photo_and_a_duplicate(world, tmp_path):
    out = tmp_path / "to_label.txt"
    result = run(
        "localizer.select",
        f"--model={world['model']}",
        world["photos"],
        "--budget=10",
        f"--out={out}",
    )
    assert result.returncode == 1, result.stderr[-3000:]  # one photo could not be read
    assert "Traceback" not in result.stderr and "error: " not in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("not ranked: ")]
    assert len(failed) == 1 and "broken.jpg" in failed[0], result.stderr[-3000:]
    header, *listed = out.read_text().splitlines()
    assert header.startswith(to_label.LIST_MARK)
    names = [os.path.basename(line) for line in listed]
    # Five readable photos, two of them one photo: four chosen, the copy or its original.
    assert len(names) == 4 and {"b.png", "c.jpg", "d.png"} < set(names)
    assert len({"a.jpg", "a copy.jpg"} & set(names)) == 1
    table = result.stdout.splitlines()
    assert table[0].split()[:7] == ["rank", "value", "box", "class", "looks", "why", "guess"]
    assert [line.split()[0] for line in table[1:5]] == ["1", "2", "3", "4"]
    assert [line for line in table if line.endswith(listed[0])]  # the table's order is the list's
    assert "near-duplicates" in result.stdout and "of 5 ranked photos" in table[-1]


def test_a_file_the_user_brought_is_never_written_over(world, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my own notes\n")
    result = run(
        "localizer.select",
        f"--model={world['model']}",
        world["photos"],
        "--budget=2",
        f"--out={notes}",
    )
    assert_user_error(result, "select did not write it")
    assert notes.read_text() == "my own notes\n"
    with pytest.raises(to_label.ListFileError, match="is a folder"):
        to_label.run(world["model"], [world["photos"]], 2, out_path=str(tmp_path))


def test_its_own_list_is_replaced(world, tmp_path):
    out = tmp_path / "list.txt"
    photos = [os.path.join(world["photos"], name) for name in PHOTOS]
    for budget in (3, 2):
        stdout = io.StringIO()
        failures = to_label.run(world["model"], photos, budget, str(out), stdout=stdout)
        assert failures == 0
        assert len(out.read_text().splitlines()) == 1 + budget
    assert not [name for name in os.listdir(tmp_path) if name != "list.txt"]  # no temporary left
    assert f"list: {out}" in stdout.getvalue()


@pytest.mark.parametrize("budget", [0, -3, None])
def test_a_budget_below_one_is_refused(world, budget):
    with pytest.raises(FlagValueError, match=f"--budget={budget} must be"):
        to_label.run(world["model"], [world["photos"]], budget)


def test_a_list_line_never_reads_as_a_comment():
    assert to_label.list_line("#1.jpg") == os.path.join(".", "#1.jpg")
    assert to_label.list_line("new\nline.jpg") == "new\\nline.jpg"
    assert to_label.list_line("photos/#1.jpg") == "photos/#1.jpg"
