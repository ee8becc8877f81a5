"""Mesh-VAE checkpoint files: the shipped default, exported models and training states.

A model file is a ``torch.save`` dict holding only tensors, numbers, strings, lists and
dicts (read back with ``weights_only=True``: loading never runs code):

- ``format`` "d3dface-mesh-vae", ``format_version``
- ``config``: MeshVAEConfig as a dict; ``hierarchy``: the sampling hierarchy's arrays
- ``state``: the module's state dict (float16 storage for exported models)
- ``template_hash``: hash of the head model's template + faces it was trained for
  (``mesh_sampling.template_hash``), ``faces_hash``: hash of its triangles alone (files
  written before it existed lack it), ``head_model``: that model's name
- ``info``: training facts (data, preset, steps, time, metrics) for the model card

A training state (``--resume``) adds ``optimizer``, ``step``, ``epoch``, ``settings`` and
``history``. Every failure to read a file is one ``ModelFileError`` line.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic
from ..errors import ModelFileError
from ..paths import DATA_DIR
from .mesh_sampling import MeshHierarchy, faces_hash
from .mesh_vae import MeshVAE, MeshVAEConfig

FORMAT_NAME = "d3dface-mesh-vae"
FORMAT_VERSION = 1
DEFAULT_VAE_FILE = DATA_DIR / "mesh_vae_open.pt"
ENV_VAE = "D3DFACE_MESH_VAE"
# A checkpoint serves a head model whose template lies this close to the one it was trained on
# (metres, largest per-vertex offset). Rebuilds of the open model from ../shared on other CPUs
# were seen to differ by up to 0.062 mm (mean 0.0003 mm); the Mesh-VAE's own reconstruction
# error is about 1.2 mm, so 0.25 mm changes nothing it computes.
TEMPLATE_TOLERANCE_M = 2.5e-4


def model_payload(vae: MeshVAE, model_hash: str, head_model_name: str = "", info: dict | None = None,
                  half: bool = False, model_faces_hash: str = "") -> dict:
    """The dict a model file stores. model_hash: ``template_hash`` of the head model trained
    for, model_faces_hash: ``faces_hash`` of its triangles; ``half``: float16 storage of
    floating-point tensors."""
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() and k != "template" else v.detach().cpu())
             for k, v in vae.state_dict().items()}  # the template stays float32 (absolute positions)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": vae.config.as_dict(),
        "hierarchy": {k: torch.as_tensor(v) for k, v in vae.hierarchy.to_arrays().items()},
        "state": state,
        "template_hash": model_hash,
        "faces_hash": model_faces_hash,
        "head_model": head_model_name,
        "info": dict(info or {}),
    }


def save_payload(path: str | os.PathLike, payload: dict) -> Path:
    return write_atomic(path, lambda p: torch.save(payload, p))


def read_payload(path: str | os.PathLike, what: str = "Mesh-VAE checkpoint") -> dict:
    """torch.load a checkpoint safely; any problem is one ModelFileError line."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} not found: {path}")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, zipfile.BadZipFile, Exception) as exc:  # noqa: B014
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"cannot read {what} {path}: {msg[:200]}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a d3dface Mesh-VAE checkpoint")
    if int(d.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{path} is Mesh-VAE format {d['format_version']}; this engine reads up to {FORMAT_VERSION}")
    return d


def vae_from_payload(d: dict, source: str = "checkpoint", device="cpu") -> MeshVAE:
    """Rebuild the module from a payload; mismatches become ModelFileError."""
    try:
        config = MeshVAEConfig.from_dict(d["config"])
        hierarchy = MeshHierarchy.from_arrays({k: np.asarray(v) for k, v in d["hierarchy"].items()})
        state = d["state"]
        template = state["template"].float().numpy()
        vae = MeshVAE(template, hierarchy, config)
        vae.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{source} does not hold a usable Mesh-VAE: {msg[:200]}") from None
    vae.template_hash = str(d.get("template_hash", ""))
    vae.faces_hash = str(d.get("faces_hash", ""))
    vae.head_model_name = str(d.get("head_model", ""))
    vae.info = dict(d.get("info", {}))
    return vae.to(device)


def load_vae(path: str | os.PathLike, device="cpu", template=None, faces=None) -> MeshVAE:
    """Load a Mesh-VAE for inference (eval mode, parameters frozen).

    With ``template`` (V, 3) and ``faces`` (F, 3) given, check it serves that head model
    (``check_compatible``) and raise ModelFileError otherwise.
    """
    d = read_payload(path)
    vae = vae_from_payload(d, str(path), device)
    if template is not None and faces is not None:
        check_compatible(vae, template, faces, str(path))
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae


def check_compatible(vae: MeshVAE, template, faces, source: str = "checkpoint") -> None:
    """A checkpoint serves a head model when they mean the same mesh: the same vertex count and
    triangles (where the file records them) and templates within TEMPLATE_TOLERANCE_M. Bitwise
    equality is not asked for: a rebuild on another CPU differs in the last bits."""
    template = np.asarray(template, np.float64)
    stored = vae.template.detach().cpu().double().numpy()
    what = f"Mesh-VAE {source} was trained for another head model ({vae.head_model_name or vae.template_hash or 'unnamed'})"
    fix = "train one for this model with 'd3dface train-vae'"
    if stored.shape != template.shape:
        raise ModelFileError(f"{what}: {stored.shape[0]} vertices, this model has {template.shape[0]}; {fix}")
    if vae.faces_hash and vae.faces_hash != faces_hash(faces):
        raise ModelFileError(f"{what}: its triangles differ from this model's; {fix}")
    off = float(np.linalg.norm(stored - template, axis=1).max())
    if off > TEMPLATE_TOLERANCE_M:
        raise ModelFileError(f"{what}: templates differ by up to {off * 1000:.2f} mm "
                             f"(tolerance {TEMPLATE_TOLERANCE_M * 1000:.2f} mm); {fix}")


def default_vae_path() -> Path:
    env = os.environ.get(ENV_VAE)
    return Path(env) if env else DEFAULT_VAE_FILE


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu'/'cuda' as asked."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelFileError("--device cuda was asked for but CUDA is not available")
    return torch.device(device)


def load_default_vae(device="auto", model=None) -> MeshVAE:
    """The shipped Mesh-VAE for the open head model (or ``$D3DFACE_MESH_VAE``).

    ``model`` (a HeadModel): check the checkpoint was trained for it.
    """
    dev = resolve_device(device)
    if model is None:
        return load_vae(default_vae_path(), dev)
    return load_vae(default_vae_path(), dev, model.v_template, model.faces)
