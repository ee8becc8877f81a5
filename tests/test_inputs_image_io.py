"""load_image and load_user_mask on every kind of file a user may give."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from conftest import IMAGES
from d3dface.errors import InputFileError
from d3dface.inputs.image_io import load_image
from d3dface.inputs.masks import load_user_mask

PHOTO = IMAGES / "faces" / "frontal_man_224.jpg"


def _ref() -> np.ndarray:
    return cv2.imread(str(PHOTO))[:, :, ::-1]


def test_jpeg_matches_opencv_rgb():
    img = load_image(PHOTO)
    assert img.dtype == np.uint8 and img.shape == (224, 224, 3)
    np.testing.assert_array_equal(img, _ref())


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    ref = _ref()
    im = Image.fromarray(ref)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=95)
    out = load_image(p)
    stored = np.asarray(Image.open(p))
    np.testing.assert_array_equal(out, np.rot90(stored, k=-1))


def test_gray_rgba_16bit(tmp_path):
    ref = _ref()
    gray = cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    g = load_image(tmp_path / "g.png")
    assert g.shape == (224, 224, 3) and np.array_equal(g[..., 0], gray) and np.array_equal(g[..., 2], gray)

    rgba = np.dstack([ref, np.full(ref.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0
    cv2.imwrite(str(tmp_path / "a.png"), rgba[..., [2, 1, 0, 3]])
    a = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(a[10:], ref[10:])
    assert (a[:10] == 128).all()   # transparent rows composited onto grey

    sixteen = ref.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "s.png"), sixteen[..., ::-1])
    assert cv2.imread(str(tmp_path / "s.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_array_equal(load_image(tmp_path / "s.png"), ref)


def test_cmyk_and_gif_first_frame(tmp_path):
    from PIL import Image

    ref = _ref()
    Image.fromarray(ref).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    c = load_image(tmp_path / "c.jpg")
    assert c.shape == ref.shape and np.abs(c.astype(int) - ref).mean() < 8

    frames = [Image.fromarray(np.full((40, 50, 3), v, np.uint8)) for v in (200, 30)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    gif = load_image(tmp_path / "anim.gif")
    assert gif.shape == (40, 50, 3) and abs(int(gif.mean()) - 200) <= 2


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"this is not an image at all", "not a readable image"),
])
def test_bad_files_one_line(tmp_path, content, words):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(InputFileError) as e:
        load_image(p)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_truncated_missing_tiny(tmp_path):
    data = PHOTO.read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated"):
        load_image(tmp_path / "t.jpg")
    ok, png = cv2.imencode(".png", _ref())
    (tmp_path / "t.png").write_bytes(png.tobytes()[: len(png) // 2])
    with pytest.raises(InputFileError):
        load_image(tmp_path / "t.png")
    with pytest.raises(InputFileError, match="not found"):
        load_image(tmp_path / "missing.png")
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(InputFileError, match="too small"):
        load_image(tmp_path / "one.png")


def test_user_mask_sizes_and_alpha(tmp_path):
    m = np.zeros((64, 64), np.uint8)
    m[16:48, 8:40] = 255
    cv2.imwrite(str(tmp_path / "m.png"), m)
    out = load_user_mask(tmp_path / "m.png", (128, 128))
    assert out.shape == (128, 128) and out.dtype == bool
    assert out[40:90, 20:75].all() and not out[:28].any() and not out[:, 84:].any()
    # an RGBA mask painted on a transparent layer: the alpha decides, whatever the colour
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = 0
    rgba[5:15, 10:20, 3] = 255
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    a = load_user_mask(tmp_path / "a.png", (30, 40))
    assert a.sum() == 100 and a[5:15, 10:20].all()
    # the shared hand-drawn mask (an RGB file with near-black noise) reads as its white part
    real = load_user_mask(IMAGES / "occluded" / "sunglasses_beard_mask.png", (256, 256))
    raw = cv2.imread(str(IMAGES / "occluded" / "sunglasses_beard_mask.png"))[..., 0]
    assert real.sum() == (raw >= 128).sum() and 0.05 < real.mean() < 0.3


def test_user_mask_arrays_bool_uint8_and_float():
    """An array mask (the library call's and Blender's form): True, 255 or 1.0 = occluded."""
    m = np.zeros((20, 30), bool)
    m[4:10, 5:12] = True
    for arr in (m, m.astype(np.uint8) * 255, m.astype(np.float32)):
        out = load_user_mask(arr, (20, 30))
        assert out.dtype == bool and (out == m).all(), arr.dtype
    assert load_user_mask(m, (40, 60)).sum() == 4 * m.sum()
