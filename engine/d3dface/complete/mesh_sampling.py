"""The Mesh-VAE's sampling hierarchy on a template mesh (Zhou et al. 2020, section 3.3).

Levels are nested vertex subsets of the template: level 0 is every vertex, level l+1 is
chosen from level l by farthest point sampling (FPS) on the mesh graph. On FLAME the
default sizes give 5023 -> 1367 -> 270 -> 45 -> 10 vertices.

Distances are graph (approximately geodesic) distances on the template where each edge
has length ``|u - v| / mean(h_u, h_v)``, h the mean length of a vertex's edges: about 1
per edge everywhere. Sampling is therefore even in *vertices* (the dense face keeps as
many samples per vertex as the sparse scalp), and radii are in "edge units". Parts of the
mesh that are not connected to the rest (FLAME's eyeballs) are bridged to their nearest
vertex on the rest of the mesh so every distance is finite.

Neighbourhoods (fixed-size, padded; ``Connection``):
- ``down[l]``: each level-(l+1) vertex gathers the level-l vertices within ``r_l`` of it,
  ``r_l = radius_factor * `` the FPS covering radius (the largest distance of a level-l
  vertex to its nearest sample), so every level-l vertex lies in at least one
  neighbourhood;
- ``up[l]``: the transpose: each level-l vertex gathers the level-(l+1) samples within
  ``r_l``; every level-l vertex has at least one (its nearest sample is within the
  covering radius);
- ``same[l]``: each level-l vertex gathers the level-l vertices within ``r_l`` (for
  level 0: ``level0_radius``, about the one-ring).

Everything is deterministic (ties broken by the lowest index). ``mesh_hierarchy`` caches
the result in the engine's cache folder (``paths.cache_dir``) keyed by a hash of template, faces and
settings; it takes a few seconds to compute.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from ..atomic import write_atomic
from ..head_model.topology_hash import faces_hash, template_hash  # noqa: F401 - re-exported
from ..paths import cache_dir as engine_cache_dir

FORMAT_VERSION = 1


@dataclass(frozen=True)
class HierarchySettings:
    sizes: tuple[int, ...] = (1367, 270, 45, 10)  # vertices at levels 1.. (level 0 = all)
    radius_factor: float = 1.5  # down/up neighbourhood radius / FPS covering radius
    same_factor: float = 2.2  # same-level radius at level l >= 1 / covering radius of step l-1 -> l
    level0_radius: float = 1.5  # edge units: same-level neighbourhood at full resolution
    cap_ratio: float = 1.5  # at most ceil(cap_ratio * mean count) nearest neighbours (fixed size N)


@dataclass
class Connection:
    """Neighbourhoods from ``num_in`` input points to ``index.shape[0]`` output points.

    index (P_out, N) int64 indices of input points, padded with ``num_in`` (a zero row);
    neighbours are sorted by distance (the point itself first where it is an input).
    """

    index: np.ndarray
    num_in: int

    @property
    def num_out(self) -> int:
        return int(self.index.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """(P_out, N) bool: real neighbour (not padding)."""
        return self.index < self.num_in

    @property
    def counts(self) -> np.ndarray:
        return self.mask.sum(1)


@dataclass
class MeshHierarchy:
    levels: list[np.ndarray]  # level l -> (n_l,) template vertex ids; levels[0] = arange(V)
    radii: list[float]  # r_l of the down/up step l -> l+1, edge units
    down: list[Connection] = field(default_factory=list)  # l -> l+1
    up: list[Connection] = field(default_factory=list)  # l+1 -> l
    same: list[Connection] = field(default_factory=list)  # l -> l, one per level

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self.levels]

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"format_version": np.array(FORMAT_VERSION), "radii": np.asarray(self.radii, np.float64)}
        for l, v in enumerate(self.levels):
            out[f"level{l}"] = v.astype(np.int64)
        for name in ("down", "up", "same"):
            for l, c in enumerate(getattr(self, name)):
                out[f"{name}{l}"] = c.index.astype(np.int64)
        return out

    @classmethod
    def from_arrays(cls, d) -> "MeshHierarchy":
        n = sum(1 for k in d if str(k).startswith("level"))
        levels = [np.asarray(d[f"level{l}"], np.int64) for l in range(n)]
        sizes = [len(v) for v in levels]
        down = [Connection(np.asarray(d[f"down{l}"], np.int64), sizes[l]) for l in range(n - 1)]
        up = [Connection(np.asarray(d[f"up{l}"], np.int64), sizes[l + 1]) for l in range(n - 1)]
        same = [Connection(np.asarray(d[f"same{l}"], np.int64), sizes[l]) for l in range(n)]
        return cls(levels, [float(r) for r in np.asarray(d["radii"])], down, up, same)


# ---- the graph -----------------------------------------------------------------------


def edge_graph(vertices: np.ndarray, faces: np.ndarray) -> sp.csr_matrix:
    """(V, V) symmetric sparse graph of mesh edges in edge units, disconnected parts bridged."""
    v = np.asarray(vertices, np.float64)
    V = len(v)
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    e = np.unique(e, axis=0)
    length = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    sums = np.bincount(e.ravel(), np.repeat(length, 2), V)
    deg = np.bincount(e.ravel(), minlength=V)
    h = np.where(deg > 0, sums / np.maximum(deg, 1), 1.0)
    h[deg == 0] = np.median(h[deg > 0])
    w = length / (0.5 * (h[e[:, 0]] + h[e[:, 1]]))
    G = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(V, V)).tocsr()
    G = G + G.T
    n_comp, labels = connected_components(G, directed=False)
    if n_comp > 1:
        main = np.argmax(np.bincount(labels))
        rows, cols, vals = [], [], []
        for c in range(n_comp):
            if c == main:
                continue
            inside = np.where(labels == c)[0]
            outside = np.where(labels != c)[0]
            dist, j = cKDTree(v[outside]).query(v[inside])
            j = outside[j]
            bw = dist / (0.5 * (h[inside] + h[j]))
            keep = bw <= max(2.0, 1.5 * bw.min())  # bridge only the part facing the rest
            inside, j, bw = inside[keep], j[keep], bw[keep]
            rows += [inside, j]
            cols += [j, inside]
            vals += [bw, bw]
        B = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(V, V)).tocsr()
        G = G + B
    return G.tocsr()


def farthest_point_sampling(G: sp.csr_matrix, candidates: np.ndarray, count: int, start: int) -> tuple[np.ndarray, float]:
    """Pick ``count`` of ``candidates`` (vertex ids) by FPS on G, starting at ``start``.

    Returns (sorted sample ids, covering radius: max over candidates of the distance to
    the nearest sample).
    """
    V = G.shape[0]
    mind = np.full(V, np.inf)
    chosen = [int(start)]
    mind = np.minimum(mind, dijkstra(G, indices=start))
    for _ in range(count - 1):
        cand_d = mind[candidates]
        nxt = int(candidates[int(np.argmax(cand_d))])
        chosen.append(nxt)
        d = dijkstra(G, indices=nxt, limit=float(cand_d.max()) * 1.0001)
        np.minimum(mind, d, out=mind)
    radius = float(mind[candidates].max())
    return np.sort(np.asarray(chosen, np.int64)), radius


def _neighbourhoods(D: np.ndarray, radius: float, cap_ratio: float, cover_inputs: bool) -> Connection:
    """D (P_out, P_in) distances (inf beyond the limit) -> padded Connection within radius.

    Rows keep their N nearest (N = ceil(cap_ratio * mean count)); every row keeps at least
    its nearest input. ``cover_inputs``: inputs left in no row join the row of their
    nearest output (N grows if needed), so every input is used.
    """
    P_out, num_in = D.shape
    within = D <= radius + 1e-9
    nearest = np.argmin(D, axis=1)
    within[np.arange(P_out), nearest] = True
    counts = within.sum(1)
    N = int(min(counts.max(), np.ceil(cap_ratio * counts.mean())))
    order = np.argsort(np.where(within, D, np.inf), axis=1, kind="stable")[:, :N]
    rows = [list(o[w]) for o, w in zip(order, np.take_along_axis(within, order, 1))]
    if cover_inputs:
        used = np.zeros(num_in, bool)
        used[[i for r in rows for i in r]] = True
        for i in np.where(~used)[0]:
            rows[int(np.argmin(D[:, i]))].append(int(i))
    N = max(len(r) for r in rows)
    index = np.full((P_out, N), num_in, np.int64)
    for p, r in enumerate(rows):
        index[p, : len(r)] = r
    return Connection(index, num_in)


def build_hierarchy(vertices: np.ndarray, faces: np.ndarray, settings: HierarchySettings = HierarchySettings()) -> MeshHierarchy:
    """Compute the sampling hierarchy of a template mesh (vertices (V, 3), faces (F, 3))."""
    G = edge_graph(vertices, faces)
    V = G.shape[0]
    v = np.asarray(vertices, np.float64)
    levels = [np.arange(V, dtype=np.int64)]
    radii: list[float] = []
    covers: list[float] = []
    for n in settings.sizes:
        cand = levels[-1]
        # deterministic start: the candidate nearest the centroid of the template
        start = int(cand[np.argmin(np.linalg.norm(v[cand] - v.mean(0), axis=1))])
        samples, cover = farthest_point_sampling(G, cand, n, start)
        levels.append(samples)
        covers.append(cover)
        radii.append(cover * settings.radius_factor)
    h = MeshHierarchy(levels, radii)
    cap = settings.cap_ratio
    for l in range(len(levels)):
        src = levels[l]
        same_r = settings.level0_radius if l == 0 else covers[l - 1] * settings.same_factor
        D = dijkstra(G, indices=src, limit=same_r * 1.0001)[:, src]
        h.same.append(_neighbourhoods(D, same_r, cap, cover_inputs=True))
        if l + 1 < len(levels):
            dst = levels[l + 1]
            D = dijkstra(G, indices=dst, limit=radii[l] * 1.0001)[:, src]  # (n_{l+1}, n_l)
            h.down.append(_neighbourhoods(D, radii[l], cap, cover_inputs=True))
            h.up.append(_neighbourhoods(D.T, radii[l], cap, cover_inputs=True))
    return h


def mesh_hierarchy(vertices: np.ndarray, faces: np.ndarray, settings: HierarchySettings = HierarchySettings(),
                   cache_dir: str | Path | None = "default") -> MeshHierarchy:
    """``build_hierarchy`` with an on-disk cache (default: the engine's, ``paths.cache_dir``;
    ``cache_dir=None``: no cache)."""
    if cache_dir == "default":
        cache_dir = engine_cache_dir()
    key = hashlib.sha256((template_hash(vertices, faces) + json.dumps(asdict(settings), sort_keys=True)).encode()).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / f"mesh_hierarchy_{key}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as d:
                if int(d["format_version"]) == FORMAT_VERSION:
                    return MeshHierarchy.from_arrays({k: d[k] for k in d.files})
        except Exception:  # a broken cache is recomputed
            pass
    h = build_hierarchy(vertices, faces, settings)
    if path is not None:
        try:
            arrays = h.to_arrays()
            write_atomic(path, lambda p: np.savez(p, **arrays))
        except Exception:  # a read-only install still works, just slower
            pass
    return h
