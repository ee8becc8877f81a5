"""Export of a reconstructed head (glTF binary and FBX, Blender's own exporters) and the samples'
spread in the scene, headless (bpy 5.0.1), with the head made by the real worker process running
the fast stand-in engine (tests/addon_fake_engine.py), as in test_addon.py.

Round trip: the head is exported, re-imported into a fresh scene, and every shape key (Basis
included) is compared in world space, metres: world = matrix_world @ key coordinate on both
sides, so that glTF's y-up conversion and FBX's axes and unit scale are whatever the importers
make of them. glTF splits vertices along UV seams and may reorder them, so each imported vertex
is matched to the original vertex at the same Basis position (nearest neighbour; the head's
closest two vertices are 0.18 mm apart, far above the 1e-5 m tolerance) and every original
vertex must be matched."""

from __future__ import annotations

import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import PHOTO, enable_from_source, snapshot, use_fake_engine, window  # noqa: E402

TOL_M = 1e-5
MEASURED: dict = {}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    enable_from_source(tmp_path_factory.mktemp("cache"))
    use_fake_engine(0.1)
    from d3dface_addon.jobs import RUNNER

    with window():
        assert bpy.ops.d3dface.reconstruct("EXEC_DEFAULT", True, filepath=str(PHOTO), samples=4, seed=1) == {"FINISHED"}
    yield bpy.data.objects[RUNNER.last_object]
    if MEASURED:
        print("\nexport round trip, max world-space difference over all keys and vertices: "
              + ", ".join(f"{k} {v:.3g} m" for k, v in MEASURED.items()))
    RUNNER.shutdown()
    import addon_utils

    addon_utils.disable("d3dface_addon", default_set=True)


def world_keys(obj) -> dict:
    """{shape key name: (V, 3) world coordinates, metres}."""
    bpy.context.view_layer.update()
    M = np.array(obj.matrix_world)
    out = {}
    for kb in obj.data.shape_keys.key_blocks:
        co = np.empty(len(kb.data) * 3, np.float64)
        kb.data.foreach_get("co", co)
        out[kb.name] = co.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3]
    return out


def import_into_fresh_scene(path) -> dict:
    """Import ``path`` into a new, empty scene; the world keys of the one mesh it makes. The
    scene and what was imported are removed again."""
    win = bpy.context.window_manager.windows[0]
    old_scene = win.scene
    scene = bpy.data.scenes.new("import")
    win.scene = scene
    before = set(bpy.data.objects)
    try:
        with window():
            op = bpy.ops.import_scene.gltf if str(path).endswith(".glb") else bpy.ops.import_scene.fbx
            assert op(filepath=str(path)) == {"FINISHED"}
        meshes = [o for o in scene.objects if o.type == "MESH"]
        assert len(meshes) == 1, [o.name for o in scene.objects]
        return world_keys(meshes[0])
    finally:
        win.scene = old_scene
        for o in set(bpy.data.objects) - before:
            bpy.data.objects.remove(o)
        bpy.data.scenes.remove(scene)


def max_key_difference(orig: dict, imported: dict) -> float:
    """Largest distance between matching vertices over all keys (vertices matched by Basis)."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(orig["Basis"]).query(imported["Basis"])
    assert dist.max() < TOL_M and set(idx.tolist()) == set(range(len(orig["Basis"])))
    return max(float(np.linalg.norm(imported[n] - orig[n][idx], axis=1).max()) for n in orig)


@pytest.mark.parametrize("fmt", ["glb", "fbx"])
def test_export_round_trip_keeps_every_shape_key_within_1e_5_m(head, tmp_path, fmt):
    from d3dface_addon import api

    orig = world_keys(head)
    before = snapshot()
    selected = sorted(o.name for o in bpy.context.view_layer.objects if o.select_get())
    path = api.export_head(head, tmp_path / "head", format=fmt)
    assert path == str(tmp_path / f"head.{fmt}") and os.listdir(tmp_path) == [f"head.{fmt}"]  # no temporary left
    assert snapshot() == before  # the scene is unchanged, selection included
    assert sorted(o.name for o in bpy.context.view_layer.objects if o.select_get()) == selected
    imported = import_into_fresh_scene(path)
    assert list(imported) == list(orig)  # the same shape keys, in order
    MEASURED[fmt] = max_key_difference(orig, imported)
    assert MEASURED[fmt] < TOL_M


def test_the_export_operator_writes_the_active_head(head, tmp_path):
    bpy.context.view_layer.objects.active = head
    with window():
        assert bpy.ops.d3dface.export(filepath=str(tmp_path / "op.fbx"), format="FBX") == {"FINISHED"}
    assert (tmp_path / "op.fbx").stat().st_size > 0
    assert bpy.types.D3DFACE_PT_export.poll(bpy.context)  # the sidebar shows Export for a head


def test_bad_exports_are_one_line_errors_and_write_nothing(head, tmp_path, monkeypatch):
    from d3dface_addon import api, export

    plain = bpy.data.objects.new("plain", bpy.data.meshes.new("plain"))
    before = snapshot()
    cases = [(plain, tmp_path / "a.glb", "glb", "select a Diverse3DFace head"),
             (head, tmp_path / "a.obj", "obj", "unknown export format 'obj'"),
             (head, tmp_path / "a.fbx", "glb", "ends in .fbx"),
             (head, tmp_path / "missing" / "a.glb", "glb", "does not exist"),
             (head, "/proc/a.glb", "glb", "cannot write to the folder /proc")]
    for obj, path, fmt, message in cases:
        with pytest.raises(RuntimeError, match=message) as err:
            api.export_head(obj, path, format=fmt)
        assert "\n" not in str(err.value) and str(err.value).startswith("Diverse3DFace: ")

    def failing_exporter(filepath, **_):  # an exporter that writes half a file, then fails
        with open(filepath, "wb") as fh:
            fh.write(b"glTF partial")
        raise RuntimeError("Error: out of disk\nsecond line")

    monkeypatch.setattr(export, "_exporter", lambda name, module: failing_exporter)
    with pytest.raises(RuntimeError, match="the glb exporter failed: Error: out of disk second line"):
        api.export_head(head, tmp_path / "b.glb")
    assert os.listdir(tmp_path) == [] and snapshot() == before
    bpy.data.objects.remove(plain)


# ---- the samples' spread ---------------------------------------------------------------------
def spread_of_result(obj) -> np.ndarray:
    """The independent computation: (V,) RMS distance of each sample's vertex from their mean."""
    from d3dface_addon.scene_writer import stored

    with np.load(stored(obj)["result_path"]) as d:
        s = d["samples"].astype(np.float64)
    return np.sqrt(np.mean(np.sum((s - s.mean(axis=0)) ** 2, axis=2), axis=0))


def check_uncertainty(obj) -> None:
    from d3dface.outputs.blender_scene import UNCERTAINTY_RAMP
    from d3dface_addon.uncertainty import ATTR_COLOUR, read_uncertainty

    u, spread = read_uncertainty(obj), spread_of_result(obj)
    assert spread.max() > 1e-3  # the samples differ
    assert np.allclose(u["value"], spread, rtol=1e-6, atol=1e-9)
    assert u["normaliser"] == pytest.approx(spread.max(), rel=1e-6)
    assert np.allclose(u["weight"], spread / spread.max(), atol=1e-6) and u["weight"].max() == pytest.approx(1.0)
    stops = [w for w, _ in UNCERTAINTY_RAMP]
    expect = np.stack([np.interp(spread / spread.max(), stops, [c[k] for _, c in UNCERTAINTY_RAMP]) for k in range(3)], 1)
    assert np.allclose(u["colour"][:, :3], expect, atol=1e-6) and np.all(u["colour"][:, 3] == 1.0)
    a = obj.data.attributes[ATTR_COLOUR]
    assert (a.domain, a.data_type) == ("POINT", "FLOAT_COLOR")
    assert obj.data.color_attributes.active_color.name == ATTR_COLOUR


def test_the_scene_shows_the_engines_spread_of_the_samples(head):
    check_uncertainty(head)
    with window():
        assert bpy.ops.d3dface.reconstruct("EXEC_DEFAULT", True, filepath=str(PHOTO), samples=3, seed=9,
                                           mode="REPLACE", target=head.name) == {"FINISHED"}
    check_uncertainty(head)  # Replace samples writes the new run's spread
    assert [g.name for g in head.vertex_groups].count("Uncertainty") == 1
