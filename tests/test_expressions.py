"""Identity apart from expression (issue 21, engine side): the neutral heads and the fitted
expression in ``result.npz``, the expression keys of ``blender_scene.npz`` and the
``expressions/`` meshes of ``d3dface reconstruct --expressions``, each against the head
model's own formula computed here from the model file (numpy, torch LBS), on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from d3dface.head_model.load import default_model_path

TOL_M = 1e-5
ARKIT_52 = (  # Apple's ARFaceAnchor.BlendShapeLocation names, typed here from Apple's list
    "browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff cheekSquintLeft "
    "cheekSquintRight eyeBlinkLeft eyeBlinkRight eyeLookDownLeft eyeLookDownRight eyeLookInLeft eyeLookInRight "
    "eyeLookOutLeft eyeLookOutRight eyeLookUpLeft eyeLookUpRight eyeSquintLeft eyeSquintRight eyeWideLeft "
    "eyeWideRight jawForward jawLeft jawOpen jawRight mouthClose mouthDimpleLeft mouthDimpleRight mouthFrownLeft "
    "mouthFrownRight mouthFunnel mouthLeft mouthLowerDownLeft mouthLowerDownRight mouthPressLeft mouthPressRight "
    "mouthPucker mouthRight mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper mouthSmileLeft "
    "mouthSmileRight mouthStretchLeft mouthStretchRight mouthUpperUpLeft mouthUpperUpRight noseSneerLeft "
    "noseSneerRight tongueOut").split()


@pytest.fixture(scope="module")
def run(expression_run):
    with np.load(expression_run / "result.npz") as d:
        res = {k: d[k] for k in d.files}
    with np.load(expression_run / "blender_scene.npz") as d:
        scene = {k: d[k] for k in d.files}
    with np.load(default_model_path()) as d:
        model = {k: d[k] for k in ("exprdirs", "expr_names", "skinning_weights", "parents", "joint_regressor", "posedirs")}
    return expression_run, res, scene, model


def model_members(names, arkit: str) -> list[int]:
    """The model's modes of an ARKit expression: ``eyeBlink_L`` is eyeBlinkLeft; the model's
    ``browInnerUp_L``/``_R`` halves together are browInnerUp (and likewise cheekPuff)."""
    own = [i for i, n in enumerate(names) if str(n).replace("_L", "Left").replace("_R", "Right") == arkit]
    return own or [i for i, n in enumerate(names) if str(n) in (arkit + "_L", arkit + "_R")]


def posed(model, shaped: np.ndarray, pose: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(V, 3) LBS of a shaped head with given rest joints (torch, float64; no pose correctives:
    the open model has none, checked)."""
    from addon_fake_engine import skin

    assert np.abs(model["posedirs"]).max() == 0
    return skin(model["skinning_weights"], model["parents"], shaped, pose, joints)


def test_the_52_arkit_keys_come_first_and_the_model_halves_after(run):
    _, _, scene, model = run
    names = [str(n) for n in scene["expression_key_names"]]
    assert sorted(names[:52]) == sorted(ARKIT_52) and len(set(names)) == len(names)
    assert names[52:] == ["browInnerUp_L", "browInnerUp_R", "cheekPuff_L", "cheekPuff_R"]
    # every model mode is in exactly one ARKit key; tongueOut has none (no tongue in FLAME)
    used = sorted(i for a in ARKIT_52 for i in model_members(model["expr_names"], a))
    assert used == list(range(len(model["expr_names"]))) and model_members(model["expr_names"], "tongueOut") == []


def test_every_key_at_weight_1_is_the_models_expression_on_the_neutral(run):
    out, res, scene, model = run
    E = model["exprdirs"].astype(np.float64)
    names = [str(n) for n in scene["expression_key_names"]]
    neutral1 = res["neutral_samples"][0].astype(np.float64)
    worst_key, worst_obj = 0.0, 0.0
    for k, name in enumerate(names):
        members = model_members(model["expr_names"], name) if k < 52 else [list(model["expr_names"]).index(name)]
        expect = E[:, :, members].sum(2) if members else np.zeros_like(neutral1)
        worst_key = max(worst_key, np.abs(scene["expression_key_offsets"][k] - expect).max())
        mesh = trimesh.load(out / "expressions" / f"{name}.obj", process=False, maintain_order=True)
        worst_obj = max(worst_obj, np.abs(np.asarray(mesh.vertices) - (neutral1 + expect)).max())
    neutral_mesh = trimesh.load(out / "expressions" / "neutral.obj", process=False, maintain_order=True)
    print(f"\nkey offsets vs model: {worst_key:.2g} m; expression .obj vs neutral + model expression: {worst_obj:.2g} m")
    assert worst_key < TOL_M and worst_obj < TOL_M
    assert np.abs(np.asarray(neutral_mesh.vertices) - neutral1).max() < TOL_M


def test_the_photos_expression_rebuilt_from_the_neutral_and_the_keys_is_the_fit(run):
    _, res, scene, model = run
    values, offsets = scene["expression_key_values"], scene["expression_key_offsets"].astype(np.float64)
    # the photo has an expression and an open jaw: the test is not of a neutral head
    assert np.abs(values).max() > 0.3 and np.linalg.norm(res["pose"]) > 0.02
    shaped = res["neutral_fit_vertices"].astype(np.float64) + np.einsum("k,kvc->vc", values, offsets)
    # the keys' values rebuild the fitted weights exactly, and the rig's joints are the fit's
    E = model["exprdirs"].astype(np.float64)
    assert np.abs(shaped - res["neutral_fit_vertices"] - np.einsum("vce,e->vc", E, res["expression_weights"])).max() < TOL_M
    assert np.allclose(res["rest_joints"], model["joint_regressor"].astype(np.float64) @ shaped, atol=TOL_M)
    err_fit = np.abs(posed(model, shaped, res["pose"], res["rest_joints"]) - res["fit_vertices"]).max()
    err_samples = max(np.abs(posed(model, n.astype(np.float64) + shaped - res["neutral_fit_vertices"], res["pose"],
                                   res["rest_joints"]) - s).max() for n, s in zip(res["neutral_samples"], res["samples"]))
    print(f"\nrebuilt fit vs fit: {err_fit:.2g} m; rebuilt samples vs samples: {err_samples:.2g} m")
    assert err_fit < TOL_M and err_samples < TOL_M
    # the rig's jaw quaternion is the fitted jaw rotation
    jaw = list(scene["joint_names"]).index("jaw")
    q = scene["pose_quaternions"][jaw]
    angle = 2 * np.arctan2(np.linalg.norm(q[1:]), q[0])
    assert abs(angle - np.linalg.norm(res["pose"][3 * jaw:3 * jaw + 3])) < 1e-6


def test_lips_stay_apart_under_jawopen_and_the_blink_closes_over_the_eyeball(run):
    """On the photo's neutral head: no lip triangle crosses another under jawOpen or jawOpen +
    mouthClose; mouthClose alone (ARKit's corrective for jawOpen) does push them into each other,
    which shows the check finds crossings. eyeBlink closes the lids over the front of the eyeball
    (at rest they leave about half of it open) and no lid triangle crosses an eyeball triangle."""
    from d3dface.evaluation.expression_checks import check_head
    from d3dface.head_model import load_head_model

    _, res, _, _ = run
    r = check_head(load_head_model(None), res["neutral_fit_vertices"])
    assert r["jawOpen"]["lip_pairs"] == 0 and r["jawOpen+mouthClose"]["lip_pairs"] == 0
    assert r["mouthClose"]["lip_pairs"] > 0 and r["mouthClose"]["lip_pairs_neutral"] == 0
    for key in ("eyeBlinkLeft", "eyeBlinkRight"):
        b = r[key]
        print(f"\n{key}: front hidden {b['front_hidden']:.0%} (neutral {b['front_hidden_neutral']:.0%}), "
              f"lid x eyeball pairs {b['lid_eyeball_pairs']} (neutral {b['lid_eyeball_pairs_neutral']})")
        assert b["front_hidden_neutral"] < 0.6 and b["front_hidden"] >= 0.9
        assert b["lid_eyeball_pairs"] == 0 and b["lid_eyeball_pairs_neutral"] == 0 and b["lid_inside"] == 0
