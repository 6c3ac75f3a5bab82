"""Multi-dimensional atomic norm denoising of MIMO-OFDM channels (LOCMAN's core).

The per-subcarrier channels ``H[k] [rx_ant, tx_ant]`` of a ULA-to-ULA MIMO-OFDM link,

    H[k] = Σ_l c_l z_l^k a_R(ω_R,l) a_T(ω_T,l)^H,   z_l = exp(-j 2π Δf τ_l),

(uniform subcarrier spacing ``Δf``, ULA spatial frequencies ``ω`` per element step), are
lifted into the block-Hankel *virtual channel matrix* (Li et al. §II-B, eqs. 5-6)

    V = G(H) = [H[i + j]]_{i < L1, j < L2},   L1 + L2 - 1 = K,

``V [L1 rx_ant, L2 tx_ant]``, which is ``Σ_l c_l u_l w_l^H`` with the 2-level Vandermonde
vectors ``u_l = d_L1(z_l) ⊗ a_R(ω_R,l)`` and ``w_l = d_L2(z_l^*) ⊗ a_T(ω_T,l)``: rank =
number of paths (property O1), block Hankel (O3), and ``G`` is one-to-one (O4).

Its atomic norm (eq. 9) over atoms ``u w^H`` has the SDP characterization of Prop. 4
(eq. 17), written here with the atoms' norms ``n1 = L1 rx_ant``, ``n2 = L2 tx_ant``:

    ||V||_A = min ½ (tr T(u1) / n1 + tr T(u2) / n2)  s.t.  [[T(u1), V], [V^H, T(u2)]] ⪰ 0,

``T(·)`` 2-level Toeplitz (eq. 16). The denoiser (eq. 13) is

    min_H ½ Σ_k ||Y[k] - H[k] X[k]||_F² + μ ||G(H)||_A,

``Y[k] [rx_ant, G]`` received, ``X[k] [tx_ant, G]`` known pilots. Outside the paper,
the same denoiser with the *decoupled* matrix ``H`` as ``[subcarrier, rx_ant tx_ant]``
instead of ``V`` (:class:`Lift`; Zhang et al.): ``Θ`` of order ``K + Nr Nt`` instead of
``L1 Nr + L2 Nt`` (96 against 392 at 64 subcarriers, 4 and 8 antennas). Two solvers:
:func:`solve_sdp` (cvxpy, SCS — the reference) and :func:`solve_admm` (first order:
least-squares step, 2-level Toeplitz projection, PSD eigen-projection). Parameters come
from the Vandermonde decompositions of ``T(u1)``, ``T(u2)`` (matrix pencil with pairing,
§III-D) by :func:`decompose`.

References
----------
J. Li, M. Ferreira Da Costa, U. Mitra, "Joint localization and orientation estimation in
millimeter-wave MIMO OFDM systems via atomic norm minimization", IEEE Trans. Signal
Process., 2022 (arXiv 2203.00892): eqs. (5)-(6), (9), (13)-(14), (16)-(17), §III-D.
B. N. Bhaskar, G. Tang, B. Recht, "Atomic norm denoising with applications to line
spectral estimation", IEEE TSP 61(23), 2013 (ADMM, §III-C; regularization, eq. 16).
Z. Zhang, Y. Wang, Z. Tian, "Efficient two-dimensional line spectrum estimation based on
decoupled atomic norm minimization", Signal Processing 163, 2019 (the decoupled SDP).
Z. Yang, L. Xie, P. Stoica, "Vandermonde decomposition of multilevel Toeplitz matrices
with application to multidimensional super-resolution", IEEE TIT 62(6), 2016 (MaPP).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from estimators.typing import ComplexArray, FloatArray, IntArray

#: A fixed irrational mixing weight for joint diagonalization (pairing, MaPP): any
#: generic value separates distinct eigenvalue pairs; a fixed one keeps runs identical.
_PAIRING_WEIGHT = 0.6180339887498949


# ----------------------------------------------------------------- virtual channel


def hankel_sizes(num_subcarriers: int) -> tuple[int, int]:
    """Block rows and columns ``(L1, L2)`` of the virtual matrix: ``L1 + L2 - 1 = K``,
    ``L1 = ⌈K/2⌉`` (square blocks for odd ``K``, as the paper assumes)."""
    L1 = (num_subcarriers + 1) // 2
    return L1, num_subcarriers + 1 - L1


@functools.lru_cache(maxsize=32)
def _antidiagonal(L1: int, L2: int) -> IntArray:
    return np.add.outer(np.arange(L1), np.arange(L2))


def hankel_lift(H: npt.ArrayLike) -> ComplexArray:
    """Virtual channel matrix ``V = G(H)`` (eqs. 5-6).

    Parameters
    ----------
    H : ``[subcarrier, rx_ant, tx_ant]`` complex.

    Returns
    -------
    V : ``[L1 rx_ant, L2 tx_ant]`` complex128, block ``(i, j)`` = ``H[i + j]``.
    """
    h = np.asarray(H, dtype=np.complex128)
    K, Nr, Nt = h.shape
    L1, L2 = hankel_sizes(K)
    blocks = h[_antidiagonal(L1, L2)]  # [L1, L2, Nr, Nt]
    return np.ascontiguousarray(blocks.transpose(0, 2, 1, 3).reshape(L1 * Nr, L2 * Nt))


def hankel_adjoint(V: npt.ArrayLike, shape: tuple[int, int, int]) -> ComplexArray:
    """Adjoint of :func:`hankel_lift`: sums the blocks of each anti-diagonal.

    ``shape = (subcarrier, rx_ant, tx_ant)``; returns ``[subcarrier, rx_ant, tx_ant]``.
    """
    K, Nr, Nt = shape
    L1, L2 = hankel_sizes(K)
    blocks = np.asarray(V, dtype=np.complex128).reshape(L1, Nr, L2, Nt).transpose(0, 2, 1, 3)
    out = np.zeros(shape, dtype=np.complex128)
    np.add.at(out, _antidiagonal(L1, L2), blocks)
    return out


def hankel_counts(num_subcarriers: int) -> FloatArray:
    """How many blocks of ``V`` hold ``H[k]``: ``[subcarrier]`` (``G^* G = diag``)."""
    L1, L2 = hankel_sizes(num_subcarriers)
    return np.bincount(_antidiagonal(L1, L2).ravel(), minlength=num_subcarriers).astype(float)


#: The lifted matrix ``V`` whose atomic norm the denoiser takes (eq. 13):
#: ``"hankel"`` the paper's block-Hankel virtual channel (eqs. 5-6), ``Θ`` of order
#: ``L1 Nr + L2 Nt`` (``(K + 1) N`` for ``Nr = Nt = N``); ``"decoupled"`` the channel as a
#: ``[subcarrier, rx_ant tx_ant]`` matrix, ``Σ_l c_l d_K(z_l) (a_R ⊗ a_T^*)^T``, whose
#: atoms are a delay Vandermonde vector times a 2-level spatial one (the decoupled ANM of
#: Zhang et al. 2019 with the delay as one level): ``Θ`` of order ``K + Nr Nt``.
Formulation = Literal["hankel", "decoupled"]
FORMULATIONS: tuple[Formulation, ...] = ("hankel", "decoupled")


@dataclass(frozen=True)
class Lift:
    """The lifted matrix ``V [n_row, n_column]`` of a formulation and the 2-level Toeplitz
    structure of the two diagonal blocks of ``Θ`` (eq. 17).

    ``T_row [n_row, n_row]`` has ``row_levels`` blocks of ``row_size``, ``T_column``
    likewise. ``"hankel"``: ``T_row`` holds ``(z, e^{jω_R})`` (levels ``L1``, size ``Nr``),
    ``T_column`` ``(z^*, e^{jω_T})`` (``L2``, ``Nt``). ``"decoupled"``: ``T_row`` holds
    ``z`` (``K``, 1), ``T_column`` ``(e^{-jω_R}, e^{jω_T})`` (``Nr``, ``Nt``).
    """

    formulation: Formulation
    num_subcarriers: int
    num_rx: int
    num_tx: int

    @property
    def row_structure(self) -> tuple[int, int]:
        """``(levels, size)`` of ``T_row``."""
        if self.formulation == "hankel":
            return hankel_sizes(self.num_subcarriers)[0], self.num_rx
        return self.num_subcarriers, 1

    @property
    def column_structure(self) -> tuple[int, int]:
        """``(levels, size)`` of ``T_column``."""
        if self.formulation == "hankel":
            return hankel_sizes(self.num_subcarriers)[1], self.num_tx
        return self.num_rx, self.num_tx

    @property
    def sizes(self) -> tuple[int, int]:
        """``(n_row, n_column)``: the atoms' squared norms, ``Θ`` is of order their sum."""
        (l1, s1), (l2, s2) = self.row_structure, self.column_structure
        return l1 * s1, l2 * s2

    @property
    def counts(self) -> FloatArray:
        """How many entries of ``V`` hold each entry of ``H[k]``: ``[subcarrier]``."""
        if self.formulation == "hankel":
            return hankel_counts(self.num_subcarriers)
        return np.ones(self.num_subcarriers)

    def lift(self, H: ComplexArray) -> ComplexArray:
        """``V`` of ``H [subcarrier, rx_ant, tx_ant]``."""
        if self.formulation == "hankel":
            return hankel_lift(H)
        return np.asarray(H, dtype=np.complex128).reshape(self.num_subcarriers, -1)

    def adjoint_into(self, V: ComplexArray, out: ComplexArray) -> ComplexArray:
        """The adjoint of :meth:`lift` into ``out [subcarrier, rx_ant, tx_ant]``."""
        if self.formulation == "hankel":
            return _hankel_adjoint_into(V, out)
        out[:] = V.reshape(out.shape)
        return out

    def flat_index(self) -> IntArray:
        """``[n_row, n_column]``: which entry of ``H.ravel()`` each entry of ``V`` is."""
        K = self.num_subcarriers
        index = np.arange(K * self.num_rx * self.num_tx).reshape(K, self.num_rx, self.num_tx)
        if self.formulation == "decoupled":
            return index.reshape(K, -1)
        L1, L2 = hankel_sizes(K)
        return index[_antidiagonal(L1, L2)].transpose(0, 2, 1, 3).reshape(self.sizes)


def lift_of(formulation: Formulation, shape: tuple[int, int, int]) -> Lift:
    """The :class:`Lift` of a formulation for ``H`` of ``shape = (subcarrier, rx_ant,
    tx_ant)``."""
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    return Lift(formulation, *shape)


@functools.lru_cache(maxsize=32)
def _toeplitz_keys(levels: int, size: int) -> tuple[IntArray, FloatArray]:
    """Diagonal index of every entry of a 2-level Toeplitz matrix (``levels`` blocks of
    ``size x size``) and how many entries share it."""
    i = np.repeat(np.arange(levels), size)
    r = np.tile(np.arange(size), levels)
    key = (i[:, None] - i[None, :] + levels - 1) * (2 * size - 1) + (r[:, None] - r[None, :]
                                                                      + size - 1)
    counts = np.bincount(key.ravel(), minlength=(2 * levels - 1) * (2 * size - 1))
    return key, counts.astype(float)


def project_toeplitz(M: npt.ArrayLike, levels: int, size: int) -> ComplexArray:
    """Frobenius-nearest 2-level Toeplitz matrix (eq. 16): the mean of each diagonal.

    ``M [levels size, levels size]``; block ``(i, i')`` of the result depends on
    ``i - i'`` only and is itself Toeplitz.
    """
    m = np.asarray(M, dtype=np.complex128)
    key, counts = _toeplitz_keys(levels, size)
    flat = key.ravel()
    sums = np.bincount(flat, weights=m.real.ravel(), minlength=counts.size) + 1j * np.bincount(
        flat, weights=m.imag.ravel(), minlength=counts.size)
    return np.asarray((sums / counts)[key], dtype=np.complex128)


def vandermonde(z: npt.ArrayLike, length: int) -> ComplexArray:
    """``[..., length]``: ``z^0 ... z^(length-1)``."""
    return np.asarray(np.asarray(z)[..., None] ** np.arange(length), dtype=np.complex128)


# --------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class AnmProblem:
    """One denoising problem (eq. 13).

    ``y [subcarrier, rx_ant, G]`` received pilots, ``x [subcarrier, tx_ant, G]`` the
    known transmitted pilot matrices, ``mu`` the regularization (eq. 14).
    """

    y: ComplexArray
    x: ComplexArray
    mu: float

    @property
    def shape(self) -> tuple[int, int, int]:
        K, Nr, _ = self.y.shape
        return K, Nr, int(self.x.shape[1])

    def forward(self, H: ComplexArray) -> ComplexArray:
        """``A(H)[k] = H[k] X[k]``: ``[subcarrier, rx_ant, G]``."""
        return np.asarray(np.einsum("krt,ktg->krg", H, self.x))

    def objective(self, H: ComplexArray, atomic_norm: float) -> float:
        r = self.y - self.forward(H)
        return float(0.5 * np.vdot(r, r).real + self.mu * atomic_norm)


@dataclass(frozen=True)
class AnmSolution:
    """A denoiser's output.

    ``H [subcarrier, rx_ant, tx_ant]`` the denoised channel; ``T_row [n_row, n_row]``
    and ``T_column [n_column, n_column]`` the 2-level Toeplitz blocks of Prop. 4 (their
    Vandermonde decompositions give the paths' parameters, :class:`Lift` says which);
    ``atomic_norm`` its SDP value; ``iterations``; ``converged``; ``runtime_s``;
    ``formulation`` the lifted matrix's (:data:`Formulation`).
    """

    H: ComplexArray
    T_row: ComplexArray
    T_column: ComplexArray
    atomic_norm: float
    objective: float
    iterations: int
    converged: bool
    runtime_s: float
    formulation: Formulation = "hankel"


def regularization(noise_variance: float, x: npt.ArrayLike, num_rx: int) -> float:
    """``μ`` of Prop. 3 (eq. 14): the expected dual atomic norm of the noise, ``A^*(W)``.

    For an atom (unit coefficient) ``H[k] = z^k a_R a_T^H``, ``<A(atom), W>`` is complex
    Gaussian with variance ``σ² Nr Σ_k ||X[k]^H a_T||²`` (``≈ σ² Nr Σ_k ||X[k]||_F²``
    over directions), so the expected supremum over ``n = K Nr Nt`` roughly independent
    atoms is bounded as in Bhaskar et al. eq. (16):
    ``μ = σ sqrt(Nr Σ_k ||X[k]||_F²) (1 + 1/ln n) sqrt(ln n + ln(4π ln n))``.
    It scales with the pilot energy, which the paper (Fig. 4) shows to be what matters.

    Parameters
    ----------
    noise_variance : ``σ²`` per receive antenna and sample [W].
    x : ``[subcarrier, tx_ant, G]`` pilot matrices.
    num_rx : receive antennas ``Nr``.
    """
    xs = np.asarray(x)
    K, Nt, _ = xs.shape
    n = max(K * num_rx * Nt, 3)
    log_n = math.log(n)
    energy = num_rx * float(np.sum(np.abs(xs) ** 2))
    return float(math.sqrt(noise_variance * energy) * (1 + 1 / log_n)
                 * math.sqrt(log_n + math.log(4 * math.pi * log_n)))


def _sdp_norm(T_row: ComplexArray, T_column: ComplexArray) -> float:
    return float(0.5 * (np.trace(T_row).real / T_row.shape[0]
                        + np.trace(T_column).real / T_column.shape[0]))


# -------------------------------------------------------------------- SDP (cvxpy)


def _toeplitz_basis(levels: int, size: int) -> tuple[object, object]:
    """Sparse maps ``(P, Q)`` with ``vec(T) = P u_re + j Q u_im`` for a Hermitian 2-level
    Toeplitz ``T``; ``u`` holds one value per diagonal with a non-negative key offset
    (the others are conjugates), so ``T`` is Hermitian by construction."""
    import scipy.sparse as sp

    key, counts = _toeplitz_keys(levels, size)
    center = (counts.size - 1) // 2  # the main diagonal's key
    flat = key.ravel(order="F")  # cvxpy vectorizes column-major
    mirrored = np.where(flat >= center, flat - center, center - flat)
    sign = np.where(flat >= center, 1.0, -1.0)
    rows = np.arange(flat.size)
    shape = (flat.size, center + 1)
    P = sp.csc_matrix((np.ones(flat.size), (rows, mirrored)), shape=shape)
    Q = sp.csc_matrix((sign, (rows, mirrored)), shape=shape)
    return P, Q


def solve_sdp(
    problem: AnmProblem, *, solver: str = "SCS", eps: float = 1e-7, max_iters: int = 200_000,
    verbose: bool = False, formulation: Formulation = "hankel",
) -> AnmSolution:
    """The denoiser (eq. 13) with the atomic norm's SDP (eq. 17), through cvxpy.

    The reference solver: exact up to the conic solver's tolerance ``eps`` (SCS's
    ``eps_abs = eps_rel``), practical only at small sizes. ``formulation``: the lifted
    matrix (:data:`Formulation`).
    """
    import cvxpy as cp
    import scipy.sparse as sp

    K, Nr, Nt = problem.shape
    lift = lift_of(formulation, problem.shape)
    n1, n2 = lift.sizes
    start = time.perf_counter()
    h = cp.Variable(K * Nr * Nt, complex=True)  # vec of H, [k][r][t] in C order
    # A(H): rows (k, r, g) from entries (k, r, t) — a sparse block-diagonal operator.
    index = np.arange(K * Nr * Nt).reshape(K, Nr, Nt)
    G = problem.x.shape[2]
    rows, cols, vals = [], [], []
    for k in range(K):
        for r in range(Nr):
            out = (k * Nr + r) * G + np.arange(G)
            for t in range(Nt):
                rows.append(out)
                cols.append(np.full(G, index[k, r, t]))
                vals.append(problem.x[k, t])
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(K * Nr * G, K * Nr * Nt))
    # G(H) as a 0/1 selection, column-major over V's entries (cvxpy's vec order).
    selection = sp.csc_matrix(
        (np.ones(n1 * n2), (np.arange(n1 * n2), lift.flat_index().ravel(order="F"))),
        shape=(n1 * n2, K * Nr * Nt))
    V = cp.reshape(selection @ h, (n1, n2), order="F")
    P1, Q1 = _toeplitz_basis(*lift.row_structure)
    P2, Q2 = _toeplitz_basis(*lift.column_structure)
    u1r, u1i = cp.Variable(P1.shape[1]), cp.Variable(P1.shape[1])  # type: ignore[attr-defined]
    u2r, u2i = cp.Variable(P2.shape[1]), cp.Variable(P2.shape[1])  # type: ignore[attr-defined]
    T1 = cp.reshape(P1 @ u1r + 1j * (Q1 @ u1i), (n1, n1), order="F")
    T2 = cp.reshape(P2 @ u2r + 1j * (Q2 @ u2i), (n2, n2), order="F")
    Z = cp.Variable((n1 + n2, n1 + n2), hermitian=True)
    constraints = [Z >> 0, Z[:n1, :n1] == T1, Z[n1:, n1:] == T2, Z[:n1, n1:] == V]
    norm = 0.5 * (cp.real(cp.trace(T1)) / n1 + cp.real(cp.trace(T2)) / n2)
    # ||r||² as ||Re r||² + ||Im r||²: cvxpy's complex-to-real reduction of a complex
    # sum_squares goes entry by entry (a huge expression tree, slow to compile).
    residual = problem.y.ravel() - A @ h
    objective = (0.5 * (cp.sum_squares(cp.real(residual)) + cp.sum_squares(cp.imag(residual)))
                 + problem.mu * norm)
    cvx = cp.Problem(cp.Minimize(objective), constraints)
    cvx.solve(solver=solver, eps_abs=eps, eps_rel=eps, max_iters=max_iters, verbose=verbose)
    if h.value is None:
        raise ArithmeticError(f"SDP solver {solver} failed: {cvx.status}")
    H = np.asarray(h.value, dtype=np.complex128).reshape(K, Nr, Nt)
    T_row = np.asarray(T1.value, dtype=np.complex128)
    T_column = np.asarray(T2.value, dtype=np.complex128)
    atomic = _sdp_norm(T_row, T_column)
    stats = cvx.solver_stats
    return AnmSolution(
        H=H, T_row=T_row, T_column=T_column, atomic_norm=atomic,
        objective=problem.objective(H, atomic), iterations=int(stats.num_iters or 0),
        converged=cvx.status == "optimal", runtime_s=time.perf_counter() - start,
        formulation=formulation,
    )


# --------------------------------------------------------------------------- ADMM

#: Anderson acceleration (type II) of the ADMM iteration: how many past steps it mixes,
#: and the Tikhonov weight of its least squares (relative to their Gram matrix's trace).
_ANDERSON_MEMORY = 10
_ANDERSON_REGULARIZATION = 1e-10
#: Residual balancing (Boyd et al. §3.4.1): every this many iterations, ρ is doubled or
#: halved when the primal or the dual residual exceeds the other ten-fold.
_BALANCE_INTERVAL = 20


#: The ADMM's starting ρ, times ``mean_k ||X_k X_k^H|| / mean_k c_k``. For the decoupled
#: matrix 0.3 (the penalty 0.6x the data) took 29-119 iterations to tolerance 1e-3
#: where 1 took 68-249, at 1e-4 to 2e-3 of the tolerance-1e-6 solution (1 gives 3e-5 to
#: 3e-4): measured on 6 problems of the paper's setting at 0 and 20 dB and on 6 of the
#: bench's Munich drive (three BSs, 64 subcarriers, 10 dB); 0.1 was faster at 20 dB,
#: slower at 0 dB.
_RHO_SCALE: dict[str, float] = {"hankel": 1.0, "decoupled": 0.3}


#: From this order of ``Θ`` on, the ADMM's PSD projection computes only one side's
#: eigenpairs (``zheevr``): the side with fewer eigenvalues is then ~15-20% of them, and
#: the back-transformation saved outweighs ``zheevr``'s overhead (measured on 2 cores:
#: 25-30% less time per iteration at orders 288 and 392, break-even at 200, slower below).
_PARTIAL_EIGEN_MIN_ORDER = 256


@functools.lru_cache(maxsize=32)
def _heevr_workspace(n: int) -> dict[str, int]:
    from scipy.linalg import lapack

    work, rwork, iwork, info = lapack.zheevr_lwork(n)
    if info != 0:
        raise np.linalg.LinAlgError(f"zheevr workspace query failed ({info})")
    return {"lwork": int(work.real), "lrwork": int(rwork), "liwork": int(iwork)}


def _psd_split(
    M: ComplexArray, positive_side: bool | None = None
) -> tuple[ComplexArray, ComplexArray, int]:
    """``(M₊, M₋, p)``, ``M = M₊ + M₋``: the Frobenius projections of a Hermitian matrix
    onto the PSD and the NSD cones, and ``p`` its number of positive eigenvalues.

    The outer product ``U_s diag(w_s) U_s^H`` is formed on one side ``s`` of the spectrum
    only, the other part is the difference. ``positive_side=None``: a full
    eigen-decomposition (``zheevd``) and the side with fewer eigenvalues; ``True`` or
    ``False``: only that side's eigenpairs (``zheevr`` over the value range), cheaper
    for large matrices when the side is the smaller one (the ADMM passes a guess from
    its previous iteration; a wrong guess costs time, not accuracy).
    """
    n = M.shape[0]
    if positive_side is None:
        w, U = np.linalg.eigh(M)
        positive = w > 0
        p = int(np.count_nonzero(positive))
        positive_side = 2 * p <= n
        side = positive if positive_side else ~positive
        Uk, wk = U[:, side], w[side]
    else:
        from scipy.linalg import lapack

        bound = 2.0 * float(np.linalg.norm(M)) + 1e-300  # beyond every eigenvalue
        vl, vu = (0.0, bound) if positive_side else (-bound, 0.0)  # eigenvalues in (vl, vu]
        w, U, m, _, info = lapack.zheevr(M, compute_v=1, range="V", lower=1, vl=vl, vu=vu,
                                         **_heevr_workspace(n))
        if info != 0:
            raise np.linalg.LinAlgError(f"zheevr failed ({info})")
        p = int(m) if positive_side else n - int(m)
        Uk, wk = U[:, :m], w[:m]
    part = np.asarray((Uk * wk) @ Uk.conj().T)
    if positive_side:
        return part, M - part, p
    return M - part, part, p


def _psd_part(M: ComplexArray) -> ComplexArray:
    """Frobenius projection of a Hermitian matrix onto the PSD cone (eigen-clipping)."""
    return _psd_split(np.asarray(M, dtype=np.complex128))[0]


class _Anderson:
    """Type-II Anderson acceleration of a fixed-point iteration ``m ← F(m)`` (Walker &
    Ni 2011), on real vectors: from the last ``memory`` differences of ``F`` and of the
    residual ``g = F(m) - m``, the next point is ``F(m) - ΔF γ`` with
    ``γ = argmin ||g - ΔG γ||`` (Tikhonov-regularized normal equations)."""

    def __init__(self, size: int, memory: int) -> None:
        self.dF = np.zeros((memory, size))
        self.dG = np.zeros((memory, size))
        self.gram = np.zeros((memory, memory))
        self.last: tuple[FloatArray, FloatArray] | None = None
        self.count = 0  # differences stored
        self.slot = 0  # where the next one goes

    def reset(self) -> None:
        self.last, self.count, self.slot = None, 0, 0

    def step(self, f: FloatArray, g: FloatArray) -> FloatArray | None:
        """Record ``F(m) = f``, ``g = f - m``; the accelerated next point, or ``None``
        while there is no history (then take ``f``)."""
        if self.dF.shape[0] == 0:
            return None
        if self.last is not None:
            s = self.slot
            np.subtract(f, self.last[0], out=self.dF[s])
            np.subtract(g, self.last[1], out=self.dG[s])
            self.count = min(self.count + 1, self.dF.shape[0])
            self.slot = (s + 1) % self.dF.shape[0]
            row = self.dG[: self.count] @ self.dG[s]
            self.gram[s, : self.count] = row
            self.gram[: self.count, s] = row
            self.last[0][:] = f
            self.last[1][:] = g
        else:
            self.last = (f.copy(), g.copy())
        if self.count == 0:
            return None
        n = self.count
        A = self.gram[:n, :n]
        scale = float(np.trace(A))
        if not scale > 0:
            return None
        gamma = np.linalg.solve(A + _ANDERSON_REGULARIZATION * scale / n * np.eye(n),
                                self.dG[:n] @ g)
        return np.asarray(f - gamma @ self.dF[:n])


def _hankel_adjoint_into(V: ComplexArray, out: ComplexArray) -> ComplexArray:
    """:func:`hankel_adjoint` into ``out [subcarrier, rx_ant, tx_ant]`` (a loop over
    block rows: cheaper than scattered adds at the ADMM's sizes)."""
    K, Nr, Nt = out.shape
    L1, L2 = hankel_sizes(K)
    blocks = V.reshape(L1, Nr, L2, Nt).transpose(0, 2, 1, 3)
    out[:] = 0
    for i in range(L1):
        out[i:i + L2] += blocks[i]
    return out


def admm_memory_bytes(num_subcarriers: int, num_rx: int, num_tx: int, *,
                      formulation: Formulation = "hankel") -> float:
    """Peak bytes of :func:`solve_admm` for ``K`` subcarriers, ``Nr`` and ``Nt``
    antennas: ``Θ`` is of order ``n = n_row + n_column`` (:attr:`Lift.sizes`).

    About 20 complex ``n x n`` matrices live at once (``Z``, ``Λ``, ``M``, ``Θ``, the
    step, its residual, the next iterate and its PSD split, the eigenvectors and their
    outer product) and Anderson's history, ``2 x _ANDERSON_MEMORY`` real vectors of
    ``2 n²`` plus its last pair; the per-subcarrier matrices are negligible beside them.
    """
    n = sum(lift_of(formulation, (num_subcarriers, num_rx, num_tx)).sizes)
    return 16.0 * n * n * (20 + 2 * _ANDERSON_MEMORY + 2)


def sdp_memory_bytes(num_subcarriers: int, num_rx: int, num_tx: int, *,
                     formulation: Formulation = "hankel") -> float:
    """Peak bytes of :func:`solve_sdp` (cvxpy, SCS) for ``K`` subcarriers, ``Nr`` and
    ``Nt`` antennas: ~1.8 kB per entry of the real ``2n x 2n`` PSD block that cvxpy makes
    of the Hermitian ``Θ``, ``n = n_row + n_column`` (live peak measured at ``n`` = 32 to
    128: 1.5 to 1.9 kB)."""
    n = sum(lift_of(formulation, (num_subcarriers, num_rx, num_tx)).sizes)
    return 1800.0 * (2 * n) ** 2


def solve_admm(
    problem: AnmProblem, *, rho: float | None = None, max_iterations: int = 5000,
    tolerance: float = 1e-7, warm_start: ComplexArray | None = None,
    formulation: Formulation = "hankel",
) -> AnmSolution:
    """The denoiser (eq. 13) by ADMM on the SDP of Prop. 4 (eq. 17), for the lifted
    matrix of ``formulation`` (:data:`Formulation`; below, ``G`` is its lift).

    Splitting ``Θ(H, T1, T2) = [[T1, G(H)], [G(H)^H, T2]] = Z``, ``Z ⪰ 0``, scaled dual
    ``Λ`` (Bhaskar et al. §III-C, extended to the lifted 2-level problem):

    * ``H``: per subcarrier, ``H[k] (X X^H + 2ρ c_k I) = Y X^H + 2ρ G^*(Z12 - Λ12)[k]``
      (``c_k`` = number of blocks of ``V`` holding ``H[k]``);
    * ``T1, T2``: 2-level Toeplitz projection of ``Z_ii - Λ_ii`` minus ``μ/(2 n_i ρ) I``;
    * ``Z``: PSD projection (eigen-decomposition) of ``M = Θ + Λ``; ``Λ = M - Z`` (the
      NSD part of ``M``).

    One iteration is a map ``M ← F(M)`` (``Z``, ``Λ`` are the PSD and NSD parts of
    ``M``), accelerated by type-II Anderson mixing of the last steps, safeguarded: a
    mixed point whose fixed-point residual ``||F(M) - M||`` exceeds the previous one's
    is dropped for the plain step (as SCS 3 does). ``ρ`` is balanced between primal and
    dual residuals (Boyd et al. §3.4.1), from ``mean_k ||X_k X_k^H|| / mean_k c_k`` by
    default (times 0.3 for ``"decoupled"``, :data:`_RHO_SCALE`), and the iteration stops
    when both relative residuals, ``||Θ - Z_next|| / max(||Θ||, ||Z_next||)`` and
    ``||Z_next - Z|| / ||Λ_next||``, are below ``tolerance``.
    """
    start = time.perf_counter()
    K, Nr, Nt = problem.shape
    lift = lift_of(formulation, problem.shape)
    n1, n2 = lift.sizes
    n = n1 + n2
    counts = lift.counts
    y, x, mu = problem.y, problem.x, problem.mu
    yx = np.einsum("krg,ktg->krt", y, x.conj())
    gram = np.einsum("ktg,ksg->kts", x, x.conj())  # X X^H, [K, Nt, Nt]
    g_w, g_U = np.linalg.eigh(gram)
    if rho is None:
        # The H step weighs the data by X X^H and the penalty by 2ρ c_k; this ρ makes
        # the penalty twice the data on average. ρ = ||X X^H|| (the penalty 2 mean(c_k)
        # times the data) took 2-3x more iterations to a 1e-3 solution (BENCHMARKS.md).
        rho = max(_RHO_SCALE[formulation] * float(np.mean(g_w[:, -1]))
                  / float(np.mean(counts)), 1e-12)

    def h_solver(rho: float) -> ComplexArray:
        """``(X X^H + 2ρ c_k I)^-1`` per subcarrier, ``[K, Nt, Nt]``."""
        inv = 1.0 / (g_w + 2 * rho * counts[:, None])
        return np.asarray(np.einsum("kts,ks,kus->ktu", g_U, inv, g_U.conj()))

    solver = h_solver(rho)
    H = warm_start.copy() if warm_start is not None else np.matmul(yx, solver)
    Z = np.zeros((n, n), dtype=np.complex128)
    Z[:n1, n1:] = lift.lift(H)
    Z[n1:, :n1] = Z[:n1, n1:].conj().T
    Lam = np.zeros_like(Z)
    M = Z + Lam
    theta = np.zeros_like(Z)
    W = np.empty_like(Z)
    adjoint = np.empty((K, Nr, Nt), dtype=np.complex128)
    T1 = np.zeros((n1, n1), dtype=np.complex128)
    T2 = np.zeros((n2, n2), dtype=np.complex128)
    shift1, shift2 = np.eye(n1), np.eye(n2)
    anderson = _Anderson(2 * n * n, _ANDERSON_MEMORY)
    previous: tuple[ComplexArray, float] | None = None  # last plain step F(M), ||F(M) - M||
    positives = 0  # positive eigenvalues of the last M

    def side(positives: int) -> bool | None:
        """Which eigenpairs :func:`_psd_split` computes: all (small ``Θ``) or the side
        that had fewer eigenvalues at the last iteration."""
        return None if n < _PARTIAL_EIGEN_MIN_ORDER else 2 * positives <= n

    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        np.subtract(Z, Lam, out=W)
        H = np.matmul(yx + 2 * rho * lift.adjoint_into(W[:n1, n1:], adjoint), solver)
        T1 = project_toeplitz(W[:n1, :n1], *lift.row_structure) - mu / (2 * n1 * rho) * shift1
        T2 = (project_toeplitz(W[n1:, n1:], *lift.column_structure)
              - mu / (2 * n2 * rho) * shift2)
        theta[:n1, :n1], theta[n1:, n1:] = T1, T2
        theta[:n1, n1:] = lift.lift(H)
        theta[n1:, :n1] = theta[:n1, n1:].conj().T
        F = theta + Lam  # F(M): the plain ADMM step's Θ + Λ
        g = F - M  # = Θ - Z
        g_norm = float(np.linalg.norm(g))
        if previous is not None and g_norm > previous[1]:
            # The mixed point did worse than the plain step it replaced: take that step.
            M, previous = previous[0], None
            anderson.reset()
            Z, Lam, positives = _psd_split(M, side(positives))
            continue
        mixed = anderson.step(F.view(np.float64).ravel(), g.view(np.float64).ravel())
        if mixed is None:
            M_next, previous = F, None
        else:
            M_next, previous = mixed.view(np.complex128).reshape(n, n), (F, g_norm)
        Z_next, Lam_next, positives = _psd_split(M_next, side(positives))
        primal = float(np.linalg.norm(theta - Z_next))
        dual = rho * float(np.linalg.norm(Z_next - Z))
        size = max(float(np.linalg.norm(theta)), float(np.linalg.norm(Z_next)), 1e-300)
        dual_size = max(rho * float(np.linalg.norm(Lam_next)), 1e-300)
        if primal <= tolerance * size and dual <= tolerance * dual_size:
            converged = True
            break
        M, Z, Lam = M_next, Z_next, Lam_next
        if iteration % _BALANCE_INTERVAL == 0 and max(primal, dual) > 10 * min(primal, dual):
            factor = 2.0 if primal > dual else 0.5
            rho *= factor
            Lam = Lam / factor
            M = Z + Lam
            solver = h_solver(rho)
            anderson.reset()
            previous = None
    atomic = _sdp_norm(T1, T2)
    return AnmSolution(
        H=H, T_row=T1, T_column=T2, atomic_norm=atomic, objective=problem.objective(H, atomic),
        iterations=iteration, converged=converged, runtime_s=time.perf_counter() - start,
        formulation=formulation,
    )


# ------------------------------------------------------ Vandermonde decomposition


def _shift_pencils(E: ComplexArray, levels: int, size: int) -> tuple[ComplexArray, ComplexArray]:
    """Rotation matrices of the signal subspace ``E [levels size, r]`` for a shift along
    the outer (block) and the inner level (ESPRIT; Yang-Xie-Stoica MaPP); the identity
    along a level of one element (nothing to shift)."""
    r = E.shape[1]
    blocks = E.reshape(levels, size, r)
    identity = np.eye(r, dtype=np.complex128)
    outer = identity if levels < 2 else np.asarray(np.linalg.lstsq(
        blocks[:-1].reshape(-1, r), blocks[1:].reshape(-1, r), rcond=None)[0])
    inner = identity if size < 2 else np.asarray(np.linalg.lstsq(
        blocks[:, :-1].reshape(-1, r), blocks[:, 1:].reshape(-1, r), rcond=None)[0])
    return outer, inner


def toeplitz_vandermonde(
    T: npt.ArrayLike, levels: int, size: int, order: int
) -> tuple[ComplexArray, ComplexArray]:
    """2-level Vandermonde decomposition ``T ≈ Σ_l p_l (d(z_l) ⊗ a(e_l))(·)^H``.

    Matrix pencil with pairing (MaPP): the ``order`` principal eigenvectors span the
    Vandermonde columns; the shifts along each level give rotation matrices whose
    eigenvalues are ``z_l`` (outer) and ``e_l`` (inner), paired by diagonalizing a
    fixed combination of the two jointly.

    Returns ``z [order]`` and ``e [order]`` (unit modulus).
    """
    Tm = np.asarray(T, dtype=np.complex128)
    _, U = np.linalg.eigh(0.5 * (Tm + Tm.conj().T))
    return subspace_vandermonde(U[:, ::-1][:, :order], levels, size)


def subspace_vandermonde(
    E: ComplexArray, levels: int, size: int
) -> tuple[ComplexArray, ComplexArray]:
    """The paired ``(z, e)`` of :func:`toeplitz_vandermonde` from a basis ``E [levels
    size, order]`` of the span of the Vandermonde columns ``d(z_l) ⊗ a(e_l)``."""
    outer, inner = _shift_pencils(E, levels, size)
    _, W = np.linalg.eig(outer + _PAIRING_WEIGHT * inner)
    Winv = np.linalg.inv(W)
    z = np.diag(Winv @ outer @ W)
    e = np.diag(Winv @ inner @ W)
    return (np.asarray(z / np.abs(z), dtype=np.complex128),
            np.asarray(e / np.abs(e), dtype=np.complex128))


def model_order(T: npt.ArrayLike, threshold: float, max_order: int) -> int:
    """Number of eigenvalues of ``T`` above ``threshold`` times the largest (§III-D),
    at least 1 and at most ``max_order``."""
    w = np.linalg.eigvalsh(np.asarray(T, dtype=np.complex128))[::-1]
    if w[0] <= 0:
        return 1
    return int(np.clip(np.sum(w > threshold * w[0]), 1, max_order))


def solution_order(solution: AnmSolution, threshold: float, max_order: int) -> int:
    """The model order of a solution (§III-D): :func:`model_order` of ``T_row`` for the
    paper's formulation; for ``"decoupled"`` the larger of its two blocks' (paths of
    one delay are one eigenvalue of the delay block ``T_row``, paths of one direction
    one of the spatial block ``T_column``)."""
    order = model_order(solution.T_row, threshold, max_order)
    if solution.formulation == "decoupled":
        order = max(order, model_order(solution.T_column, threshold, max_order))
    return order


@dataclass(frozen=True)
class PathParameters:
    """Paired per-path parameters: ``delay_phase`` ``[path]`` (``ω_τ = 2π Δf τ``, from
    ``z = e^{-jω_τ}``), ``rx_phase``/``tx_phase`` ``[path]`` spatial frequencies [rad per
    element step], ``coupling [path]`` the |weight| of the pairing."""

    delay_phase: FloatArray
    rx_phase: FloatArray
    tx_phase: FloatArray
    coupling: FloatArray


def decompose(solution: AnmSolution, order: int) -> PathParameters:
    """Per-path ``(ω_τ, ω_R, ω_T)`` from a denoised solution (§III-D).

    The row side of the virtual channel ``V = G(H)`` (eqs. 5-6) is spanned by the
    ``u_l = d(z_l) ⊗ a_R(ω_R,l)``, its column side by the ``w_l = d(z_l^*) ⊗ a_T(ω_T,l)``;
    MaPP on a basis of each gives paired ``(z, e^{jω_R})`` and ``(z^*, e^{jω_T})``. The
    bases: for the paper's formulation the principal eigenvectors of ``T_row`` and
    ``T_column`` (Prop. 4), for ``"decoupled"`` the principal singular vectors of
    ``G(H)`` of the denoised ``H`` (its own blocks hold the delay and the directions
    apart: the 2-level pairs resolve paths of close delays that the delay alone does
    not). The two lists are matched through ``V`` itself: with ``U = [u_l]`` and
    ``W = [w_l]``, ``C = U^+ V (W^+)^H`` is diagonal for the right pairing, so the
    assignment maximizing ``Σ |C_ij|`` pairs the paths. The delay is the mean of its two
    estimates.
    """
    K, Nr, Nt = solution.H.shape
    L1, L2 = hankel_sizes(K)
    V = hankel_lift(solution.H)
    if solution.formulation == "hankel":
        z_r, e_r = toeplitz_vandermonde(solution.T_row, L1, Nr, order)
        z_t, e_t = toeplitz_vandermonde(solution.T_column, L2, Nt, order)
    else:
        left, _, right = np.linalg.svd(V, full_matrices=False)
        z_r, e_r = subspace_vandermonde(left[:, :order], L1, Nr)
        z_t, e_t = subspace_vandermonde(right[:order].conj().T, L2, Nt)
    U = (vandermonde(z_r, L1)[:, :, None] * vandermonde(e_r, Nr)[:, None, :]).reshape(order, -1).T
    W = (vandermonde(z_t, L2)[:, :, None] * vandermonde(e_t, Nt)[:, None, :]).reshape(order, -1).T
    C = np.linalg.pinv(U) @ V @ np.linalg.pinv(W).conj().T
    rows, cols = linear_sum_assignment(-np.abs(C))
    w_rx = -np.angle(z_r[rows])
    w_tx = np.angle(z_t[cols])  # the column side holds z^*
    # Average the two delay estimates on the circle.
    delay = np.angle(np.exp(1j * w_rx) + np.exp(1j * w_tx))
    return PathParameters(
        delay_phase=np.asarray(delay, dtype=np.float64),
        rx_phase=np.angle(e_r[rows]), tx_phase=np.angle(e_t[cols]),
        coupling=np.abs(C[rows, cols]),
    )
