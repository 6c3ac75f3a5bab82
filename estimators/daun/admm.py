"""The ADMM of DAUN (Fan, Liu, Li, Huang, §III-A), its unfolded network (§III-B), the
position refinement (Algorithm 1) and the training loop.

One iteration serves both P-ADMM (fixed ``ρ, τ1, τ2, w``) and DAUN (per-layer ``ρ^(i),
τ1^(i), τ2^(i)``, shared ``w_m``), in two implementations pinned equal by the tests:

* :func:`unfolded_admm`, in PyTorch with native complex tensors, differentiable: the
  training (:func:`train_daun`) and the reference;
* :class:`AdmmOperators`, the estimators' (inference): NumPy float32, its dictionaries
  prepared once per problem and kept while the problem lives, and in the real
  coordinates of :func:`reflection_transform` where the arrays allow (half the
  arithmetic). Measured in docs/BENCHMARKS.md ("DAUN timing").

Shapes: ``A [bs, bs_ant, grid]``, ``B [bs, bs_ant, angle]``, ``y [sample, bs, bs_ant]``,
``X [sample, grid, bs]`` (the row-sparse matrix of eq. 3), ``z [sample, bs, angle]``.

References
----------
W. Fan, S. Liu, C. Li, Y. Huang, "Fast Direct Localization for Millimeter Wave MIMO
Systems via Deep ADMM Unfolding", eqs. (3)–(18), Algorithm 1.
"""

from __future__ import annotations

import functools
import math
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from estimators.daun.model import DirectLocalizationProblem, normalise
from estimators.typing import ComplexArray, FloatArray

#: The paper's P-ADMM parameters (Table I's caption): ρ = 5, τ1 = τ2 = 0.5; w_m = 1.
PADMM_RHO, PADMM_TAU1, PADMM_TAU2, PADMM_W = 5.0, 0.5, 0.5, 1.0
_TINY = 1e-12


@dataclass(frozen=True)
class AdmmParameters:
    """Per-layer ``rho, tau1, tau2 [layer]`` and per-BS ``w [bs]`` (3I + M numbers)."""

    rho: tuple[float, ...]
    tau1: tuple[float, ...]
    tau2: tuple[float, ...]
    w: tuple[float, ...]

    @property
    def num_layers(self) -> int:
        return len(self.rho)

    @classmethod
    def fixed(cls, num_layers: int, num_bs: int, *, rho: float = PADMM_RHO,
              tau1: float = PADMM_TAU1, tau2: float = PADMM_TAU2,
              w: float = PADMM_W) -> AdmmParameters:
        """P-ADMM: the same parameters at every iteration."""
        return cls((rho,) * num_layers, (tau1,) * num_layers, (tau2,) * num_layers,
                   (w,) * num_bs)

    def extended(self) -> AdmmParameters:
        """One more layer, initialised as the last (incremental training, §III-B)."""
        return AdmmParameters(self.rho + self.rho[-1:], self.tau1 + self.tau1[-1:],
                              self.tau2 + self.tau2[-1:], self.w)

    def as_dict(self) -> dict[str, list[float]]:
        return {"rho": list(self.rho), "tau1": list(self.tau1), "tau2": list(self.tau2),
                "w": list(self.w)}


def _torch() -> Any:
    import torch

    return torch


def unfolded_admm(
    A: Any, B: Any, y: Any, rho: Any, tau1: Any, tau2: Any, w: Any,
    *, every_layer: bool = False,
) -> Any:
    """``len(rho)`` iterations of eqs. (5)–(7) from zero, in torch.

    ``A [bs, bs_ant, grid]``, ``B [bs, bs_ant, angle]``, ``y [sample, bs, bs_ant]``
    (complex tensors); ``rho, tau1, tau2 [layer]`` and ``w [bs]`` real tensors.

    Returns ``(X [sample, grid, bs], z [sample, bs, angle])``, or with ``every_layer``
    the lists of both after each layer.

    Each layer: ``c = x − τ1 A^H(Ax + Bz − y + s/ρ)`` and the row-wise group shrinkage
    of ``C`` by ``λ1 = τ1/ρ`` (eqs. 11–12); ``d = z − τ2 B^H(Ax' + Bz − y + s/ρ)`` and the
    soft threshold by ``λ2 w_m``, ``λ2 = τ2/ρ`` (eqs. 16–17, the complex soft threshold:
    the proximal operator of the complex l1 norm, where the paper's real form would
    threshold real and imaginary parts apart); ``s ← s + ρ(Ax' + Bz' − y)`` (eq. 7).
    """
    torch = _torch()
    # Samples as rows ([bs, sample, ·] @ [bs, ·, ·]): measured ~3x faster on CPU than
    # samples as columns for these shapes.
    Y = y.transpose(0, 1)  # [bs, sample, bs_ant]
    AT, BT = A.transpose(1, 2), B.transpose(1, 2)  # x @ A^T = (A x)^T
    Aconj, Bconj = A.conj().resolve_conj(), B.conj().resolve_conj()  # r @ conj(A) = (A^H r)^T
    x = torch.zeros(A.shape[0], Y.shape[1], A.shape[2], dtype=Y.dtype)
    z = torch.zeros(B.shape[0], Y.shape[1], B.shape[2], dtype=Y.dtype)
    s = torch.zeros_like(Y)
    Ax, Bz = torch.zeros_like(Y), torch.zeros_like(Y)
    xs, zs = [], []
    for i in range(len(rho)):
        r, t1, t2 = rho[i], tau1[i], tau2[i]
        c = x - t1 * ((Ax + Bz - Y + s / r) @ Aconj)
        norm = torch.sqrt(torch.sum(c.real**2 + c.imag**2, dim=0) + _TINY)  # [sample, grid]
        x = c * (torch.relu(norm - t1 / r) / norm)
        Ax = x @ AT
        d = z - t2 * ((Ax + Bz - Y + s / r) @ Bconj)
        magnitude = torch.sqrt(d.real**2 + d.imag**2 + _TINY)
        z = d * (torch.relu(magnitude - (t2 / r) * w[:, None, None]) / magnitude)
        Bz = z @ BT
        s = s + r * (Ax + Bz - Y)
        if every_layer:
            xs.append(x.permute(1, 2, 0))
            zs.append(z.transpose(0, 1))
    if every_layer:
        return xs, zs
    return x.permute(1, 2, 0), z.transpose(0, 1)


def residual(A: Any, B: Any, y: Any, X: Any, z: Any) -> Any:
    """``‖y − Ax − Bz‖₂² [sample]`` (the NMSE's numerator and eq. 18's norm)."""
    torch = _torch()
    fit = X.permute(2, 0, 1) @ A.transpose(1, 2) + z.transpose(0, 1) @ B.transpose(1, 2)
    return torch.sum(torch.abs(y.transpose(0, 1) - fit) ** 2, dim=(0, 2))


@dataclass(frozen=True)
class AdmmSolution:
    """``X [sample, grid, bs]``, ``z [sample, bs, angle]`` complex128 (of the normalised
    ``y``) and the NMSE ``‖y − Ax − Bz‖²/‖y‖² [sample]``."""

    X: ComplexArray
    z: ComplexArray
    nmse: FloatArray


class TorchProblem:
    """A :class:`DirectLocalizationProblem` as complex64 torch tensors (built once)."""

    def __init__(self, problem: DirectLocalizationProblem) -> None:
        torch = _torch()
        self.problem = problem
        self.A = torch.from_numpy(problem.A.astype(np.complex64))
        self.B = torch.from_numpy(problem.B.astype(np.complex64))

    def tensor(self, y: npt.ArrayLike) -> Any:
        """Normalised ``y [sample, bs, bs_ant]`` as a complex64 tensor."""
        return _torch().from_numpy(normalise(y).astype(np.complex64))

    def solve(self, y: npt.ArrayLike, parameters: AdmmParameters) -> AdmmSolution:
        """Run the iterations on ``y [sample, bs, bs_ant]`` (no gradients)."""
        torch = _torch()
        Y = self.tensor(y)
        p = {k: torch.tensor(v, dtype=torch.float32) for k, v in parameters.as_dict().items()}
        with torch.no_grad():
            X, z = unfolded_admm(self.A, self.B, Y, p["rho"], p["tau1"], p["tau2"], p["w"])
            nmse = residual(self.A, self.B, Y, X, z) / torch.sum(torch.abs(Y) ** 2, dim=(1, 2))
        return AdmmSolution(X.numpy().astype(np.complex128), z.numpy().astype(np.complex128),
                              nmse.numpy().astype(np.float64))


#: Imaginary parts of the transformed dictionaries dropped below this fraction of their
#: largest entry: below float32's resolution (2^-24 = 6e-8 relative) they do not change
#: the float32 iteration beyond its own rounding.
_REAL_DICTIONARY_REL = 1e-7
#: Samples :meth:`AdmmOperators.solve` iterates at once: the iterates of 32 samples at
#: the paper's K = 900 (0.9 MB) stay in cache. Measured: 200 at once ~1.4x slower per
#: sample; blocks of 8 to 64 alike within this machine's noise.
SAMPLES_PER_BLOCK = 32
#: Planar rows (twice the samples) up to which ``D x`` multiplies by ``D``'s transpose
#: in place (:meth:`_Dictionary.apply`).
_FEW_ROWS = 16


def reflection_transform(element_positions: npt.ArrayLike) -> ComplexArray | None:
    """For an array symmetric through its reference point (an element at ``−r`` for each
    at ``r``), a unitary ``T [bs_ant, bs_ant]`` that makes every steering vector real;
    None for another array.

    Each element ``n`` is paired with the one at ``−r_n`` (an element at the reference
    point with itself); for a pair ``(n, n')``, ``(T a)_n = (a_n + a_n')/√2`` and ``(T
    a)_n' = −j (a_n − a_n')/√2``, which are ``√2 Re a_n`` and ``√2 Im a_n`` for a steering
    vector (``a_n' = exp(−j k u·r_n) = conj(a_n)``).

    ``element_positions [bs_ant, 3]`` [m] relative to the reference point. Centred planar
    arrays (:func:`estimators.arrays.planar_array_positions`) are symmetric.

    References
    ----------
    The left-Π-real unitary matrices of unitary ESPRIT (M. Haardt, J. A. Nossek,
    "Unitary ESPRIT: how to obtain increased estimation accuracy with a reduced
    computational burden", IEEE Trans. Signal Process. 43(5), 1995), with the pairs in
    the array's own order.
    """
    r = np.asarray(element_positions, dtype=np.float64)
    tolerance = 1e-9 * max(float(np.max(np.abs(r))), 1e-300)
    partner = np.full(len(r), -1)
    for n in range(len(r)):
        if partner[n] >= 0:
            continue
        # Indices below n are paired already: the first free mirror is n itself only
        # for an element at the reference point.
        free = np.flatnonzero((partner < 0) & (np.max(np.abs(r + r[n]), axis=1) <= tolerance))
        if len(free) == 0:
            return None
        partner[n], partner[free[0]] = free[0], n
    T = np.zeros((len(r), len(r)), dtype=np.complex128)
    for n, m in enumerate(partner):
        if m == n:
            T[n, n] = 1.0
        elif n < m:
            T[n, n] = T[n, m] = np.sqrt(0.5)
            T[m, n], T[m, m] = -1j * np.sqrt(0.5), 1j * np.sqrt(0.5)
    return T


@dataclass(frozen=True)
class _Layer:
    """One layer's float32 constants: ``ρ``, ``1/ρ``, ``τ1``, ``τ2``, ``λ1 = τ1/ρ`` and
    ``λ2 w_m [bs, 1, 1]``."""

    rho: np.float32
    inverse_rho: np.float32
    tau1: np.float32
    tau2: np.float32
    lambda1: np.float32
    lambda2_w: npt.NDArray[np.float32]


@functools.lru_cache(maxsize=16)
def _layers(parameters: AdmmParameters) -> tuple[_Layer, ...]:
    # float32 as the reference's tensors: the same thresholds to the last bit.
    f32 = np.float32
    w = np.asarray(parameters.w, dtype=np.float32)[:, None, None]
    return tuple(_Layer(f32(r), f32(1) / f32(r), f32(t1), f32(t2), f32(t1) / f32(r),
                        (f32(t2) / f32(r)) * w)
                 for r, t1, t2 in zip(parameters.rho, parameters.tau1, parameters.tau2,
                                      strict=True))


class _Dictionary:
    """One dictionary ``D [bs, bs_ant, column]`` in the iteration's coordinates, float32,
    as the two matrices its products need (made contiguous once).

    Vectors are held "planar": a complex ``[bs, sample, n]`` as the real ``[bs, 2
    sample, n]`` of its real parts over its imaginary parts. ``D`` real (its imaginary
    part dropped, :data:`_REAL_DICTIONARY_REL`): one real product each way. ``D``
    complex: the same products on ``[Re D; Im D]`` stacked, the halves recombined on the
    ``bs_ant`` side (the cheap one).
    """

    def __init__(self, D: ComplexArray) -> None:
        def largest(part: FloatArray) -> float:  # max |part| without an |.| temporary
            return max(float(part.max()), -float(part.min()))

        scale = max(largest(D.real), largest(D.imag))
        self.real = largest(D.imag) <= _REAL_DICTIONARY_REL * scale
        parts = D.real if self.real else np.concatenate([D.real, D.imag], axis=1)
        self.adjoint = np.ascontiguousarray(parts, dtype=np.float32)  # [bs, (2) ant, col]
        self.forward = np.ascontiguousarray(parts.transpose(0, 2, 1), dtype=np.float32)

    def apply_adjoint(self, r: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``D^H r`` (planar ``[bs, 2 sample, column]``) of planar ``r [bs, 2 sample,
        bs_ant]``."""
        if self.real:
            return r @ self.adjoint
        # [Re r, Im r; Im r, −Re r] @ [Re D; Im D] = [Re; Im] of r @ conj(D).
        half = r.shape[1] // 2
        swapped = np.concatenate([r[:, half:], -r[:, :half]], axis=1)
        return np.concatenate([r, swapped], axis=2) @ self.adjoint

    def apply(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``D x`` (planar ``[bs, 2 sample, bs_ant]``) of planar ``x [bs, 2 sample,
        column]``."""
        # A few samples: the adjoint's matrix as the transposed operand (measured 3x
        # faster for one sample with OpenBLAS); more: its contiguous transpose.
        few = x.shape[1] <= _FEW_ROWS
        product = x @ (self.adjoint.transpose(0, 2, 1) if few else self.forward)
        if self.real:
            return product
        half, n = x.shape[1] // 2, product.shape[2] // 2
        # x @ [Re D^T, Im D^T]: Re(Dx) = Re D Re x − Im D Im x, Im(Dx) = Im D Re x + Re D Im x.
        return np.concatenate([product[:, :half, :n] - product[:, half:, n:],
                               product[:, :half, n:] + product[:, half:, :n]], axis=1)


class AdmmOperators:
    """A :class:`DirectLocalizationProblem` prepared for :func:`unfolded_admm`'s
    iteration without gradients (the estimators'): :meth:`of` builds it once per problem
    object and keeps it while that object lives.

    The iteration runs in the coordinates ``ỹ_m = T_m y_m`` of each BS's
    :func:`reflection_transform` (the identity for an array without the symmetry):
    ``T_m`` is unitary and acts on the ``bs_ant`` side only, so the residuals, the dual
    variable and every ``A^H r`` are those of eqs. (5)–(7), while ``T_m A_m`` and ``T_m
    B_m`` are real, and each product costs half the complex one. Float32 throughout, as
    the reference.

    Attributes
    ----------
    A, B : the prepared ``A [bs, bs_ant, grid]`` and ``B [bs, bs_ant, angle]``.
    transform : ``[bs, bs_ant, bs_ant]`` complex128, ``T_m``; None for the identity.
    """

    def __init__(self, problem: DirectLocalizationProblem) -> None:
        transforms = [reflection_transform(r) for r in problem.element_positions]
        if any(T is None for T in transforms):
            self.transform = None
            A, B = problem.A, problem.B
        else:
            self.transform = np.stack(transforms)  # type: ignore[arg-type]
            A = self.transform @ problem.A
            B = self.transform @ problem.B
        self.A = _Dictionary(A)
        self.B = _Dictionary(B)

    @classmethod
    def of(cls, problem: DirectLocalizationProblem) -> AdmmOperators:
        """The operators of ``problem`` (built on the first call for this object).

        Keyed by the object, checked through a weak reference: a problem of another
        geometry or grid is another object, and an entry leaves with its problem, so a
        new problem never meets an old one's dictionaries (problems are immutable)."""
        key = id(problem)
        entry = _OPERATORS.get(key)
        if entry is not None and entry[0]() is problem:
            return entry[1]
        operators = cls(problem)
        _OPERATORS[key] = (weakref.ref(problem), operators)
        weakref.finalize(problem, _OPERATORS.pop, key, None)
        return operators

    def planar(self, y: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Normalised ``y [sample, bs, bs_ant]`` in the iteration's coordinates, planar
        ``[bs, 2 sample, bs_ant]`` float32."""
        v = normalise(y).transpose(1, 0, 2)  # [bs, sample, bs_ant]
        if self.transform is not None:
            v = v @ self.transform.transpose(0, 2, 1)
        return np.ascontiguousarray(np.concatenate([v.real, v.imag], axis=1),
                                    dtype=np.float32)

    def solve(self, y: npt.ArrayLike, parameters: AdmmParameters) -> AdmmSolution:
        """:func:`unfolded_admm` with ``parameters`` on ``y [sample, bs, bs_ant]``, and
        the NMSE, as :meth:`TorchProblem.solve` (equal to float32 rounding); in blocks of
        :data:`SAMPLES_PER_BLOCK` samples."""
        Y = self.planar(y)
        M, rows, _ = Y.shape
        S = rows // 2
        K, L = self.A.forward.shape[1], self.B.forward.shape[1]
        X = np.empty((S, K, M), dtype=np.complex128)
        Z = np.empty((S, M, L), dtype=np.complex128)
        nmse = np.empty(S)
        for first in range(0, S, SAMPLES_PER_BLOCK):
            block = slice(first, min(first + SAMPLES_PER_BLOCK, S))
            n = block.stop - block.start
            Yb = np.concatenate([Y[:, block], Y[:, S + block.start:S + block.stop]], axis=1)
            x, z, error = self._iterate(Yb, _layers(parameters))
            X[block].real = x[:, :n].transpose(1, 2, 0)
            X[block].imag = x[:, n:].transpose(1, 2, 0)
            Z[block].real = z[:, :n].transpose(1, 0, 2)
            Z[block].imag = z[:, n:].transpose(1, 0, 2)
            residual = np.einsum("isn,isn->s", *(2 * [error.reshape(2 * M, n, -1)]),
                                 dtype=np.float64)
            energy = np.einsum("isn,isn->s", *(2 * [Yb.reshape(2 * M, n, -1)]),
                               dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):  # y = 0: NaN, as torch's
                nmse[block] = residual / energy
        return AdmmSolution(X, Z, nmse)

    def _iterate(self, Y: npt.NDArray[np.float32], layers: tuple[_Layer, ...]
                 ) -> tuple[npt.NDArray[np.float32], ...]:
        """The layers on planar ``Y [bs, 2 sample, bs_ant]``: planar ``x [bs, 2 sample,
        grid]``, ``z [bs, 2 sample, angle]`` and the residual ``Ax + Bz − y``."""
        M, rows, _ = Y.shape
        S = rows // 2
        K, L = self.A.forward.shape[1], self.B.forward.shape[1]
        x = np.zeros((M, rows, K), dtype=np.float32)
        z = np.zeros((M, rows, L), dtype=np.float32)
        s = np.zeros_like(Y)
        Ax, Bz = np.zeros_like(Y), np.zeros_like(Y)
        error = -Y
        for layer in layers:
            base = Bz - Y
            base += s * layer.inverse_rho  # Bz − y + s/ρ, shared by both steps
            r = Ax + base
            r *= layer.tau1
            c = self.A.apply_adjoint(r)
            np.subtract(x, c, out=c)
            # Row-wise group shrinkage (eq. 12): ‖c_k‖ over the BSs' real and imaginary parts.
            planes = c.reshape(2 * M, S, K)
            norm = np.einsum("isk,isk->sk", planes, planes)
            norm += _TINY
            np.sqrt(norm, out=norm)
            shrink = norm - layer.lambda1
            np.maximum(shrink, 0, out=shrink)
            shrink /= norm
            planes *= shrink
            x = c
            Ax = self.A.apply(x)
            r = Ax + base
            r *= layer.tau2
            d = self.B.apply_adjoint(r)
            np.subtract(z, d, out=d)
            # Complex soft threshold (eq. 17) by λ2 w_m.
            square = d * d
            magnitude = square[:, :S] + square[:, S:]
            magnitude += _TINY
            np.sqrt(magnitude, out=magnitude)
            soft = magnitude - layer.lambda2_w
            np.maximum(soft, 0, out=soft)
            soft /= magnitude
            d.reshape(M, 2, S, L)[...] *= soft[:, None]
            z = d
            Bz = self.B.apply(z)
            error = Ax + Bz
            error -= Y
            s += layer.rho * error
        return x, z, error


#: id(problem) -> (weak reference to it, its operators): :meth:`AdmmOperators.of`.
_OPERATORS: dict[int, tuple[weakref.ref[DirectLocalizationProblem], AdmmOperators]] = {}


def solve(problem: DirectLocalizationProblem, y: npt.ArrayLike,
          parameters: AdmmParameters) -> AdmmSolution:
    """The iterations on ``y [sample, bs, bs_ant]`` (the estimators' path:
    :class:`AdmmOperators`, prepared once per problem)."""
    return AdmmOperators.of(problem).solve(y, parameters)


# ------------------------------------------------------------------ position selection


def grid_index(X: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """``k̂ = argmax_k ‖[X]_{k,:}‖₂`` per sample (after eq. 3): ``X [sample, grid, bs]``."""
    return np.argmax(np.sum(np.abs(np.asarray(X)) ** 2, axis=-1), axis=-1)


def refined_grid_index(X: npt.ArrayLike, *, min_los_bs: int = 3,
                       max_passes: int = 10) -> npt.NDArray[np.int64]:
    """Algorithm 1 (position refinement): per grid row, split the BSs into a strong
    (active LOS) and a weak cluster by a 1-D two-means on ``|[X]_{k,m}|`` (initial
    centres the row's maximum and 0; each BS joins the nearer centre and both centres are
    re-averaged after each BS, lines 3–9; passes until no label changes); keep the rows
    with at least ``min_los_bs`` strong BSs (line 11) and pick the one whose strong part
    has the largest norm (line 12). A sample with no such row falls back to
    :func:`grid_index`.

    The extracted line 5 reads "if |X − χ1| > |X − χ2| then S1 ∪ {i}", the reverse of
    the prose ("cluster the active elements into S1"); the prose is followed.
    """
    v = np.abs(np.asarray(X))  # [sample, grid, bs]
    M = v.shape[-1]
    centre1 = v.max(axis=-1)
    centre2 = np.zeros_like(centre1)
    strong = np.ones(v.shape, dtype=bool)
    for _ in range(max_passes):
        previous = strong.copy()
        for m in range(M):
            strong[..., m] = np.abs(v[..., m] - centre1) <= np.abs(v[..., m] - centre2)
            seen = np.arange(M) <= m
            s1, s2 = strong & seen, ~strong & seen
            n1, n2 = s1.sum(-1), s2.sum(-1)
            centre1 = np.where(n1 > 0, np.sum(v * s1, -1) / np.maximum(n1, 1), centre1)
            centre2 = np.where(n2 > 0, np.sum(v * s2, -1) / np.maximum(n2, 1), 0.0)
        if np.array_equal(strong, previous):
            break
    score = np.sum(v**2 * strong, axis=-1)
    eligible = strong.sum(-1) >= min_los_bs
    score = np.where(eligible, score, -np.inf)
    chosen = np.argmax(score, axis=-1)
    fallback = ~eligible.any(axis=-1)
    return np.where(fallback, grid_index(X), chosen)


# -------------------------------------------------------------------------- training

Loss = Literal["residual", "position"]


@dataclass(frozen=True)
class TrainingLog:
    """Per layer added: epochs run and the best validation loss; the loss used."""

    loss: str
    epochs: tuple[int, ...]
    validation: tuple[float, ...]
    seconds: float = 0.0


def train_daun(
    problem: DirectLocalizationProblem,
    train: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    validation: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    *,
    num_layers: int,
    rng: np.random.Generator,
    loss: Loss = "residual",
    samples_per_layer: int = 700,
    batch_size: int = 7,
    learning_rate: float = 0.05,
    late_learning_rate: float = 0.01,
    late_after_layers: int = 5,
    max_epochs: int = 20,
    patience: int = 1,
    temperature: float = 0.05,
    initial: AdmmParameters | None = None,
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> tuple[AdmmParameters, TrainingLog]:
    """Incremental layer-wise training of DAUN (§III-B).

    ``train`` and ``validation`` are ``(y [sample, bs, bs_ant], snr_db [sample],
    position [sample, 3] [m])``. Layer ``i`` is appended initialised as layer ``i − 1``
    (the first as P-ADMM), then the whole network is trained with Adam (mini-batches of
    ``batch_size``, ``samples_per_layer`` fresh training samples per new layer, cycling
    through ``train``; ``learning_rate``, ``late_learning_rate`` once the network has
    more than ``late_after_layers`` layers) until the validation loss has not improved
    for ``patience`` epochs (the paper: "terminated when the validation loss was not
    decreasing", i.e. 1) or ``max_epochs``; the best epoch's parameters are kept.

    ``loss``: ``"residual"``, the SNR-weighted loss of eq. (18), ``(1 + σ(−ω̄)) ‖y − Ax −
    Bz‖²`` at the last layer (unsupervised); or ``"position"``, supervised: ``‖p̂ −
    p‖²`` of the soft-argmax position ``p̂ = Σ_k π_k Φ_k``, ``π = softmax(‖X_k‖ /
    (temperature · max_k ‖X_k‖))`` (x, y only).

    Parameters are learned in the log domain (they must stay positive). ``on_epoch(layer,
    epoch, validation_loss)`` reports progress.
    """
    torch = _torch()
    torch.manual_seed(int(rng.integers(2**31)))
    tp = TorchProblem(problem)
    grid = torch.from_numpy(problem.grid_points[:, :2].astype(np.float32))

    def tensors(part: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]) -> tuple[Any, ...]:
        y, snr, p = part
        return (tp.tensor(y), torch.tensor(np.asarray(snr), dtype=torch.float32),
                torch.tensor(np.asarray(p)[:, :2], dtype=torch.float32))

    y_tr, snr_tr, p_tr = tensors(train)
    y_va, snr_va, p_va = tensors(validation)
    n_train = y_tr.shape[0]

    def objective(log_params: dict[str, Any], y: Any, snr: Any, p: Any) -> Any:
        rho, t1, t2, w = (torch.exp(log_params[k]) for k in ("rho", "tau1", "tau2", "w"))
        X, z = unfolded_admm(tp.A, tp.B, y, rho, t1, t2, w)
        if loss == "residual":
            return torch.mean((1 + torch.sigmoid(-snr)) * residual(tp.A, tp.B, y, X, z))
        strength = torch.sqrt(torch.sum(torch.abs(X) ** 2, dim=-1) + _TINY)  # [sample, grid]
        logits = strength / (temperature * strength.max(dim=-1, keepdim=True).values)
        estimate = torch.softmax(logits, dim=-1) @ grid
        return torch.mean(torch.sum((estimate - p) ** 2, dim=-1))

    start = time.perf_counter()
    params = initial or AdmmParameters.fixed(1, problem.num_bs)
    epochs_log, validation_log = [], []
    cursor = 0
    order = rng.permutation(n_train)
    for layers in range(params.num_layers if initial else 1, num_layers + 1):
        while params.num_layers < layers:
            params = params.extended()
        log_params = {k: torch.tensor(np.log(v), dtype=torch.float32, requires_grad=True)
                      for k, v in params.as_dict().items()}
        rate = learning_rate if layers <= late_after_layers else late_learning_rate
        optimiser = torch.optim.Adam(list(log_params.values()), lr=rate)
        take = order[(cursor + np.arange(samples_per_layer)) % n_train]
        cursor += samples_per_layer
        with torch.no_grad():
            best = float(objective(log_params, y_va, snr_va, p_va))
        best_params, stale, epoch = params, 0, 0
        for epoch in range(1, max_epochs + 1):
            shuffled = rng.permutation(take)
            for first in range(0, len(shuffled), batch_size):
                batch = torch.from_numpy(shuffled[first:first + batch_size])
                optimiser.zero_grad()
                value = objective(log_params, y_tr[batch], snr_tr[batch], p_tr[batch])
                value.backward()
                optimiser.step()
            with torch.no_grad():
                current = float(objective(log_params, y_va, snr_va, p_va))
            if on_epoch is not None:
                on_epoch(layers, epoch, current)
            if current < best and math.isfinite(current):
                best, stale = current, 0
                best_params = AdmmParameters(
                    *(tuple(float(v) for v in torch.exp(log_params[k]).detach().numpy())
                      for k in ("rho", "tau1", "tau2", "w")))
            else:
                stale += 1
                if stale >= patience:
                    break
        params = best_params
        epochs_log.append(epoch)
        validation_log.append(best)
    return params, TrainingLog(loss, tuple(epochs_log), tuple(validation_log),
                               time.perf_counter() - start)


def positions(problem: DirectLocalizationProblem, X: npt.ArrayLike, *, refine: bool,
              min_los_bs: int = 3) -> FloatArray:
    """Grid positions ``[sample, 3]`` [m] chosen from ``X`` (eq. 3's rule or Algorithm 1)."""
    index = refined_grid_index(X, min_los_bs=min_los_bs) if refine else grid_index(X)
    return problem.grid_points[index]


def parameters_from(values: dict[str, Sequence[float]]) -> AdmmParameters:
    """:class:`AdmmParameters` from a checkpoint's ``{rho, tau1, tau2, w}`` lists."""
    return AdmmParameters(*(tuple(float(v) for v in values[k])
                            for k in ("rho", "tau1", "tau2", "w")))
