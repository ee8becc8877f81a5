"""The head's expressions in Blender (issue 21): a real reconstruction applied to the scene
rebuilds the fit from the neutral Basis, the expression keys at the photo's values and the
jaw on the rig; the eyes turn with the eyeLook keys; the neutral and the photo's expression
on demand; and an ARKit weight CSV (made here) becomes keyframes. Headless bpy 5.0.1."""

from __future__ import annotations

import math

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import evaluated, eyes_at_rest, enable_from_source, snapshot, window  # noqa: E402

TOL_M = 1e-5


@pytest.fixture(scope="module")
def head(tmp_path_factory, expression_run):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    enable_from_source(tmp_path_factory.mktemp("cache"))
    from d3dface_addon.jobs import RUNNER

    with window():
        assert bpy.ops.d3dface.apply_result("EXEC_DEFAULT", True, result_path=str(expression_run / "result.npz"),
                                            scene_path=str(expression_run / "blender_scene.npz")) == {"FINISHED"}
    obj = bpy.data.objects[RUNNER.last_object]
    with np.load(expression_run / "result.npz") as d:
        res = {k: d[k] for k in d.files}
    with np.load(expression_run / "blender_scene.npz") as d:
        scene = {k: d[k] for k in d.files}
    yield obj, res, scene
    RUNNER.shutdown()
    import addon_utils

    addon_utils.disable("d3dface_addon", default_set=True)


def key_coords(obj, name) -> np.ndarray:
    kb = obj.data.shape_keys.key_blocks[name]
    out = np.empty(len(kb.data) * 3, np.float32)
    kb.data.foreach_get("co", out)
    return out.reshape(-1, 3).astype(np.float64)


def eye_vertices(res, side: str) -> np.ndarray:
    from d3dface.head_model.load import load_head_model

    return load_head_model(None).regions[f"{side}_eyeball"]


def rot(axis: int, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def test_the_scene_shows_the_fit_rebuilt_from_the_neutral_keys_and_rig(head):
    obj, res, scene = head
    names = [kb.name for kb in obj.data.shape_keys.key_blocks]
    assert names[0] == "Basis" and np.abs(key_coords(obj, "Basis") - res["neutral_fit_vertices"]).max() < TOL_M
    from d3dface_addon import api

    assert api.expression_keys(obj)[:52] == names[4:56]  # after Basis, Visible fit and the 2 samples
    for k, name in enumerate(str(n) for n in scene["expression_key_names"]):
        assert abs(obj.data.shape_keys.key_blocks[name].value - scene["expression_key_values"][k]) < 1e-6
    eyes_at_rest(obj)  # the fit does not turn the eyes: without the eyeLook drivers it is exact
    err = np.abs(evaluated(obj) - res["fit_vertices"]).max()
    eyes_at_rest(obj, rest=False)
    print(f"\nBlender (keys at the photo's values, jaw on the rig) vs the engine's fit: {err:.2g} m")
    assert err < TOL_M


def test_the_eyes_turn_about_their_joints_with_the_eyelook_keys(head):
    obj, res, scene = head
    from d3dface_addon import api

    with window():
        api.set_expression(obj, "neutral")
    blocks = obj.data.shape_keys.key_blocks
    base = evaluated(obj)
    assert np.abs(base - key_coords(obj, "Basis")).max() < 1e-6  # neutral: no key, the rig at rest
    blocks["eyeLookUpLeft"].value = 1.0
    blocks["eyeLookOutRight"].value = 0.5
    moved = evaluated(obj)
    joints = dict(zip([str(n) for n in scene["joint_names"]], scene["bone_heads"]))
    # up 25 degrees: the gaze (+z) turns towards +y, about -x; the right eye out (towards -x) by 15
    for side, R in (("left", rot(0, -math.radians(25))), ("right", rot(1, -math.radians(15)))):
        idx = eye_vertices(res, side)
        c = joints[f"{side}_eye"]
        expect = (base[idx] - c) @ R.T + c
        assert np.abs(moved[idx] - expect).max() < TOL_M, side
    front = eye_vertices(res, "left")[np.argmax(base[eye_vertices(res, "left"), 2])]
    assert moved[front, 1] > base[front, 1] + 0.003  # the left pupil went up
    # eyelids (keys) moved, the rest of the head did not
    others = np.setdiff1d(np.arange(len(base)), np.concatenate([eye_vertices(res, "left"), eye_vertices(res, "right")]))
    offsets = dict(zip([str(n) for n in scene["expression_key_names"]], scene["expression_key_offsets"]))
    lids = base[others] + offsets["eyeLookUpLeft"][others] + 0.5 * offsets["eyeLookOutRight"][others]
    assert np.abs(moved[others] - lids).max() < TOL_M
    with window():
        api.set_expression(obj, "photo")
    assert abs(blocks["eyeLookUpLeft"].value - scene["expression_key_values"][list(scene["expression_key_names"]).index("eyeLookUpLeft")]) < 1e-6


def write_csv(path, rows: list[dict]) -> None:
    cols = ["Timecode", "BlendShapeCount", *rows[0].keys(), "HeadYaw"]
    lines = [",".join(cols)]
    for f, r in enumerate(rows):
        lines.append(",".join([f"00:00:00:{f:02d}.000", "52", *[f"{v:.4f}" for v in r.values()], "0.1"]))
    path.write_text("\n".join(lines) + "\n")


def test_an_arkit_csv_becomes_keyframes_played_over_10_frames(head, tmp_path):
    obj, res, scene = head
    from d3dface_addon import api

    rows = [{"JawOpen": f / 10, "EyeBlinkLeft": 1 - f / 10, "mouthSmile_R": 0.5 * (f % 2), "BrowInnerUp": 0.3}
            for f in range(10)]
    csv = tmp_path / "take.csv"
    write_csv(csv, rows)
    with window():
        info = api.import_arkit_csv(obj, str(csv), start_frame=3)
    assert info["frames"] == 10 and info["keys"] == ["jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp"]
    assert info["ignored"] == ["Timecode", "BlendShapeCount", "HeadYaw"]
    sc = bpy.context.scene
    assert sc.frame_end >= 12
    offsets = dict(zip([str(n) for n in scene["expression_key_names"]], scene["expression_key_offsets"].astype(np.float64)))
    basis = key_coords(obj, "Basis")
    worst = 0.0
    for f, r in enumerate(rows):
        sc.frame_set(3 + f)
        blocks = obj.data.shape_keys.key_blocks
        for csv_name, key in zip(r, info["keys"]):
            assert abs(blocks[key].value - r[csv_name]) < 1e-4, (f, key)
        expect = basis + sum(r[c] * offsets[k] for c, k in zip(r, info["keys"]))
        worst = max(worst, np.abs(evaluated(obj) - expect).max())
    print(f"\nCSV playback, 10 frames: evaluated head vs neutral + weighted keys {worst:.2g} m")
    assert worst < TOL_M
    # the keys the capture does not name stay at 0 (the photo's expression is not mixed in)
    assert obj.data.shape_keys.key_blocks["mouthFunnel"].value == 0.0


@pytest.mark.parametrize("content, message", [
    ("Timecode,HeadYaw\n00:00,0.1\n", "no column named after an expression key"),
    ("JawOpen,EyeBlinkLeft\n0.1,0.2\n0.3,oops\n", "line 3"),
    ("JawOpen\n", "no frames"),
    ("", "empty"),
])
def test_a_bad_csv_is_one_clear_error_and_changes_nothing(head, tmp_path, content, message):
    obj, _, _ = head
    from d3dface_addon import api

    path = tmp_path / "bad.csv"
    path.write_text(content)
    before = snapshot()
    values = [kb.value for kb in obj.data.shape_keys.key_blocks]
    action = obj.data.shape_keys.animation_data.action if obj.data.shape_keys.animation_data else None
    with window(), pytest.raises(RuntimeError, match=message):
        api.import_arkit_csv(obj, str(path))
    assert snapshot() == before and [kb.value for kb in obj.data.shape_keys.key_blocks] == values
    after = obj.data.shape_keys.animation_data.action if obj.data.shape_keys.animation_data else None
    assert after == action
