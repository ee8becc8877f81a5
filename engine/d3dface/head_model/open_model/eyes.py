"""The open model's eyes: eyeballs seated behind the lids, and blinks that close the lids over them.

The carried ICT eyeballs come out too far forward for FLAME's lids (their centroid is not the
sphere's centre: ICT's eyeball mesh bulges at the cornea), so the lids cut the eyeballs at rest;
and the carried eyeBlink shapes move FLAME's lid margin too little to close the eye (the surface
correspondence does not follow the margin). Both are mended here, on the registered template,
in the model's canonical frame (metres, y up, looking down +z):

- ``seat_eyeballs``: each eyeball moves straight back (-z) until every lid vertex clears the
  eyeball's own surface by ``clearance``. The surface is the eyeball's radius per angle from its
  front axis (the cornea bulges past the fitted sphere).
- ``lid_following_eyeballs``: in the identity modes each eyeball moves with its lids.
- ``closing_blink``: the lids turn about the horizontal axis through the eyeball's centre, so they
  keep their distance from it, until the upper margin comes down onto the lower one. The margins
  are where the lid mesh meets the eyeball, between the corners given by the eye landmarks of
  FLAME's 68-point embedding (iBUG 36-47). The turn is whole at the margins and fades out over
  the lid towards the rest of the face, where the carried ICT blink is kept; where the lids would
  come too close to the eyeball (the cornea's bulge included), they are pushed out from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..mesh_quality import adjacency
from ..self_intersection import fit_sphere

SEAT_CLEARANCE_M = 6e-4  # at rest the lid vertices clear the eyeball's surface by this
BLINK_CLEARANCE_M = 3e-4  # and while they close, by this (twice at weight 1)
SEAT_MAX_SHIFT_M = 8e-3
# iBUG eye landmarks: (outer corner, upper pair, inner corner, lower pair), one tuple per eye.
EYE_LANDMARKS = ((36, (37, 38), 39, (41, 40)), (42, (43, 44), 45, (47, 46)))
CORNER_WIDEN = 0.12
MARGIN_NEAR_M = 1.5e-3  # lid vertices this close to the eyeball are on the margin
MARGIN_BINS = 12
CLOSE_AT = 0.3  # the lids meet 30% of the way from the lower margin to the upper one
MARGIN_BAND_DEG = (6.0, 4.0)  # upper, lower: lid vertices this close to their margin turn fully
CURL_NEAR_M = 3e-3  # skin outside the lid region but this close to the eyeball turns with the lid
# and so, in part, does the socket skin up to SOCKET_BAND_M behind the eyeball's surface: all of
# the turn at the surface, none at this depth, where the socket keeps still (no vertex switches
# between still and turning when a rebuild on another CPU moves it by a fraction of a millimetre)
SOCKET_BAND_M = 5e-4
SLIT_DEG = 2.0  # the closed margins stay this far apart (the lash line)
CLEARANCE_ROUNDS = 8  # rounds of pushes
# The closed upper margin lies STACK_GAP_M in front of the lower margin's vertices within
# STACK_SPAN_M across and STACK_DEG of its height (those within STACK_LOWER_NEAR_M of the eyeball),
# where the lids part by more than STACK_MIN_GAP_DEG.
STACK_SPAN_M = 2e-3
STACK_DEG = 4.0
STACK_MIN_GAP_DEG = 15.0
STACK_GAP_M = 3e-4
STACK_LOWER_NEAR_M = 3.5e-3


@dataclass
class EyeballProfile:
    """An eyeball as a sphere with a bulge: centre (3,) metres and radius (metres) per angle
    from its front axis (+z), sampled at ``angles_deg``."""
    centre: np.ndarray
    angles_deg: np.ndarray
    radius: np.ndarray

    @classmethod
    def of(cls, points: np.ndarray, bins: int = 36) -> "EyeballProfile":
        """Profile of the eyeball vertices ``points`` (N, 3): the fitted sphere's centre and the
        largest vertex radius in each angle bin (a small upward margin covers the facets)."""
        centre, r = fit_sphere(points)
        p = points - centre
        d = np.linalg.norm(p, axis=1)
        ang = np.degrees(np.arccos(np.clip(p[:, 2] / d, -1, 1)))
        edges = np.linspace(0, 180, bins + 1)
        radius = np.full(bins, r)
        for k in range(bins):
            sel = (ang >= edges[k]) & (ang < edges[k + 1])
            if sel.any():
                radius[k] = d[sel].max()
        # each bin's value covers its neighbours too (a lid vertex between two bins' vertices)
        radius = np.maximum(radius, np.maximum(np.roll(radius, 1), np.roll(radius, -1)))
        return cls(centre, 0.5 * (edges[1:] + edges[:-1]), radius)

    def surface_radius(self, points: np.ndarray) -> np.ndarray:
        """(N,) the eyeball's radius in the direction of each of ``points`` (N, 3)."""
        p = points - self.centre
        ang = np.degrees(np.arccos(np.clip(p[:, 2] / np.maximum(np.linalg.norm(p, axis=1), 1e-12), -1, 1)))
        return np.interp(ang, self.angles_deg, self.radius)

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """(N,) distance of ``points`` outside the eyeball's surface (negative inside), metres."""
        return np.linalg.norm(points - self.centre, axis=1) - self.surface_radius(points)


def seat_eyeballs(vertices: np.ndarray, regions: dict, clearance: float = SEAT_CLEARANCE_M) -> dict:
    """Move each eyeball of ``vertices`` (V, 3), in place, straight back until its lid vertices
    (``{side}_eye_region``) clear it by ``clearance`` metres. Returns {side: shift in metres}."""
    shifts = {}
    for side in ("left", "right"):
        eye = np.asarray(regions[f"{side}_eyeball"])
        lid = vertices[np.asarray(regions[f"{side}_eye_region"])]
        prof = EyeballProfile.of(vertices[eye])
        steps = np.arange(0.0, SEAT_MAX_SHIFT_M + 1e-9, 5e-5)
        shift = next((s for s in steps if EyeballProfile(prof.centre - [0, 0, s], prof.angles_deg, prof.radius)
                      .clearance(lid).min() >= clearance), steps[-1])
        vertices[eye, 2] -= shift
        shifts[side] = float(shift)
    return shifts


def lid_following_eyeballs(template: np.ndarray, faces: np.ndarray, shapedirs: np.ndarray, regions: dict) -> None:
    """Give each eyeball, in every identity mode of ``shapedirs`` (V, 3, K) (in place), the
    translation that keeps its lids' distances from its centre, to first order and in the least
    squares: the lid vertices within CURL_NEAR_M of it at rest, each along its own direction
    from the centre. (The carried ICT eyeball motion keeps ICT's lids, not FLAME's, at their
    distance: on random identities they came to cut the seated eyeballs.) Gaze does not turn."""
    for side in ("left", "right"):
        eye = np.asarray(regions[f"{side}_eyeball"])
        lid = np.asarray(regions[f"{side}_eye_region"])
        prof = EyeballProfile.of(template[eye])
        rim = lid[prof.clearance(template[lid]) < CURL_NEAR_M]
        n = template[rim] - prof.centre
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        radial = np.einsum("ic,ick->ik", n, shapedirs[rim].astype(np.float64))  # (rim, K)
        move, *_ = np.linalg.lstsq(n, radial, rcond=None)  # (3, K)
        shapedirs[eye] = move[None].astype(shapedirs.dtype)
        # the hidden skin around the eyeball, off the lid region (the socket behind it and the
        # margin's curl into the socket), moves with the eyeball
        near = _rings_from(faces, len(template), lid, 2) < 2
        is_eye = np.zeros(len(template), bool)
        is_eye[eye] = True
        in_lid = np.zeros(len(template), bool)
        in_lid[lid] = True
        hidden = near & ~is_eye & ~in_lid & (prof.clearance(template) < CURL_NEAR_M)
        shapedirs[hidden] = move[None].astype(shapedirs.dtype)


def _phi(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Angle (degrees) of ``points`` (N, 3) about the x axis through ``centre``: 0 straight ahead, positive up."""
    q = points - centre
    return np.degrees(np.arctan2(q[:, 1], q[:, 2]))


def _margin_curves(landmarks: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The eye's margins from the iBUG eye landmarks ``landmarks`` (68, 3) nearest ``centre``:
    x (8,) metres, the upper and lower margins' angles (8,) degrees (``_phi``) at those x, from
    corner to corner. The corners move out by CORNER_WIDEN of the eye's width (the landmark
    corners sit inside the mesh's own)."""
    a, upper, b, lower = min(EYE_LANDMARKS, key=lambda t: abs(landmarks[t[0], 0] - centre[0]))
    corners = landmarks[[a, b]]
    width = abs(corners[1, 0] - corners[0, 0])
    lo_x, hi_x = sorted(corners[:, 0])
    inner_x = np.sort(landmarks[[a, *upper, *lower, b], 0])
    x = np.array([lo_x - CORNER_WIDEN * width, *inner_x, hi_x + CORNER_WIDEN * width])

    def curve(ids):
        pts = landmarks[[a, *ids, b]]
        order = np.argsort(pts[:, 0])
        return np.interp(x, pts[order, 0], _phi(pts[order], centre))

    up, lo = curve(upper), curve(lower)
    mid = 0.5 * (up + lo)
    up[[0, -1]] = lo[[0, -1]] = mid[[0, -1]]
    return x, up, lo


def _mesh_margins(lid_points: np.ndarray, prof: EyeballProfile, x: np.ndarray, up: np.ndarray, lo: np.ndarray,
                  bins: int = MARGIN_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The margins where the lid mesh meets the eyeball: of the ``lid_points`` (N, 3) within
    MARGIN_NEAR_M of the eyeball's surface, the lowest above the landmark curves' middle and the
    highest below it, per x bin between the corners (``x``, ``up``, ``lo`` from ``_margin_curves``;
    bins without such points keep the landmark curves). Returns x (bins + 2,), upper, lower."""
    near = lid_points[prof.clearance(lid_points) < MARGIN_NEAR_M]
    phi = _phi(near, prof.centre)
    mid = np.interp(near[:, 0], x, 0.5 * (up + lo))
    edges = np.linspace(x[0], x[-1], bins + 1)
    xb = 0.5 * (edges[1:] + edges[:-1])
    ub, lb = np.interp(xb, x, up), np.interp(xb, x, lo)
    k = np.digitize(near[:, 0], edges) - 1
    for b in range(bins):
        above, below = (k == b) & (phi > mid), (k == b) & (phi <= mid)
        if above.any():
            ub[b] = max(ub[b], phi[above].min())
        if below.any():
            lb[b] = min(lb[b], phi[below].max())
    ends = 0.5 * (up[[0, -1]] + lo[[0, -1]])
    return np.array([x[0], *xb, x[-1]]), np.array([ends[0], *ub, ends[1]]), np.array([ends[0], *lb, ends[1]])


def _rotate_x(points: np.ndarray, centre: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """Turn each of ``points`` (N, 3) about the x axis through ``centre`` by its angle (N,), degrees
    (positive lifts the front up)."""
    t = np.radians(angle_deg)
    q = points - centre
    y = np.cos(t) * q[:, 1] + np.sin(t) * q[:, 2]
    z = -np.sin(t) * q[:, 1] + np.cos(t) * q[:, 2]
    return centre + np.stack([q[:, 0], y, z], 1)


def _rings_from(faces: np.ndarray, num_vertices: int, start: np.ndarray, rings: int) -> np.ndarray:
    """(V,) edge hops from the ``start`` vertices, capped at ``rings``."""
    A = adjacency(faces, num_vertices)
    hops = np.full(num_vertices, rings, np.int64)
    front = np.zeros(num_vertices, bool)
    front[start] = True
    for k in range(rings):
        hops[front & (hops > k)] = k
        front = front | (np.asarray(A @ front.astype(float)).ravel() > 0)
    return hops


def _harmonic(A: sp.csr_matrix, free: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (V, C) with the ``free`` (V,) bool vertices replaced by the harmonic interpolation
    (each the mean of its edge neighbours) of all the others on the graph ``A`` (V, V)."""
    f = np.flatnonzero(free)
    b = np.flatnonzero(~free)
    deg = np.asarray(A.sum(1)).ravel()
    L = sp.diags(deg[f]) - A[f][:, f]
    out = values.copy()
    out[f] = spla.spsolve(L.tocsc(), A[f][:, b] @ values[b]).reshape(len(f), -1)
    return out


@dataclass
class _LidTurns:
    """The closing turn of one eye's moving lid vertices (N of them)."""
    turn: np.ndarray  # (N,) degrees about the x axis (negative: down) at the margins
    margin: np.ndarray  # (N,) bool: vertices that take their whole turn
    upper: np.ndarray  # (N,) bool: on the upper lid
    front_of_lower: np.ndarray  # (N, N) bool: i must end in front of j (upper margin, lower margin)


def _lid_turns(p: np.ndarray, prof: EyeballProfile, clear: np.ndarray, landmarks: np.ndarray) -> _LidTurns:
    """Turns closing the lids of vertices ``p`` (N, 3) (their clearances ``clear`` (N,) metres):
    the margins (``_mesh_margins``) go to either side of the line CLOSE_AT of the way up from the
    lower one, SLIT_DEG apart. Skin between them (at the corners, where the lids join) is squeezed
    into that slit in its order, so that no triangle turns over."""
    c = prof.centre
    x = p[:, 0]
    xs, pu, pl = _mesh_margins(p, prof, *_margin_curves(landmarks, c))
    phi_u, phi_l = np.interp(x, xs, pu), np.interp(x, xs, pl)
    gap = np.where((x > xs[0]) & (x < xs[-1]), np.maximum(phi_u - phi_l, 0.0), 0.0)
    phi_close = phi_l + CLOSE_AT * gap
    phi = _phi(p, c)
    upper = phi > 0.5 * (phi_u + phi_l)
    margin = np.where(upper, phi < phi_u + MARGIN_BAND_DEG[0], phi > phi_l - MARGIN_BAND_DEG[1])
    top, bottom = phi_close + 0.5 * SLIT_DEG, phi_close - 0.5 * SLIT_DEG
    turn = np.where(upper, top - phi_u, bottom - phi_l)
    between = (phi > phi_l) & (phi < phi_u)
    squeezed = bottom + (phi - phi_l) / np.maximum(phi_u - phi_l, 1e-9) * SLIT_DEG
    turn = np.where(between, squeezed - phi, turn)
    edge_u = upper & margin & ~between & (gap > STACK_MIN_GAP_DEG)
    edge_l = ~upper & margin & ~between & (clear < STACK_LOWER_NEAR_M)
    front = (np.abs(x[:, None] - x[None, :]) < STACK_SPAN_M) & edge_u[:, None] & edge_l[None, :]
    return _LidTurns(turn, margin | between, upper, front)


def socket_follow(clearance: np.ndarray, in_lid: np.ndarray) -> np.ndarray:
    """(N,) share of the lids' motion that skin with ``clearance`` (N,) metres from the eyeball's
    surface (negative inside) takes: 1 on the lid region (``in_lid`` (N,) bool) and outside the
    eyeball, falling to 0 at SOCKET_BAND_M inside it."""
    return np.where(in_lid, 1.0, np.clip(1.0 + clearance / SOCKET_BAND_M, 0.0, 1.0))


def closing_blink(template: np.ndarray, faces: np.ndarray, carried: np.ndarray, eyeball: np.ndarray,
                  lid: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The blink delta (V, 3) metres for one eye: the lids of ``lid`` (vertex ids) turned closed
    about the centre of the ``eyeball`` vertices, ``carried`` (V, 3) (the transferred ICT blink)
    elsewhere; ``landmarks`` (68, 3) are the template's iBUG points.

    The margins take the whole turn of ``_lid_turns``. Three fields are interpolated harmonically
    over the lid from the margins to its border with the rest of the face, where they vanish: the
    turn, the weight of the turn against the carried blink, and a push away from the eyeball's
    centre. Pushes are added where a vertex would come closer than the clearance to the eyeball,
    at weight 1 (twice the clearance, for a triangle's sag) or halfway (where a shape key puts it
    on the chord of its arc), and where the closed upper margin would not lie in front of the
    lower one; neighbours share a push. The skin SOCKET_BAND_M or more behind the eyeball's
    surface keeps still; FLAME's lid margin curls into the socket through vertices outside the
    lid region that lie within CURL_NEAR_M of the eyeball, and they turn with the lids, as does,
    in part (``socket_follow``), the socket skin between."""
    prof = EyeballProfile.of(template[eyeball])
    c = prof.centre
    V = len(template)
    A = adjacency(faces, V)
    is_eye = np.zeros(V, bool)
    is_eye[eyeball] = True
    clear = prof.clearance(template)
    in_lid = np.zeros(V, bool)
    in_lid[lid] = True
    near_lid = _rings_from(faces, V, lid, 2) < 2
    socket = ~in_lid & ~is_eye & near_lid & (clear <= -SOCKET_BAND_M)
    moving = (in_lid | (~is_eye & near_lid & (clear < CURL_NEAR_M))) & ~socket
    ids = np.flatnonzero(moving)
    p = template[ids]
    lt = _lid_turns(p, prof, clear[ids], landmarks)

    fixed = ~moving  # turn (degrees) and weight: fixed at the margins, zero off the lids
    fixed[ids[lt.margin]] = True
    fields = np.zeros((V, 2))
    fields[ids[lt.margin]] = np.stack([lt.turn[lt.margin], np.ones(lt.margin.sum())], 1)
    turn, weight = _harmonic(A, ~fixed, fields)[ids].T
    d0 = np.linalg.norm(p - c, axis=1)

    def place(e, w=1.0):
        moved = _rotate_x(p, c, w * turn)
        return c + (moved - c) * ((d0 + w * e) / d0)[:, None]

    push_fixed = ~moving  # the push (metres): fixed where a clearance asks for it
    push = np.zeros((V, 1))
    A_lid = A[ids][:, ids].tocsr()
    # the clearance asked for: the socket skin's own at rest where it lies a band's depth behind the
    # eyeball, the blink's from the surface out, and in between in proportion
    follow = socket_follow(clear[ids], in_lid[ids])
    rest = (1.0 - follow) * np.minimum(clear[ids], 0.0)
    for _ in range(CLEARANCE_ROUNDS):
        e = _harmonic(A, ~push_fixed, push)[ids, 0]
        end, half = place(e), place(e, 0.5)
        d_end, d_half = np.linalg.norm(end - c, axis=1), np.linalg.norm(half - c, axis=1)
        lack = np.maximum(prof.surface_radius(end) + follow * 2 * BLINK_CLEARANCE_M + rest - d_end,
                          (prof.surface_radius(half) + follow * BLINK_CLEARANCE_M + rest - d_half) / 0.5)
        phi_end = _phi(end, c)
        beside = lt.front_of_lower & (np.abs(phi_end[None, :] - phi_end[:, None]) < STACK_DEG)
        stack = np.where(beside, d_end[None, :] + STACK_GAP_M - d_end[:, None], -np.inf).max(1)
        lack = np.maximum(lack, stack)
        lack = np.maximum(lack, np.asarray(A_lid.multiply(lack[None, :]).max(1).todense()).ravel())
        bad = lack > 1e-6
        if not bad.any():
            break
        push[ids[bad], 0] = e[bad] + lack[bad] * (1.0 + 1e-3)
        push_fixed[ids[bad]] = True
    e = _harmonic(A, ~push_fixed, push)[ids, 0]
    out = np.asarray(carried, np.float64).copy()
    out[ids] = (place(e) - p) + (1.0 - np.clip(weight, 0, 1))[:, None] * out[ids]
    out[ids] *= follow[:, None]
    out[socket] = 0.0
    return out
