"""An independent reference for SLAB's model (Zhou, Liu, Lau 2019, eqs. 1-19): ``G`` from
rotated element positions, plane waves (the project's steering vectors) and path lengths,
and the helpers that compare analytic FIMs with finite differences of its mean. Shared by
``test_model`` and ``test_bound``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from estimators.arrays import (
    SPEED_OF_LIGHT,
    planar_array_positions,
    rotation_matrix,
    steering_vector,
)
from estimators.slab.bound import SlabFisher
from estimators.slab.scenario import SlabScenario

PAPER = SlabScenario()
#: One BS, LOS only: α = (x, y, ϑ).
SINGLE_LOS = dataclasses.replace(
    PAPER, bs_positions=((150.0, 200.0),), bs_orientations=(0.6,), scatterers=((),),
    num_subcarriers=10,
)


def fisher_of(scenario: SlabScenario) -> SlabFisher:
    return SlabFisher.at(system=scenario.system(), geometry=scenario.geometry(),
                         gain_covariance=scenario.gain_covariance(),
                         noise_variance=scenario.noise_variance())


def independent_coefficients(scenario: SlabScenario, alpha: np.ndarray,
                             beamformers: np.ndarray) -> np.ndarray:
    """``G [bs, ue_ant, beam, subcarrier, path]`` from rotated element positions, plane
    waves (the project's steering vectors) and path lengths, at ``α = (x, ϑ, v)``."""
    J, L = scenario.num_bs, len(scenario.scatterers[0])
    NB, NU, Np = scenario.num_bs_antennas, scenario.num_ue_antennas, scenario.num_subcarriers
    x, yaw, v = alpha[:2], alpha[2], alpha[3:].reshape(J, L, 2)
    n = np.arange(1, Np + 1).reshape(-1, J).T  # row j: j, j + J, ... (1-based)
    f = n / (Np * scenario.sampling_period)
    lam = SPEED_OF_LIGHT / (scenario.carrier_frequency + f)
    d = SPEED_OF_LIGHT / scenario.carrier_frequency / 2
    bs_ula = planar_array_positions(1, NB, vertical_spacing_m=d, horizontal_spacing_m=d)
    ue_ula = planar_array_positions(1, NU, vertical_spacing_m=d, horizontal_spacing_m=d)
    ue_elements = ue_ula @ rotation_matrix([yaw, 0.0, 0.0]).T
    out = np.zeros((J, NU, beamformers.shape[2], n.shape[1], L + 1), dtype=complex)
    for j in range(J):
        u = np.asarray(scenario.bs_positions[j])
        bs_elements = bs_ula @ rotation_matrix([scenario.bs_orientations[j], 0.0, 0.0]).T
        for p in range(L + 1):
            point = x if p == 0 else v[j, p - 1]       # where the path leaves the BS to
            back = u if p == 0 else v[j, p - 1]        # where it arrives at the UE from
            length = np.linalg.norm(point - u) + np.linalg.norm(x - point)
            az_dep = np.arctan2(*(point - u)[::-1])
            az_arr = np.arctan2(*(back - x)[::-1])
            for k in range(n.shape[1]):
                a_b = steering_vector(bs_elements, az_dep, np.pi / 2, lam[j, k])
                a_u = steering_vector(ue_elements, az_arr, np.pi / 2, lam[j, k])
                delay = np.exp(-2j * np.pi * f[j, k] * length / SPEED_OF_LIGHT)
                out[j, :, :, k, p] = np.sqrt(NB * NU) * delay * np.outer(
                    a_u, a_b.conj() @ beamformers[j, :, :, k])
    return out


def independent_mean(
    scenario: SlabScenario, beamformers: np.ndarray, num_alpha: int
) -> Callable[[np.ndarray], np.ndarray]:
    """``β = [α; Re h; Im h] ↦ G(α) h`` flattened."""
    J = scenario.num_bs

    def mean(beta: np.ndarray) -> np.ndarray:
        alpha, rest = beta[:num_alpha], beta[num_alpha:]
        h = (rest[: rest.size // 2] + 1j * rest[rest.size // 2 :]).reshape(J, -1)
        G = independent_coefficients(scenario, alpha, beamformers)
        return np.einsum("brmkp,bp->brmk", G, h).ravel()

    return mean


def fd_steps(scenario: SlabScenario, num_alpha: int) -> np.ndarray:
    """1e-4 m on positions, 1e-6 rad on the orientation, 1e-3 of each gain's scale."""
    steps = np.full(num_alpha, 1e-4)
    steps[2] = 1e-6
    scale = np.sqrt(np.real(np.diagonal(scenario.gain_covariance(), axis1=1, axis2=2)))
    return np.concatenate([steps, 1e-3 * scale.ravel(), 1e-3 * scale.ravel()])


def scaled_difference(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max |S (A - N) S|``, ``S = diag(A)^-1/2``: relative to each entry's natural scale."""
    s = 1.0 / np.sqrt(np.diag(analytic))
    return float(np.max(np.abs((analytic - numeric) * s[:, None] * s[None, :])))
