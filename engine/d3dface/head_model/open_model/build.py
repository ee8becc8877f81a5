"""Build the open default head model: ICT-FaceKit Light carried onto FLAME's topology.

Steps (DESIGN 2.2): similarity alignment on the inner 51 landmarks both models define
(ICT cm -> FLAME m); non-rigid registration of the FLAME template onto the ICT neutral;
barycentric transfer of every identity and expression shape; rigid eyeballs, seated behind
the lids and moving with them, and blinks that close over them (``eyes``); derived joints,
regressor and skinning weights. FLAME's regions, UVs and landmark embeddings are kept.
Deterministic: the same inputs give the same file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..flame_assets import FLAME_TOPOLOGY_META, load_flame_topology
from ..layer import HeadLayer
from ..model import FLAME_JOINT_NAMES, HeadModel
from .alignment import apply_similarity, similarity_transform
from .eyes import closing_blink, lid_following_eyeballs, seat_eyeballs
from .ict_source import ICT_ATTRIBUTION, load_ict
from ..mesh_quality import degenerate_triangles, flipped_triangles
from .registration import RegistrationSettings, register_template, untangle_delta
from .rig import PARENTS, derive_rig
from .transfer import rigid_eyeball_deltas, surface_correspondence, transfer_deltas

INNER_LANDMARKS = np.arange(17, 68)
OPEN_MODEL_NAME = "d3dface open head model (ICT-FaceKit Light on the FLAME topology)"


@dataclass
class BuildReport:
    similarity_scale: float  # metres per ICT centimetre
    landmark_error_similarity_mm: float  # inner 51, after similarity alignment
    landmark_error_registered_mm: float  # inner 51, FLAME embedding on the registered template vs ICT
    landmark_error_registered_max_mm: float
    face_surface_distance_mean_mm: float
    face_surface_distance_p95_mm: float
    flipped_before_untangle: int
    flipped_after: int
    shapes_with_folds_before: int = 0
    folded_triangles_before: int = 0
    jaw_centre_m: list = field(default_factory=list)
    jaw_open_angle_deg: float = 0.0
    jaw_rigid_rms_mm: float = 0.0
    eyeball_shift_mm: dict = field(default_factory=dict)  # how far each eyeball moved back behind its lids


def _landmarks(model: HeadModel, vertices: np.ndarray) -> np.ndarray:
    layer = HeadLayer(model, dtype=torch.float64)
    return layer.landmarks68_static_embedding(torch.as_tensor(vertices, dtype=torch.float64)[None])[0].numpy()


IDENTITY_CHECK_SIGMA = 3.0  # identity modes are fold-free over +-3 sigma


def remove_folds(template: np.ndarray, faces: np.ndarray, shapedirs: np.ndarray, exprdirs: np.ndarray,
                 eyeball: np.ndarray) -> dict:
    """Smooth each shape where it folds triangles over (ICT's own shapes fold some: lip rolls,
    mouthClose, blinks), in place: identity modes at +-3 sigma, expressions at weight 1.
    Returns the number of folded triangles before, per shape name."""
    before = {}
    for dirs, scales, prefix in ((shapedirs, (IDENTITY_CHECK_SIGMA, -IDENTITY_CHECK_SIGMA), "identity"), (exprdirs, (1.0,), "expression")):
        for k in range(dirs.shape[2]):
            delta = dirs[:, :, k].astype(np.float64)
            n = sum(len(flipped_triangles(template, template + s * delta, faces))
                    + len(degenerate_triangles(template + s * delta, faces)) for s in scales)
            if n:
                before[f"{prefix}{k}"] = n
                dirs[:, :, k] = untangle_delta(template, delta, faces, scales, rounds=300, fixed=eyeball)
    return before


def build_open_model(ict_dir: str | Path, flame_dir: str | Path,
                     settings: RegistrationSettings | None = None, log=print) -> tuple[HeadModel, BuildReport]:
    """The open head model from ICT-FaceKit Light (``ict_dir``) and the FLAME topology
    (``flame_dir``), with its build report; ``log`` receives one line per step."""
    flame = load_flame_topology(flame_dir)
    ict = load_ict(ict_dir)

    log("aligning ICT-FaceKit to FLAME (similarity on 51 landmarks)")
    lmk_flame = _landmarks(flame, flame.v_template.astype(np.float64))
    s, R, t = similarity_transform(ict.neutral[ict.landmarks68][INNER_LANDMARKS], lmk_flame[INNER_LANDMARKS])
    ict_v = apply_similarity(ict.neutral, s, R, t)
    ict_lmk = ict_v[ict.landmarks68]
    err_sim = np.linalg.norm(ict_lmk - lmk_flame, axis=1)[INNER_LANDMARKS].mean()

    log("registering the FLAME template onto the ICT neutral (non-rigid ICP)")
    reg = register_template(flame, ict_v, ict.triangles, ict.part, ict_lmk, settings)
    template = reg.vertices
    lmk_registered = _landmarks(flame, template)
    err_reg = np.linalg.norm(lmk_registered - ict_lmk, axis=1)[INNER_LANDMARKS]
    log("seating the eyeballs behind the lids")
    shifts = seat_eyeballs(template, flame.regions)

    log("transferring 100 identity and 53 expression shapes")
    shapedirs, exprdirs, eyeball = _transfer_shapes(flame, ict, reg, ict_v, s, R)
    lid_following_eyeballs(template, flame.faces, shapedirs, flame.regions)
    log("removing folds the source shapes make on this topology")
    folds = remove_folds(template, flame.faces, shapedirs, exprdirs, eyeball)
    log("closing the blinks over the eyeballs")
    _close_blinks(flame, template, exprdirs, ict.expression_names, lmk_registered)

    log("deriving joints and skinning weights")
    jaw_open = exprdirs[:, :, ict.expression_names.index("jawOpen")].astype(np.float64)
    regressor, weights, jaw = derive_rig(template, flame.faces, flame.regions, jaw_open)

    report = _build_report(flame, reg, s, err_sim, err_reg, folds, jaw)
    report.eyeball_shift_mm = {side: round(v * 1000, 3) for side, v in shifts.items()}
    rig = (regressor, weights)
    return _head_model(flame, ict, template, shapedirs, exprdirs, rig, _model_meta(ict, report)), report


def _transfer_shapes(flame: HeadModel, ict, reg, ict_v: np.ndarray, s, R) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICT's identity and expression deltas carried onto the registered template: shapedirs
    (V, 3, 100) and exprdirs (V, 3, 53) metres (skin by surface correspondence, eyeballs
    rigidly), and the eyeball vertex ids (both eyes)."""
    template = reg.vertices
    eyeball = np.concatenate([flame.regions["left_eyeball"], flame.regions["right_eyeball"]])
    skin_ids = np.setdiff1d(np.arange(flame.num_vertices), eyeball)
    skin_tris = ict.triangles[(ict.part[ict.triangles] <= 1).all(1)]
    corr = surface_correspondence(template, skin_ids, ict_v, skin_tris)
    bases = []
    for deltas in (ict.identity, ict.expression):
        dirs, d_aligned = transfer_deltas(deltas, corr, s, R)
        for region, part in reg.eyeball_sides.items():
            f_eye = flame.regions[region]
            dirs[f_eye] = rigid_eyeball_deltas(d_aligned, f_eye, np.where(ict.part == part)[0], ict_v, template)
        bases.append(dirs)
    shapedirs, exprdirs = bases
    return shapedirs, exprdirs, eyeball


def _close_blinks(flame: HeadModel, template: np.ndarray, exprdirs: np.ndarray, names: list[str],
                  landmarks: np.ndarray) -> None:
    """Replace the eyeBlink shapes of ``exprdirs`` (V, 3, E), in place, by ``closing_blink`` on the
    eye each one moves most (its lid region's largest carried motion)."""
    for name in ("eyeBlink_L", "eyeBlink_R"):
        k = names.index(name)
        side = max(("left", "right"), key=lambda s: np.abs(exprdirs[flame.regions[f"{s}_eye_region"], :, k]).max())
        exprdirs[:, :, k] = closing_blink(template, flame.faces, exprdirs[:, :, k].astype(np.float64),
                                          flame.regions[f"{side}_eyeball"], flame.regions[f"{side}_eye_region"],
                                          landmarks).astype(np.float32)


def _build_report(flame: HeadModel, reg, s, err_sim, err_reg: np.ndarray, folds: dict, jaw) -> BuildReport:
    """The build report: err_sim (scalar) and err_reg (51,) landmark errors in metres, the
    registration's face surface distances, the folds removed and the derived jaw joint (in mm)."""
    fv = flame.regions["face"]
    return BuildReport(
        similarity_scale=float(s),
        landmark_error_similarity_mm=float(err_sim * 1000),
        landmark_error_registered_mm=float(err_reg.mean() * 1000),
        landmark_error_registered_max_mm=float(err_reg.max() * 1000),
        face_surface_distance_mean_mm=float(reg.surface_distance[fv].mean() * 1000),
        face_surface_distance_p95_mm=float(np.percentile(reg.surface_distance[fv], 95) * 1000),
        flipped_before_untangle=reg.flipped_before_untangle,
        flipped_after=reg.flipped_after,
        shapes_with_folds_before=len(folds),
        folded_triangles_before=int(sum(folds.values())),
        jaw_centre_m=[float(x) for x in jaw.centre],
        jaw_open_angle_deg=float(np.degrees(jaw.angle)),
        jaw_rigid_rms_mm=float(jaw.rms_residual * 1000),
    )


def _model_meta(ict, report: BuildReport) -> dict:
    """The model file's metadata: name, sources, licences, attribution, priors, the build report (JSON)."""
    return {
        "name": OPEN_MODEL_NAME,
        "source": "ICT-FaceKit Light (shared/assets/ict-facekit) carried onto the FLAME topology (shared/assets/flame)",
        "licence": "shape data: MIT (ICT-FaceKit); topology, UVs, regions, landmark embeddings: FLAME (MPI-IS)",
        "attribution": f"{ICT_ATTRIBUTION} Topology: {FLAME_TOPOLOGY_META['attribution']}",
        "ict_licence_text": ict.licence_text,
        "identity_prior": "coefficients ~ N(0, 1) per identity mode (ICT convention)",
        "expression_range": "ARKit blendshape weights in [0, 1]",
        "build_report": json.dumps(asdict(report), sort_keys=True),
    }


def _head_model(flame: HeadModel, ict, template: np.ndarray, shapedirs: np.ndarray, exprdirs: np.ndarray,
                rig: tuple[np.ndarray, np.ndarray], meta: dict) -> HeadModel:
    """The HeadModel: template (V, 3) metres (stored float32), the shape bases, rig = (joint
    regressor, skinning weights), zero pose correctives; FLAME's faces, UVs, regions and landmarks."""
    regressor, weights = rig
    V = flame.num_vertices
    return HeadModel(
        v_template=template.astype(np.float32),
        faces=flame.faces,
        uvs=flame.uvs,
        uv_faces=flame.uv_faces,
        shapedirs=shapedirs,
        exprdirs=exprdirs,
        expr_names=list(ict.expression_names),
        joint_regressor=regressor,
        skinning_weights=weights,
        posedirs=np.zeros((V, 3, 9 * (len(FLAME_JOINT_NAMES) - 1)), np.float32),
        parents=PARENTS.copy(),
        joint_names=list(FLAME_JOINT_NAMES),
        regions=flame.regions,
        lmk68=flame.lmk68,
        lmk_mediapipe=flame.lmk_mediapipe,
        meta=meta,
    )
