"""Renderer benchmark: median forward+backward time on the FLAME template.

    python -m d3dface.bench.renderer [--sizes 224 512] [--batches 1 8] [--repeats 10]
                                   [--threads N] [--device cpu|cuda] [--flame DIR]

Renders the FLAME template (from ``DIR``, default ``$D3DFACE_SHARED/assets/flame`` or
``../shared/assets/flame`` beside the checkout; an icosphere of 20480 triangles when absent)
with per-vertex albedo and SH light, and prints one line per (size, batch): medians in ms of
the rasteriser alone, the forward pass, and forward + backward of an image loss. On a busy
machine ``--threads 1`` gives steadier numbers than torch's default thread pool.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from ..render.cameras import head_camera
from ..render.renderer import Renderer
from ..render.shading import default_light


def _mesh(flame_dir: str | None):
    if flame_dir and Path(flame_dir).is_dir():
        from ..head_model.flame_assets import load_flame_topology

        m = load_flame_topology(flame_dir)
        return torch.as_tensor(m.v_template), m.faces, "FLAME template"
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=5, radius=0.11)
    return torch.as_tensor(s.vertices, dtype=torch.float32), s.faces, "icosphere"


def bench(size: int, batch: int, repeats: int = 10, flame_dir: str | None = None, device: str = "cpu",
          times_out: list | None = None) -> dict:
    """Median milliseconds for the rasteriser alone, forward (shaded) and forward+backward
    (whose individual times are appended to ``times_out`` when given)."""
    v0, faces, name = _mesh(flame_dir)
    renderer = Renderer(faces)
    g = torch.Generator().manual_seed(0)
    verts = (v0[None] + 1e-3 * torch.randn(batch, *v0.shape, generator=g)).to(device).requires_grad_(True)
    colors = torch.full((batch, v0.shape[0], 3), 0.7, device=device, requires_grad=True)
    light = default_light(batch, device=device).requires_grad_(True)
    cam = head_camera(size, batch=batch, device=device)
    target = torch.zeros(batch, 3, size, size, device=device)

    def timed(fn, out=None):
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()
            times.append(1e3 * (time.perf_counter() - t))
        if out is not None:
            out.extend(times)
        return statistics.median(times)

    def fwd():
        with torch.no_grad():
            renderer(verts, cam, light=light, vertex_colors=colors)

    def fwd_bwd():
        out = renderer(verts, cam, light=light, vertex_colors=colors)
        ((out.image - target) ** 2).mean().backward()

    return {
        "mesh": name,
        "size": size,
        "batch": batch,
        "raster_ms": timed(lambda: renderer.rasterize(verts.detach(), cam)),
        "forward_ms": timed(fwd),
        "forward_backward_ms": timed(fwd_bwd, times_out),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=10)
    shared = os.environ.get("D3DFACE_SHARED") or str(Path(__file__).resolve().parents[3].parent / "shared")
    p.add_argument("--flame", default=str(Path(shared) / "assets" / "flame"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}")
    for size in a.sizes:
        for batch in a.batches:
            r = bench(size, batch, a.repeats, a.flame, a.device)
            print(
                f"{r['mesh']} {size}x{size} B={batch}: raster {r['raster_ms']:.1f} ms, forward {r['forward_ms']:.1f} ms, "
                f"forward+backward {r['forward_backward_ms']:.1f} ms (median of {a.repeats})"
            )


if __name__ == "__main__":
    main()
