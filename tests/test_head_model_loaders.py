"""Loading head models: FLAME topology assets, FLAME pickles (without chumpy), the project .npz."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

from d3dface.errors import D3DFaceError, ModelFileError
from d3dface.head_model import HeadModel, load_head_model
from d3dface.head_model.flame_pickle import load_flame_pickle

from flame_fixture import synthetic_flame_arrays, write_flame_pickle

EXPECTED_SHA = {
    "head_template.obj": "dd5bfbce75adb99b1963f43bca7ec3557bd4a7321f8fc515f4100599e80d99f2",
    "FLAME_masks.npz": "d4544fba012d088694fb1733901aa4aa38697f823b724facb48fef5cac44c638",
}


def test_assets_are_the_documented_files(flame_dir):
    for name, sha in EXPECTED_SHA.items():
        assert hashlib.sha256((flame_dir / name).read_bytes()).hexdigest() == sha


def test_topology_assets(topology, flame_dir):
    assert topology.num_vertices == 5023 and topology.num_faces == 9976
    assert topology.uvs.shape == (5118, 2) and topology.uv_faces.shape == (9976, 3)
    assert len(topology.regions) == 14
    assert topology.lmk68["full_faces"].shape == (68,)
    assert topology.lmk68["dynamic_faces"].shape == (79, 17)
    assert topology.lmk_mediapipe["faces"].shape == (105,)
    # recentred: the bounding box is centred at the origin; the raw file sits at y ~ 1.3-1.6 m
    box = topology.v_template.min(0) + topology.v_template.max(0)
    np.testing.assert_allclose(box, 0, atol=1e-6)
    raw_first = [float(x) for x in (flame_dir / "head_template.obj").read_text().split("\nv ", 1)[1].split()[:3]]
    assert 1.3 < raw_first[1] < 1.7
    assert topology.num_shape == 0 and not topology.has_lbs


@pytest.fixture(scope="module")
def flame_pkl(tmp_path_factory, flame_dir):
    arrays = synthetic_flame_arrays(flame_dir, seed=1)
    path = write_flame_pickle(tmp_path_factory.mktemp("flame") / "generic_model.pkl", arrays)
    return path, arrays


def test_pickle_uses_chumpy_class_path_and_no_chumpy_installed(flame_pkl):
    path, _ = flame_pkl
    raw = path.read_bytes()
    assert b"chumpy.ch" in raw and b"Ch" in raw and b"scipy.sparse" in raw
    with pytest.raises(ImportError):
        import chumpy  # noqa: F401


def test_flame_pickle_loads_every_field(flame_pkl, topology):
    path, arrays = flame_pkl
    model = load_flame_pickle(path, topology=topology)
    np.testing.assert_allclose(model.v_template, arrays["v_template"], atol=1e-6)
    np.testing.assert_array_equal(model.faces, arrays["f"].astype(np.int32))
    assert model.num_shape == 300 and model.num_expr == 100
    np.testing.assert_allclose(model.shapedirs, arrays["shapedirs"][:, :, :300], atol=1e-7)
    np.testing.assert_allclose(model.exprdirs, arrays["shapedirs"][:, :, 300:], atol=1e-7)
    np.testing.assert_allclose(model.posedirs, arrays["posedirs"], atol=1e-7)
    np.testing.assert_allclose(model.joint_regressor, arrays["J_regressor"], atol=1e-7)
    np.testing.assert_allclose(model.skinning_weights, arrays["weights"], atol=1e-7)
    assert model.parents.tolist() == [-1, 0, 1, 1, 1]
    assert model.joint_names == ["root", "neck", "jaw", "left_eye", "right_eye"]
    assert len(model.regions) == 14 and model.uvs is not None


def test_npz_round_trip(flame_pkl, topology, tmp_path):
    path, _ = flame_pkl
    model = load_flame_pickle(path, topology=topology)
    out = model.save(tmp_path / "m.npz")
    again = HeadModel.load(out)
    for name in ("v_template", "faces", "uvs", "uv_faces", "shapedirs", "exprdirs", "joint_regressor",
                 "skinning_weights", "posedirs", "parents"):
        np.testing.assert_array_equal(getattr(again, name), getattr(model, name).astype(getattr(again, name).dtype))
    assert again.expr_names == model.expr_names and again.joint_names == model.joint_names
    assert again.meta == model.meta
    assert set(again.regions) == set(model.regions)
    for k in model.regions:
        np.testing.assert_array_equal(again.regions[k], model.regions[k])
    for k in model.lmk68:
        np.testing.assert_array_equal(again.lmk68[k], model.lmk68[k])
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def test_loader_dispatch_by_kind(flame_pkl, flame_dir):
    path, _ = flame_pkl
    assert load_head_model(path, assets=flame_dir.parent).num_shape == 300
    assert load_head_model(flame_dir).num_vertices == 5023


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/d3dface_pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    if os.path.exists("/tmp/d3dface_pwned"):
        os.remove("/tmp/d3dface_pwned")
    with pytest.raises(ModelFileError, match="refused to load posix.system|refused to load os.system"):
        load_head_model(bad)
    assert not os.path.exists("/tmp/d3dface_pwned")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a FLAME pickle"),
        (b"hello, this is text\n", "not a FLAME pickle"),
        (pickle.dumps([1, 2, 3], protocol=2), "holds a list"),
        (pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2), "missing"),
    ],
)
def test_not_a_flame_pickle(tmp_path, content, message):
    bad = tmp_path / "model.pkl"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError, match=message) as info:
        load_head_model(bad)
    assert "\n" not in str(info.value)


def test_wrong_topology_is_refused(tmp_path, flame_dir):
    arrays = synthetic_flame_arrays(flame_dir, seed=2, num_vertices_keep=4000)
    path = write_flame_pickle(tmp_path / "small.pkl", arrays)
    with pytest.raises(ModelFileError, match="4000 vertices"):
        load_head_model(path, assets=flame_dir.parent)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(D3DFaceError, match="not found"):
        load_head_model(tmp_path / "nope.pkl")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="cannot read head model"):
        load_head_model(tmp_path / "broken.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a d3dface head model"):
        load_head_model(tmp_path / "other.npz")
