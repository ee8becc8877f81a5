"""Bad inputs on the command line, generated here (no committed binaries): each error case exits
non-zero with one clear line and writes nothing; each case that is not an error works."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES

D3DFACE = Path(sys.executable).parent / "d3dface"
FACE = IMAGES / "faces" / "frontal_man_224.jpg"


def _run(*args):
    return subprocess.run([D3DFACE, *map(str, args)], capture_output=True, text=True)


def _one_error_line(res, expect: str):
    assert res.returncode != 0, res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("d3dface: error:")]
    others = [line for line in res.stderr.splitlines() if line and not line.startswith("d3dface: note:")]
    assert len(errors) == 1 and others == errors, res.stderr
    assert expect in errors[0], errors[0]
    assert "Traceback" not in res.stderr


def make_image(kind: str, folder: Path) -> Path:
    src = cv2.imread(str(FACE))
    p = folder / {"empty": "empty.jpg", "text": "text.jpg", "trunc_jpg": "trunc.jpg", "trunc_png": "trunc.png",
                  "tiny": "tiny.png", "huge": "huge.png", "noface": "noface.png", "gray": "gray.png", "cmyk": "cmyk.jpg",
                  "png16": "sixteen.png", "rgba": "rgba.png", "gif": "anim.gif", "three": "three.png",
                  "unicode": "ünïcødé fäce.png"}[kind]
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is not a photo")
    elif kind == "trunc_jpg":
        data = (IMAGES / "faces" / "smiling_woman_450.jpg").read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif kind == "trunc_png":
        ok, buf = cv2.imencode(".png", src)
        p.write_bytes(buf.tobytes()[: len(buf) // 2])
    elif kind == "tiny":
        cv2.imwrite(str(p), np.zeros((1, 1, 3), np.uint8))
    elif kind == "huge":
        cv2.imwrite(str(p), np.zeros((12000, 12000, 3), np.uint8))
    elif kind == "noface":
        cv2.imwrite(str(p), cv2.imread(str(IMAGES / "backgrounds" / "brick.png")))
    elif kind == "gray":
        cv2.imwrite(str(p), cv2.cvtColor(src, cv2.COLOR_BGR2GRAY))
    elif kind == "cmyk":
        Image.open(FACE).convert("CMYK").save(p)
    elif kind == "png16":
        cv2.imwrite(str(p), src.astype(np.uint16) * 257)
    elif kind == "rgba":
        cv2.imwrite(str(p), np.dstack([src, np.full(src.shape[:2], 255, np.uint8)]))
    elif kind == "gif":
        im = Image.open(FACE)
        im.save(p, save_all=True, append_images=[im.rotate(20)])
    elif kind == "three":
        cv2.imwrite(str(p), np.concatenate([src, src, src], 1))
    elif kind == "unicode":
        cv2.imencode(".png", src)[1].tofile(str(p))
    return p


@pytest.mark.parametrize("kind, expect", [
    ("empty", "empty"), ("text", "not a readable image"), ("trunc_jpg", "truncated"), ("trunc_png", "not a readable image"),
    ("tiny", "too small"), ("noface", "no face"), ("huge", "no face"),
])
def test_bad_images_fail_with_one_line_and_no_output(kind, expect, tmp_path):
    img = make_image(kind, tmp_path)
    out = tmp_path / "out"
    _one_error_line(_run("reconstruct", img, "--out", out), expect)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("kind, faces", [("gray", 1), ("cmyk", 1), ("png16", 1), ("rgba", 1), ("gif", 1), ("three", 3), ("unicode", 1)])
def test_odd_but_valid_images_work(kind, faces, tmp_path):
    img = make_image(kind, tmp_path)
    res = _run("landmarks", img, "--mask", "none", "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert f"{faces} face(s)" in res.stdout
    assert (tmp_path / "out").is_dir()


def test_masks_of_the_wrong_size_all_black_and_all_white(tmp_path):
    small = tmp_path / "small_mask.png"
    cv2.imwrite(str(small), np.zeros((17, 31), np.uint8))
    res = _run("landmarks", FACE, "--mask", small, "--out", tmp_path / "a")
    assert res.returncode == 0 and "68/68 valid" in res.stdout, res.stderr  # resized; black = nothing hidden
    white = tmp_path / "white_mask.png"
    cv2.imwrite(str(white), np.full((224, 224), 255, np.uint8))
    out = tmp_path / "b"
    _one_error_line(_run("reconstruct", FACE, "--mask", white, "--out", out), "hides too much of the face")
    assert not out.exists()
    missing = tmp_path / "missing_mask.png"
    _one_error_line(_run("reconstruct", FACE, "--mask", missing, "--out", out), "missing_mask.png")
    assert not out.exists()


def test_corrupt_flame_pickle_and_checkpoint(tmp_path):
    bad = tmp_path / "generic_model.pkl"
    bad.write_bytes(pickle.dumps({"v_template": "nope"}, protocol=2)[:-5])
    _one_error_line(_run("reconstruct", FACE, "--model", bad, "--out", tmp_path / "o"), "not a FLAME pickle")
    ckpt = tmp_path / "vae.pt"
    ckpt.write_bytes(b"\x80\x02 definitely not a checkpoint")
    # the Mesh-VAE completion reads the checkpoint (the default "gaussian" one needs none)
    res = subprocess.run([D3DFACE, "reconstruct", FACE, "--completion", "vae", "--out", tmp_path / "o"], capture_output=True, text=True,
                         env={**__import__("os").environ, "D3DFACE_MESH_VAE": str(ckpt)})
    _one_error_line(res, "vae.pt")
    assert not (tmp_path / "o").exists()


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _one_error_line(_run("fit", FACE, "--out", blocker / "out"), "a_file")
