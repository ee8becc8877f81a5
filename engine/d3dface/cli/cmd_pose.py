"""``d3dface pose``: write a mesh of the head model at given or random parameters."""

from __future__ import annotations

import math

import torch

from ..errors import InputFileError
from ..head_model import HeadLayer, load_head_model
from ..outputs.mesh_files import write_mesh
from .common import ASSETS_HELP, MODEL_HELP


def register(sub) -> None:
    p = sub.add_parser("pose", help="write a posed mesh of a head model (.obj with UVs or .ply)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--assets", help=ASSETS_HELP)
    p.add_argument("--shape-sigma", type=float, default=0.0,
                   help="random identity: coefficients ~ N(0, sigma^2) (default: %(default)s, the mean identity)")
    p.add_argument("--expression", action="append", default=[], metavar="NAME=W",
                   help="expression weight by name or index (repeatable), e.g. jawOpen=0.5")
    p.add_argument("--yaw", type=float, default=0.0, help="head yaw in degrees, root joint (default: %(default)s)")
    p.add_argument("--jaw", type=float, default=0.0, help="jaw opening in degrees, needs LBS (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random identity (default: %(default)s)")
    p.add_argument("--out", required=True, help="output mesh file (.obj or .ply)")
    p.set_defaults(run=run)


def run(args) -> int:
    model = load_head_model(args.model, assets=args.assets)
    layer = HeadLayer(model)
    params = layer.zeros(1)
    gen = torch.Generator().manual_seed(args.seed)
    if args.shape_sigma > 0 and layer.num_shape:
        params["shape"] = torch.randn(1, layer.num_shape, generator=gen) * args.shape_sigma
    for item in args.expression:
        name, _, weight = item.partition("=")
        try:
            idx = int(name) if name.isdigit() else model.expr_names.index(name)
            params["expression"][0, idx] = float(weight or 1.0)
        except (ValueError, IndexError):
            raise InputFileError(f"unknown expression {name!r} (the model has {model.num_expr})") from None
    params["pose"][0, 1] = math.radians(args.yaw)
    if args.jaw:
        if not layer.has_lbs:
            raise InputFileError("--jaw needs a head model with joints (LBS); this one has none")
        params["pose"][0, 6] = math.radians(args.jaw)
    if not layer.has_lbs:
        params["pose"] = params["pose"][:, :3]
    with torch.no_grad():
        verts = layer(**params).vertices[0].numpy()
    path = write_mesh(args.out, verts, model.faces, model.uvs, model.uv_faces)
    print(f"wrote {path} ({verts.shape[0]} vertices, {model.faces.shape[0]} faces)")
    return 0
