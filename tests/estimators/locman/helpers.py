"""Channels in the atomic norm's form, shared by the LOCMAN tests."""

from __future__ import annotations

import numpy as np

from estimators.locman import anm


def random_channel(rng: np.random.Generator, K: int, Nr: int, Nt: int, L: int) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``H [subcarrier, rx_ant, tx_ant]`` of ``L`` paths and their ``(ω_τ, ω_R, ω_T)``
    ``[path]`` [rad]: ``H[k] = Σ_l c_l z_l^k a_R(ω_R,l) a_T(ω_T,l)^H``."""
    w_tau, w_r, w_t = (rng.uniform(-np.pi, np.pi, L) for _ in range(3))
    c = rng.standard_normal(L) + 1j * rng.standard_normal(L)
    H = np.einsum("l,lk,lr,lt->krt", c, anm.vandermonde(np.exp(-1j * w_tau), K),
                  anm.vandermonde(np.exp(1j * w_r), Nr), anm.vandermonde(np.exp(-1j * w_t), Nt))
    return H, w_tau, w_r, w_t


def circular_sorted(angle: np.ndarray) -> np.ndarray:
    """Angles [rad] mapped to ``[0, 2π)`` and sorted (a path order-free comparison)."""
    return np.sort(np.mod(angle, 2 * np.pi))
