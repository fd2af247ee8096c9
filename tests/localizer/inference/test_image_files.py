"""Tests of localizer/inference/image_files.py: what predict reads and draws."""

import io
import json
import os

import pytest

from localizer.inference import image_files
from pipelines import image_header
from tests import fixtures


def test_drawings_never_collide_or_land_among_inputs(tmp_path):
    names = image_files.drawing_names(["a/photo.jpg", "a/photo.png", "b/photo.jpg"])
    assert len(set(names.values())) == 3
    assert all(name.endswith(image_files.DRAWING_SUFFIX) for name in names.values())
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "photo.jpg").write_bytes(b"x")
    for draw_dir, inputs in ((photos, [str(photos)]), (photos, [str(photos / "photo.jpg")])):
        with pytest.raises(image_files.DrawDirError, match="holds the input"):
            image_files.check_draw_dir(str(draw_dir), inputs)
    image_files.check_draw_dir(str(tmp_path / "drawn"), [str(photos)])


def test_a_photo_with_a_long_name_is_drawn_under_a_name_that_fits(tmp_path, tiny_model_path):
    from pipelines import files

    folder = tmp_path / "photos"
    folder.mkdir()
    name = "猫" * 76 + ".jpg"  # 232 bytes: legal, but not with ".pred.png" after it
    fixtures.write_image(str(folder / name), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))]))
    out = io.StringIO()
    failures = image_files.run(
        tiny_model_path, [str(folder)], draw_dir=str(tmp_path / "drawn"), out=out, refine=False
    )
    assert failures == 0 and "class" in json.loads(out.getvalue())
    (drawing,) = os.listdir(tmp_path / "drawn")
    assert drawing == files.fitting_name(name + image_files.DRAWING_SUFFIX)
    assert drawing.endswith(".jpg.pred.png")


BOMBS = {
    "bomb.png": fixtures.png_bomb,
    "bomb.gif": fixtures.gif_bomb,
    "bomb.webp": fixtures.webp_bomb,
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_are_refused_from_their_header(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BOMBS[name]())
    assert path.stat().st_size < 1000
    with pytest.raises(image_header.ImageTooLargeError, match="over the limit"):
        image_files.read_image(str(path))
    assert image_header.check_image_file(str(path), max_pixels=0).width > 10_000  # 0: no limit


def test_predict_goes_on_after_a_bomb_and_an_unsupported_file(tmp_path, tiny_model_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_bomb.png").write_bytes(fixtures.png_bomb())
    (folder / "b_scan.tiff").write_bytes(b"II*\0" + b"\0" * 64)
    fixtures.write_image(
        str(folder / "c_good.png"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    fixtures.write_image(str(folder / "d_tiny.png"), fixtures.make_image(1, 1, []))
    (folder / "notes.txt").write_text("not an image")
    out = io.StringIO()
    failures = image_files.run(
        tiny_model_path, [str(folder)], draw_dir=str(tmp_path / "drawn"), out=out, refine=False
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    names = [os.path.basename(line["file"]) for line in lines]
    assert names == ["a_bomb.png", "b_scan.tiff", "c_good.png", "d_tiny.png"]
    assert (
        failures == 2
        and "over the limit" in lines[0]["error"]
        and "not supported" in lines[1]["error"]
    )
    assert "class" in lines[2] and "warning" not in lines[2] and "under 8 px" in lines[3]["warning"]
    assert sorted(os.listdir(tmp_path / "drawn")) == ["c_good.png.pred.png", "d_tiny.png.pred.png"]


def test_predict_never_replaces_a_file_it_did_not_draw(tmp_path, tiny_model_path):
    photo = tmp_path / "a.png"
    fixtures.write_image(str(photo), fixtures.make_image(40, 50, []))
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    (drawn / "a.png.pred.png").write_bytes(b"precious user file")
    with pytest.raises(image_files.DrawDirError, match="did not write"):
        image_files.run(tiny_model_path, [str(photo)], draw_dir=str(drawn), out=io.StringIO())
    assert (drawn / "a.png.pred.png").read_bytes() == b"precious user file"
    (drawn / "a.png.pred.png").unlink()
    out = io.StringIO()
    for _ in range(2):  # its own drawing is replaced
        assert (
            image_files.run(
                tiny_model_path, [str(photo)], draw_dir=str(drawn), out=out, refine=False
            )
            == 0
        )


def test_a_file_given_three_times_is_predicted_and_drawn_once(
    tmp_path, tiny_model_path, monkeypatch
):
    photos = tmp_path / "photos"
    photos.mkdir()
    fixtures.write_image(
        str(photos / "a.png"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    (tmp_path / "other").mkdir()
    fixtures.write_image(str(tmp_path / "other" / "a.png"), fixtures.make_image(40, 50, []))
    monkeypatch.chdir(tmp_path)
    inputs = ["photos/a.png", "./photos/a.png", str(photos), "other/a.png", "photos/a.png"]
    listed = [
        "photos/a.png",
        "./photos/a.png",
        str(photos / "a.png"),
        "other/a.png",
        "photos/a.png",
    ]
    assert image_files.drawing_names(listed) == {
        "photos/a.png": "a.png.pred.png",
        "other/a.png": "a.png-2.pred.png",
    }
    out = io.StringIO()
    failures = image_files.run(
        tiny_model_path, inputs, draw_dir=str(tmp_path / "drawn"), out=out, refine=False
    )
    files = [json.loads(line)["file"] for line in out.getvalue().splitlines()]
    assert failures == 0 and files == ["photos/a.png", "other/a.png"]
    assert sorted(os.listdir(tmp_path / "drawn")) == ["a.png-2.pred.png", "a.png.pred.png"]


def test_an_output_folder_that_is_a_file_is_named_so(tmp_path):
    from pipelines import files

    blocker = tmp_path / "drawn"
    blocker.write_text("the user's notes")
    with pytest.raises(OSError, match=f"--draw_dir {blocker} is a file, not a folder"):
        image_files.check_draw_dir(str(blocker), [str(tmp_path / "photos")])
    with pytest.raises(
        OSError, match=f"report dir {blocker} is a file, not a folder; choose another"
    ):
        files.check_writable_folder(str(blocker), "report dir", todo="choose another --report_dir")
    assert blocker.read_text() == "the user's notes"


def test_predict_keeps_a_file_name_with_a_line_break_whole_in_its_error(tmp_path, tiny_model_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = folder / "new\nline.jpg"
    odd.write_bytes(b"not an image at all")
    missing = tmp_path / "gone\n\u2028away.png"
    assert (
        image_files._one_line(OSError(2, "No such file or directory", str(missing)))
        == f"{tmp_path}/gone\\n\\u2028away.png: No such file or directory"
    )
    out = io.StringIO()
    failures = image_files.run(tiny_model_path, [str(folder), str(missing)], out=out, refine=False)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert failures == 2 and [line["file"] for line in lines] == [str(odd), str(missing)]
    assert lines[0]["error"].startswith(f"{folder}/new\\nline.jpg: not a JPEG"), lines[0]
    assert lines[1]["error"] == f"{tmp_path}/gone\\n\\u2028away.png: no such file", lines[1]


def test_predict_lists_broken_links_in_a_folder_each_with_its_line(tmp_path, tiny_model_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    fixtures.write_image(
        str(folder / "a_good.png"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    os.symlink(tmp_path / "moved.jpg", folder / "b_dangling.jpg")
    os.symlink(
        tmp_path / "moved.jpg", folder / "c_dangling_too.jpg"
    )  # the same missing target: its own line
    os.symlink(folder / "d_loop_b.png", folder / "d_loop_a.png")
    os.symlink(folder / "d_loop_a.png", folder / "d_loop_b.png")
    (folder / "e_album.jpg").mkdir()  # a folder named like an image is no input
    out = io.StringIO()
    failures = image_files.run(
        tiny_model_path, [str(folder), str(folder / "b_dangling.jpg")], out=out, refine=False
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [os.path.basename(line["file"]) for line in lines] == [
        "a_good.png",
        "b_dangling.jpg",
        "c_dangling_too.jpg",
        "d_loop_a.png",
        "d_loop_b.png",
    ]
    assert failures == 4 and "class" in lines[0]
    for line in lines[1:3]:
        assert line["error"] == (
            f"{line['file']}: no such file (broken link to {tmp_path}/moved.jpg, which does not "
            f"exist); fix or remove the link"
        )
    for line in lines[3:]:
        assert line["error"].startswith(
            f"{line['file']}: no such file (broken link: a loop of links"
        ), line


def test_predict_on_folders_without_image_files_says_so(tmp_path, tiny_model_path, capsys):
    empty = tmp_path / "scans"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    (empty / "inner").mkdir()
    fixtures.write_image(
        str(empty / "inner" / "deep.png"), fixtures.make_image(40, 50, [])
    )  # not searched
    also_empty = tmp_path / "nothing"
    also_empty.mkdir()
    out = io.StringIO()
    with pytest.raises(image_files.NoImagesError) as error:
        image_files.run(tiny_model_path, [str(empty), str(also_empty)], out=out)
    assert str(error.value) == (
        f"folders {empty}, {also_empty} hold no image file (predict looks for .jpg .jpeg .jpe "
        ".jfif .png .gif .bmp .webp in any letter case; subfolders are not searched); give image "
        "files, or a folder that holds them"
    )
    assert out.getvalue() == ""
    photos = tmp_path / "photos"
    photos.mkdir()
    fixtures.write_image(
        str(photos / "a.PNG"), fixtures.make_image(40, 50, [("cat", (5, 5, 30, 30))])
    )
    assert image_files.run(tiny_model_path, [str(empty), str(photos)], out=out, refine=False) == 0
    assert [json.loads(line)["file"] for line in out.getvalue().splitlines()] == [
        str(photos / "a.PNG")
    ]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: folder {empty} holds no image file (predict looks for .jpg .jpeg .jpe .jfif "
        ".png .gif .bmp .webp in any letter case; subfolders are not searched); nothing predicted "
        "from it"
    ]


def test_predict_cli_lines_errors_and_exit_code(tmp_path, voc_folder, per_class_model_path):
    import subprocess
    import sys

    images = os.path.join(voc_folder, "JPEGImages")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localizer.predict",
            f"--model={per_class_model_path}",
            f"--draw_dir={tmp_path / 'drawn'}",
            images,
            str(broken),
            str(tmp_path / "missing.png"),
        ],
        cwd=fixtures.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    good = [record for record in lines if "error" not in record]
    bad = {os.path.basename(record["file"]) for record in lines if "error" in record}
    assert len(good) == 6 and bad == {"broken.jpg", "missing.png"}
    record = good[0]
    assert record["class"] in fixtures.CLASSES and len(record["top5"]) == 3
    height, width = record["image_size"]
    xmin, ymin, xmax, ymax = record["box_pixels_xyxy"]
    assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
    assert len(os.listdir(tmp_path / "drawn")) == 6


def _predict_records(model_path, voc_folder, **kwargs):
    import io

    out = io.StringIO()
    failures = image_files.run(
        model_path, [os.path.join(voc_folder, "JPEGImages")], out=out, **kwargs
    )
    assert failures == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_predict_gives_box_quality_and_marks_unsure_boxes(
    tmp_path, voc_folder, per_class_model_path
):
    records = _predict_records(per_class_model_path, voc_folder)
    assert records and all(0.0 <= r["box_quality"] <= 1.0 and "unsure" not in r for r in records)
    # A threshold halfway between two of the (4-decimal) qualities, so rounding cannot decide a
    # side.
    qualities = sorted({r["box_quality"] for r in records})
    middle = len(qualities) // 2
    cut = (
        (qualities[middle - 1] + qualities[middle]) / 2
        if len(qualities) > 1
        else qualities[0] + 0.01
    )
    marked = _predict_records(
        per_class_model_path, voc_folder, min_box_quality=cut, draw_dir=str(tmp_path / "d")
    )
    assert [r.get("unsure", False) for r in marked] == [r["box_quality"] < cut for r in marked]
    assert any(r.get("unsure") for r in marked)
    assert len(os.listdir(tmp_path / "d")) == len(records)
    with pytest.raises(ValueError, match="min_box_quality=1.5 is not in"):
        _predict_records(per_class_model_path, voc_folder, min_box_quality=1.5)


def test_min_box_quality_is_refused_for_a_model_without_box_quality(tmp_path, voc_folder):
    path = str(tmp_path / "old.keras")
    fixtures.tiny_model(box_quality=False).save(path)
    assert all("box_quality" not in r for r in _predict_records(path, voc_folder))
    with pytest.raises(ValueError, match="has no box_quality output"):
        _predict_records(path, voc_folder, min_box_quality=0.5)
