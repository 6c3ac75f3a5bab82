"""SLAB's fusion of the per-slot location estimates (Zhou, Liu, Lau 2019, eqs. 25-27).

The fresh ``α̂[k]`` enters with the precision ``Λ#[k] = 𝔅_α(α̂[k], ĥ[k]; w[k])^{-1}``, the
inverse of the α block of the inverse instantaneous FIM (eqs. 47-48) at the estimates;
``Λ[0] = 0``. The yaw difference is wrapped before fusing.

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: (25)-(27), (47)-(48).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import wrap_angle
from estimators.fisher import crlb as invert_fim
from estimators.slab.bound import SlabFisher, response_jacobian
from estimators.slab.lce import ORIENTATION, LceProblem, _wrapped
from estimators.slab.model import path_responses
from estimators.typing import FloatArray


def slot_precision(problem: LceProblem, alpha: npt.ArrayLike, gains: npt.ArrayLike
                   ) -> FloatArray:
    """``Λ#[k] = 𝔅_α(α̂[k], ĥ[k]; w[k])^{-1}`` (27): the inverse of the α block of the
    inverse instantaneous FIM (eqs. 47-48) at the slot's estimates.

    Parameters
    ----------
    problem : the slot's data (system, BF vectors ``w[k]``, ``σ²``).
    alpha : ``[2JL + 3]`` [m, rad, m], ``α̂[k]``.
    gains : ``[bs, path]`` complex, ``ĥ[k]``.

    Returns
    -------
    ``[2JL + 3, 2JL + 3]`` float64 [1/m², 1/rad², ...] (NaN where the FIM is singular).

    References
    ----------
    Zhou, Liu, Lau 2019, eqs. (27), (47)-(48).
    """
    geometry = problem.geometry(alpha)
    h = np.asarray(gains, dtype=np.complex128)
    mu = path_responses(problem.system, geometry)
    fisher = SlabFisher(  # Σ is not used by the instantaneous FIM
        responses=mu, jacobian=response_jacobian(problem.system, geometry, mu),
        gain_covariance=np.zeros((*h.shape, h.shape[1]), dtype=np.complex128),
        noise_variance=problem.noise_variance)
    n = problem.num_alpha
    bound = invert_fim(fisher.instantaneous(problem.beamformers, h))[:n, :n]
    return invert_fim(bound)


@dataclass(frozen=True)
class Fused:
    """The fused location estimate after slot ``k`` (eqs. 25-26).

    ``alpha [2JL + 3]`` [m, rad, m] ``ᾱ[k]``; ``precision [2JL + 3, 2JL + 3]`` ``Λ[k]``.
    """

    alpha: FloatArray
    precision: FloatArray


def fuse(previous: Fused | None, estimate: npt.ArrayLike, precision: npt.ArrayLike) -> Fused:
    """Precision-weighted fusion (25)-(26) of a fresh ``α̂[k]`` into ``ᾱ[k-1]``.

    ``ᾱ[k] = Λ[k]^{-1} (Λ[k-1] ᾱ[k-1] + Λ#[k] α̂[k])``, ``Λ[k] = Λ[k-1] + Λ#[k]``, computed
    as ``ᾱ[k-1] + Λ[k]^{-1} Λ#[k] (α̂[k] - ᾱ[k-1])`` with the orientation difference
    wrapped to ``(-π, π]``; ``previous=None`` is ``Λ[0] = 0``. A non-finite ``Λ#[k]``
    (singular FIM) leaves ``ᾱ`` and ``Λ`` unchanged (at the first slot: ``ᾱ = α̂``,
    ``Λ = 0``, so the next usable slot replaces it).

    Parameters
    ----------
    previous : ``ᾱ[k-1], Λ[k-1]`` or ``None`` at the first slot.
    estimate : ``[2JL + 3]`` [m, rad, m], ``α̂[k]``.
    precision : ``[2JL + 3, 2JL + 3]``, ``Λ#[k]`` (:func:`slot_precision`).

    Returns
    -------
    :class:`Fused`.

    References
    ----------
    Zhou, Liu, Lau 2019, eqs. (25)-(27).
    """
    a = _wrapped(np.asarray(estimate, dtype=np.float64))
    lam = np.asarray(precision, dtype=np.float64)
    finite = bool(np.all(np.isfinite(lam)))
    if previous is None:
        return Fused(alpha=a, precision=lam if finite else np.zeros_like(lam))
    if not finite:
        return previous
    if not np.any(previous.precision):  # Λ[k-1] = 0: the first usable slot
        return Fused(alpha=a, precision=lam)
    total = previous.precision + lam
    delta = a - previous.alpha
    delta[ORIENTATION] = float(wrap_angle(delta[ORIENTATION]))
    scale = 1.0 / np.sqrt(np.diag(total))  # solve in the scaled (unit-diagonal) system
    step = scale * np.linalg.solve(total * scale[:, None] * scale[None, :],
                                   scale * (lam @ delta))
    return Fused(alpha=_wrapped(previous.alpha + step), precision=total)
