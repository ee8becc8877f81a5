"""The samples' spread on the head object, as the engine computed it (``blender_scene.npz``,
``d3dface.outputs.blender_scene.uncertainty_hints``); no mathematics here.

- colour attribute ``d3d_uncertainty`` (point domain, FLOAT_COLOR, linear RGBA): the engine's
  colour ramp from low (dark blue) to high (red) spread; made the active colour attribute so
  that the Solid view's "Attribute" colouring shows it
- float attribute ``d3d_uncertainty_m`` (point): the spread itself, metres (RMS distance of the
  samples' vertex from their mean)
- vertex group ``Uncertainty``: every vertex, weight = spread / normaliser in [0, 1]; the
  normaliser (metres, the largest spread) is the object's ``d3dface_uncertainty_normaliser_m``

A new object and Replace samples write it; Add samples keeps the spread of the run that wrote it.
"""

from __future__ import annotations

import numpy as np

ATTR_COLOUR = "d3d_uncertainty"
ATTR_VALUE = "d3d_uncertainty_m"
GROUP = "Uncertainty"
PROP_NORMALISER = "d3dface_uncertainty_normaliser_m"


def _fresh_attribute(mesh, name: str, kind: str):
    """A new point attribute ``name`` of type ``kind`` (an existing one of that name is replaced)."""
    old = mesh.attributes.get(name)
    if old is not None:
        mesh.attributes.remove(old)
    return mesh.attributes.new(name, kind, "POINT")


def write_uncertainty(obj, scene: dict) -> bool:
    """Write the spread of ``scene`` (the arrays of blender_scene.npz, checked by result_reader)
    onto ``obj``; False when the scene file has none (an older engine)."""
    if "uncertainty" not in scene:
        return False
    mesh = obj.data
    colour = _fresh_attribute(mesh, ATTR_COLOUR, "FLOAT_COLOR")
    colour.data.foreach_set("color", np.ascontiguousarray(scene["uncertainty_colour"], np.float32).reshape(-1))
    _fresh_attribute(mesh, ATTR_VALUE, "FLOAT").data.foreach_set(
        "value", np.ascontiguousarray(scene["uncertainty"], np.float32))
    mesh.color_attributes.active_color = mesh.color_attributes[ATTR_COLOUR]
    group = obj.vertex_groups.get(GROUP) or obj.vertex_groups.new(name=GROUP)
    for i, w in enumerate(scene["uncertainty_weight"].tolist()):  # VertexGroup.add takes one weight per call
        group.add([i], w, "REPLACE")
    obj[PROP_NORMALISER] = float(scene["uncertainty_normaliser"])
    return True


def read_uncertainty(obj) -> dict:
    """What ``write_uncertainty`` wrote (for tests and the API): arrays (V,), (V, 4), (V,) and the normaliser."""
    mesh, n = obj.data, len(obj.data.vertices)
    value, colour = np.empty(n, np.float32), np.empty(4 * n, np.float32)
    mesh.attributes[ATTR_VALUE].data.foreach_get("value", value)
    mesh.attributes[ATTR_COLOUR].data.foreach_get("color", colour)
    gi = obj.vertex_groups[GROUP].index
    weight = np.array([next((g.weight for g in v.groups if g.group == gi), 0.0) for v in mesh.vertices], np.float32)
    return {"value": value, "colour": colour.reshape(n, 4), "weight": weight,
            "normaliser": float(obj.get(PROP_NORMALISER, 0.0))}
