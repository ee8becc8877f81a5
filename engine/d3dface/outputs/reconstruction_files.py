"""Files of a reconstruction: result.npz, blender_scene.npz (what the Blender add-on needs to
build the scene: photo projection, camera, rig, baked texture), the photo baked into the UV
layout (texture.png, ``texture_bake``), the fit and every sample as .obj (FLAME UVs, with
head.mtl naming the texture) and .ply, the contact sheet, and on request ``expressions/``: the
first sample without the fitted expression (``neutral.obj``) and under each expression key at
weight 1 (``eyeBlinkLeft.obj`` ...: the neutral plus the key's offset, ``expression_rig``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from .blender_scene import scene_hints
from .contact_sheet import contact_sheet
from .fit_files import fit_overlay
from .mesh_files import write_material, write_mesh
from .pictures import write_png
from .texture_bake import TEXTURE_FILE, bake_fit_texture, write_texture

MTL_FILE = "head.mtl"


EXPRESSIONS_DIR = "expressions"


def write_reconstruction(folder: Path, result, inputs, fit, renderer, model, texture_path=None,
                         expression_meshes: bool = False) -> None:
    folder = Path(folder)
    result.save(folder / "result.npz")
    bake = bake_fit_texture(model, fit, inputs, texture_path)
    mtl = None
    if bake is not None:
        write_texture(folder / TEXTURE_FILE, bake)
        write_material(folder / MTL_FILE, TEXTURE_FILE)
        write_material(folder / "samples" / MTL_FILE, f"../{TEXTURE_FILE}")
        mtl = MTL_FILE
    hints = scene_hints(result, model, mean_texture=str(texture_path or ""), photo_texture=TEXTURE_FILE if bake else "")
    write_atomic(folder / "blender_scene.npz", lambda p: np.savez(p, **hints))
    for suffix in (".obj", ".ply"):
        write_mesh(folder / f"fit{suffix}", result.fit_vertices, model.faces, model.uvs, model.uv_faces, mtl)
        write_mesh(folder / f"visible_fit{suffix}", result.visible_fit_vertices, model.faces, model.uvs, model.uv_faces, mtl)
        for i, v in enumerate(result.samples):
            write_mesh(folder / "samples" / f"sample_{i + 1:02d}{suffix}", v, model.faces, model.uvs, model.uv_faces, mtl)
    if expression_meshes:
        write_expression_meshes(folder / EXPRESSIONS_DIR, result, hints, model, f"../{TEXTURE_FILE}" if mtl else None)
    crop = inputs.crop
    image = crop.apply(inputs.image).astype(np.float32) / 255
    occlusion = crop.apply(inputs.occlusion_mask)
    overlay = fit_overlay(image, occlusion, fit, renderer, scale=1)
    S = image.shape[0]
    sheet = contact_sheet(image, occlusion, overlay[:, S:2 * S], result, model.faces, face=model.regions.get("face"))
    write_png(folder / "contact_sheet.png", sheet)


def write_expression_meshes(folder: Path, result, hints: dict, model, texture: str | None) -> None:
    """``neutral.obj`` (the first sample without the fitted expression) and one .obj per
    expression key of ``hints`` (``blender_scene.npz``): that neutral plus the key's offset."""
    if result.neutral_samples is None or "expression_key_offsets" not in hints:
        return
    mtl = None
    if texture:
        write_material(folder / MTL_FILE, texture)
        mtl = MTL_FILE
    neutral = result.neutral_samples[0].astype(np.float64)
    write_mesh(folder / "neutral.obj", neutral, model.faces, model.uvs, model.uv_faces, mtl)
    for name, offset in zip(hints["expression_key_names"], hints["expression_key_offsets"]):
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))
        write_mesh(folder / f"{safe}.obj", neutral + offset, model.faces, model.uvs, model.uv_faces, mtl)
