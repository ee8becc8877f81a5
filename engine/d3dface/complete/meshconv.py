"""MeshConv layers after Zhou et al. 2020 ("Fully Convolutional Mesh Autoencoder using
Efficient Spatially Varying Kernels"): vcConv, and residual blocks that keep, pool or
unpool the vertex set along a fixed neighbourhood ``Connection``.

vcConv (variant coefficients). An output point p with neighbours n = 1..N (input points
``index[p, n]``) computes

    y_p = sum_n sum_m A[p, n, m] * (x_{index[p, n]} @ basis[m]) + bias_p

with M shared basis kernels ``basis`` (M, C_in, C_out) and learned per-point, per-neighbour
coefficients ``A`` (P_out, N, M). Neighbourhoods are padded to a fixed N with the index
``num_in`` that reads an appended zero row, so padding contributes nothing; everything is
gathers and einsums, no Python loop over points.

Two evaluation orders, picked per call by their multiply count:
- "fuse": contract coefficients with gathered neighbours, then the basis
  (B P N M Ci + B P M Ci Co multiplies);
- "weights": build the per-point kernels W[p, n] = sum_m A[p, n, m] basis[m] (batch
  independent), then one batched matmul over points (P N M Ci Co + B P N Ci Co).
When the layer's parameters need no gradient (inference, latent optimisation) and
``cache_inference`` is set, the per-point kernels are instead assembled once into one
sparse CSR matrix (P_out C_out, P_in C_in) (int32 indices; its transpose too, once a
gradient to the input is asked for) and applied with one sparse-dense product; on CUDA
the dense kernels W are cached instead. Caches live until a parameter changes. This skips
materialising the gathered neighbours and is what makes decoding fast on a CPU; the
Mesh-VAE turns it off for its encoder (run once per photo) to save memory.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F


class _SparseApply(torch.autograd.Function):
    """y = S @ x for a constant CSR matrix S, with the cached transpose for the backward
    pass (torch would otherwise transpose S on every backward)."""

    @staticmethod
    def forward(ctx, x, S, S_t):
        ctx.S_t = S_t
        return S @ x

    @staticmethod
    def backward(ctx, grad):
        return ctx.S_t @ grad, None, None


class VCConv(nn.Module):
    """x (B, P_in, C_in) -> (B, P_out, C_out) over a fixed padded neighbourhood index."""

    def __init__(self, index: torch.Tensor, num_in: int, in_channels: int, out_channels: int,
                 num_basis: int = 17, point_bias: bool = True):
        super().__init__()
        index = torch.as_tensor(index, dtype=torch.long)
        P, N = index.shape
        self.num_in, self.num_out, self.num_neighbours = int(num_in), int(P), int(N)
        self.in_channels, self.out_channels, self.num_basis = in_channels, out_channels, num_basis
        mask = (index < num_in).float()
        self.register_buffer("index", index)
        self.register_buffer("mask", mask)
        counts = mask.sum(1, keepdim=True).clamp(min=1)
        # variance-preserving init: Var(y) ~ Var(x) for unit-variance inputs
        self.coeffs = nn.Parameter(torch.randn(P, N, num_basis) * mask[..., None] / torch.sqrt(counts * num_basis)[..., None])
        self.basis = nn.Parameter(torch.randn(num_basis, in_channels, out_channels) / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(P if point_bias else 1, out_channels))
        self.cache_inference = True  # False: no cached matrices at inference (saves memory)
        self._cache_key: tuple | None = None
        self._cache: dict = {}

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """(B, P_in, C) -> (B, P_out, N, C) neighbour features (zeros for padding)."""
        B, _, C = x.shape
        pad = torch.cat([x, x.new_zeros(B, 1, C)], 1)
        return pad[:, self.index]

    def dense_kernels(self) -> torch.Tensor:
        with torch.no_grad():
            return self.kernels()

    def kernels(self) -> torch.Tensor:
        """Per-point kernels (P_out, N * C_in, C_out)."""
        W = torch.einsum("pnm,mio->pnio", self.coeffs * self.mask[..., None], self.basis)
        return W.reshape(self.num_out, self.num_neighbours * self.in_channels, self.out_channels)

    def sparse_matrix(self) -> torch.Tensor:
        """The layer as a CSR matrix (P_out * C_out, P_in * C_in) (no bias), built without
        grad: row p * C_out + o holds, for each real neighbour n of p (padding skipped) and
        input channel c, the weight W[p, n, c, o] at column index[p, n] * C_in + c."""
        with torch.no_grad():
            P, N, Ci, Co = self.num_out, self.num_neighbours, self.in_channels, self.out_channels
            dev = self.coeffs.device
            W = self.kernels().reshape(P, N, Ci, Co).permute(0, 3, 1, 2)  # (P, Co, N, Ci)
            keep = (self.mask > 0)[:, None, :, None].expand(P, Co, N, Ci)
            values = W[keep]
            cols = (self.index[:, None, :, None] * Ci + torch.arange(Ci, device=dev)).expand(P, Co, N, Ci)[keep]
            per_row = (self.mask.sum(1).long() * Ci).repeat_interleave(Co)  # (P * Co,)
            crow = torch.cat([per_row.new_zeros(1), per_row.cumsum(0)])
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore")
                return torch.sparse_csr_tensor(crow.int(), cols.int(), values, (P * Co, self.num_in * Ci))

    def sparse_transpose(self) -> torch.Tensor:
        """The transpose of ``sparse_matrix`` as CSR (for gradients to the input)."""
        S = self._cached(self.sparse_matrix)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            T = S.to_sparse_csc()
            return torch.sparse_csr_tensor(T.ccol_indices(), T.row_indices(), T.values(), (S.shape[1], S.shape[0]))

    def _cached(self, build):
        """``build()`` once per parameter version, device and dtype (inference only)."""
        key = (self.coeffs._version, self.basis._version, self.coeffs.data_ptr(), self.basis.data_ptr(),
               self.coeffs.device, self.coeffs.dtype)
        if self._cache_key != key:
            self._cache_key, self._cache = key, {}
        name = build.__name__
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        P, N, M, Ci, Co = self.num_out, self.num_neighbours, self.num_basis, self.in_channels, self.out_channels
        frozen = not (torch.is_grad_enabled() and (self.coeffs.requires_grad or self.basis.requires_grad))
        if frozen and self.cache_inference and x.device.type == "cpu":
            S = self._cached(self.sparse_matrix)
            xb = x.permute(1, 2, 0).reshape(self.num_in * Ci, B)
            if xb.requires_grad:
                y = _SparseApply.apply(xb, S, self._cached(self.sparse_transpose))
            else:
                y = S @ xb
            return y.reshape(P, Co, B).permute(2, 0, 1) + self.bias
        g = self.gather(x)  # (B, P, N, Ci)
        if frozen and self.cache_inference:  # CUDA inference: dense per-point kernels, cached
            W = self._cached(self.dense_kernels)
            return torch.einsum("bpk,pko->bpo", g.reshape(B, P, N * Ci), W) + self.bias
        cost_fuse = B * P * N * M * Ci + B * P * M * Ci * Co
        cost_weights = B * P * N * Ci * Co + P * N * M * Ci * Co
        if cost_weights <= cost_fuse:
            y = torch.einsum("bpk,pko->bpo", g.reshape(B, P, N * Ci), self.kernels())
        else:
            f = torch.einsum("pnm,bpni->bpmi", self.coeffs * self.mask[..., None], g)  # (B, P, M, Ci)
            y = f.reshape(B, P, M * Ci) @ self.basis.reshape(M * Ci, Co)
        return y + self.bias

    def train(self, mode: bool = True):
        self._cache_key, self._cache = None, {}
        return super().train(mode)


class ResidualPath(nn.Module):
    """The block's shortcut: channel projection (if C_in != C_out), then, if the vertex set
    changes, an average over the neighbourhood with learned non-negative weights."""

    def __init__(self, index: torch.Tensor, num_in: int, in_channels: int, out_channels: int):
        super().__init__()
        index = torch.as_tensor(index, dtype=torch.long)
        P, N = index.shape
        self.same_points = num_in == P
        self.num_in = int(num_in)
        self.cache_inference = True
        self.project = nn.Linear(in_channels, out_channels, bias=False) if in_channels != out_channels else None
        if not self.same_points:
            self.register_buffer("index", index)
            self.register_buffer("mask", (index < num_in).float())
            self.pool_weights = nn.Parameter(torch.ones(P, N))

    def pool_matrix(self) -> torch.Tensor:
        """(P_out, N) normalised non-negative pooling weights (0 on padding)."""
        w = self.pool_weights.abs() * self.mask
        return w / (w.sum(1, keepdim=True) + 1e-8)

    def _sparse_pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR (P_out, P_in) of the pooling weights and its transpose, cached while the
        weights are unchanged (inference on CPU)."""
        key = (self.pool_weights._version, self.pool_weights.data_ptr())
        if getattr(self, "_pool_key", None) != key:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w, keep = self.pool_matrix(), self.mask > 0
                rows = torch.arange(len(w), device=w.device)[:, None].expand_as(w)[keep]
                S = torch.sparse_coo_tensor(torch.stack([rows, self.index[keep]]), w[keep],
                                            (len(w), self.num_in)).coalesce()
                self._pool = (S.to_sparse_csr(), S.t().coalesce().to_sparse_csr())
            self._pool_key = key
        return self._pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.project is not None:
            x = self.project(x)
        if self.same_points:
            return x
        B, _, C = x.shape
        frozen = not (torch.is_grad_enabled() and self.pool_weights.requires_grad)
        if frozen and self.cache_inference and x.device.type == "cpu":
            S, S_t = self._sparse_pool()
            xb = x.permute(1, 0, 2).reshape(x.shape[1], B * C)
            y = _SparseApply.apply(xb, S, S_t) if xb.requires_grad else S @ xb
            return y.reshape(-1, B, C).permute(1, 0, 2)
        w = self.pool_matrix()
        pad = torch.cat([x, x.new_zeros(B, 1, C)], 1)
        return torch.einsum("pn,bpnc->bpc", w, pad[:, self.index])


class MeshConvBlock(nn.Module):
    """y = sqrt(1 - r) * ELU(vcConv(x)) + sqrt(r) * shortcut(x); the last layer of a
    network has no ELU. Pooling (down) or unpooling (up) happens when the connection maps
    between two levels of the hierarchy (Zhou et al.'s down/up residual blocks)."""

    def __init__(self, index, num_in: int, in_channels: int, out_channels: int, num_basis: int = 17,
                 residual_rate: float = 0.5, activation: bool = True):
        super().__init__()
        self.conv = VCConv(index, num_in, in_channels, out_channels, num_basis)
        self.residual_rate = float(residual_rate)
        self.shortcut = ResidualPath(index, num_in, in_channels, out_channels) if residual_rate > 0 else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.activation:
            y = F.elu(y)
        if self.shortcut is None:
            return y
        r = self.residual_rate
        return math.sqrt(1 - r) * y + math.sqrt(r) * self.shortcut(x)
