"""SLAB (Zhou, Liu, Lau 2019): signal model and the long-term CRLB of Lemma 1.

The model is checked against an independent forward model written here from element
positions and plane waves (``estimators.arrays``), and the analytic FIMs against finite
differences of that model's mean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from estimators.arrays import (
    SPEED_OF_LIGHT,
    planar_array_positions,
    rotation_matrix,
    steering_vector,
)
from estimators.fisher import gaussian_fim, numerical_jacobian
from estimators.slab.bound import SlabFisher, long_term_bound, normalized_cost
from estimators.slab.model import (
    SlabScenario,
    coefficient_matrix,
    draw_gains,
    path_responses,
    received_signal,
    subcarrier_indices,
)
from tests.tolerances import (
    FIM_NUMERIC_REL,
    FLOAT64_REL,
    NOISE_SIGMAS,
    SLAB_CLOSED_FORM_REL,
)

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


# ------------------------------------------------------- independent forward model


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


# ------------------------------------------------------------------- the model


def test_subcarriers_are_interleaved_over_the_bss() -> None:
    theta = subcarrier_indices(30, 3)
    assert theta.shape == (3, 10)
    assert theta[1].tolist() == list(range(2, 31, 3))  # Θ_2 = {2, 5, ..., 29}
    assert sorted(theta.ravel().tolist()) == list(range(1, 31))
    with pytest.raises(ValueError, match="split evenly"):
        subcarrier_indices(31, 3)


def test_coefficient_matrix_matches_independent_forward_model() -> None:
    w = PAPER.random_beamformers(np.random.default_rng(3))
    mine = coefficient_matrix(path_responses(PAPER.system(), PAPER.geometry()), w)
    theirs = independent_coefficients(PAPER, PAPER.geometry().alpha(), w)
    assert mine.shape == (3, 4, 20, 10, 2)
    assert np.linalg.norm(mine - theirs) <= FLOAT64_REL * np.linalg.norm(theirs)


def test_sample_shapes_noise_and_determinism() -> None:
    w = PAPER.random_beamformers(np.random.default_rng(0))
    a = PAPER.sample(w, np.random.default_rng(7), num_slots=4)
    b = PAPER.sample(w, np.random.default_rng(7), num_slots=4)
    c = PAPER.sample(w, np.random.default_rng(8), num_slots=4)
    assert a.z.shape == (4, 3, 4, 20, 10) and a.gains.shape == (4, 3, 2)
    np.testing.assert_array_equal(a.z, b.z)
    assert not np.allclose(a.z, c.z)
    G = coefficient_matrix(path_responses(PAPER.system(), PAPER.geometry()), w)
    noise = a.z - received_signal(G, a.gains)
    ratio = np.mean(np.abs(noise) ** 2) / a.noise_variance  # |n|²/σ² ~ Exp(1)
    assert abs(ratio - 1.0) < NOISE_SIGMAS / np.sqrt(noise.size)
    # Fading: |h|² / Σ ~ Exp(1) per path, independent over slots and BSs.
    many = draw_gains(PAPER.gain_covariance(), 4000, np.random.default_rng(9))
    eta2 = np.real(np.diagonal(PAPER.gain_covariance(), axis1=1, axis2=2))
    power = np.mean(np.abs(many) ** 2, axis=0) / eta2
    assert np.all(np.abs(power - 1.0) < NOISE_SIGMAS / np.sqrt(many.shape[0]))


def test_per_slot_beamformers_and_bad_shapes() -> None:
    rng = np.random.default_rng(1)
    w = np.stack([PAPER.random_beamformers(rng) for _ in range(2)])
    s = PAPER.sample(w, np.random.default_rng(2), num_slots=2)
    G1 = coefficient_matrix(path_responses(PAPER.system(), PAPER.geometry()), w[1])
    clean = received_signal(G1, s.gains[1:2])[0]
    assert np.max(np.abs(s.z[1] - clean)) < NOISE_SIGMAS * np.sqrt(s.noise_variance)
    with pytest.raises(ValueError, match="beamformers"):
        PAPER.sample(w[:, :, :2], np.random.default_rng(2), num_slots=2)
    with pytest.raises(ValueError, match="same number L"):
        SlabScenario(scatterers=(((1.0, 2.0),), (), ((3.0, 4.0),)))


def test_random_scenario_is_reproducible_and_inside_the_area() -> None:
    a = SlabScenario.random(np.random.default_rng(5), num_nlos=2, num_bs_antennas=6)
    b = SlabScenario.random(np.random.default_rng(5), num_nlos=2, num_bs_antennas=6)
    assert a == b and a.num_bs_antennas == 6
    g = a.geometry()
    assert g.scatterers.shape == (3, 2, 2) and g.num_alpha == 2 * 3 * 2 + 3
    points = np.vstack([g.bs_position, g.ue_position[None], g.scatterers.reshape(-1, 2)])
    assert np.all((points >= 0) & (points <= a.area_m))


# ------------------------------------------------------------------------ FIMs


def test_instantaneous_fim_matches_finite_differences() -> None:
    w = PAPER.random_beamformers(np.random.default_rng(0))
    h = PAPER.sample(w, np.random.default_rng(1)).gains[0]
    fisher = fisher_of(PAPER)
    n = fisher.num_alpha
    beta = np.concatenate([PAPER.geometry().alpha(), h.real.ravel(), h.imag.ravel()])
    jac = numerical_jacobian(independent_mean(PAPER, w, n), beta, fd_steps(PAPER, n))
    numeric = gaussian_fim(jac, PAPER.noise_variance())
    analytic = fisher.instantaneous(w, h)
    assert analytic.shape == (9 + 12, 9 + 12)
    assert scaled_difference(analytic, numeric) < FIM_NUMERIC_REL


def test_long_term_fim_matches_finite_differences() -> None:
    """``E_h{J}`` exactly: with ``Σ_j = Σ_i λ_i e_i e_i^H``, the α block is ``Σ_i J_αα`` at
    ``h = √λ_i e_i`` (``E[c_i^* c_k] = δ_ik``); the h block does not depend on ``h``."""
    w = PAPER.random_beamformers(np.random.default_rng(0))
    fisher = fisher_of(PAPER)
    n, J, P = fisher.num_alpha, PAPER.num_bs, 2
    mean = independent_mean(PAPER, w, n)
    alpha, steps = PAPER.geometry().alpha(), fd_steps(PAPER, n)
    numeric = np.zeros((n + 2 * J * P,) * 2)
    for j in range(J):
        values, vectors = np.linalg.eigh(PAPER.gain_covariance()[j])
        for value, vector in zip(values, vectors.T, strict=True):
            h = np.zeros((J, P), dtype=complex)
            h[j] = np.sqrt(value) * vector
            beta = np.concatenate([alpha, h.real.ravel(), h.imag.ravel()])
            jac = numerical_jacobian(mean, beta, steps)
            numeric[:n, :n] += gaussian_fim(jac[:, :n], PAPER.noise_variance())
    numeric[n:, n:] = gaussian_fim(jac[:, n:], PAPER.noise_variance())
    analytic = fisher.long_term(w)
    assert np.all(analytic[:n, n:] == 0.0)  # α-h cross terms average out (eq. 55)
    np.testing.assert_allclose(analytic, analytic.T, rtol=0, atol=0)
    assert scaled_difference(analytic, numeric) < FIM_NUMERIC_REL


def test_single_bs_los_bound_matches_closed_form() -> None:
    """One BS, LOS only: the FIM of (τ, θ_B, θ_U) in closed form (the UE array's centred
    offsets sum to zero, so θ_U decouples), mapped to (x, y, ϑ) through a finite-difference
    Jacobian of the geometry; and the gain bound ``σ² / ‖G‖²``."""
    sc = SINGLE_LOS
    w = sc.random_beamformers(np.random.default_rng(4))[0]  # [bs_ant, beam, subcarrier]
    sigma2, eta2 = sc.noise_variance(), float(np.real(sc.gain_covariance()[0, 0, 0]))
    NB, NU = sc.num_bs_antennas, sc.num_ue_antennas
    f = np.arange(1, 11) / (10 * sc.sampling_period)
    kappa = 2 * np.pi * (sc.carrier_frequency + f) / SPEED_OF_LIGHT * (sc.wavelength / 2)
    x, u = np.asarray(sc.ue_position), np.asarray(sc.bs_positions[0])

    def angles(a: np.ndarray) -> np.ndarray:
        """(τ, θ_B, θ_U) of the LOS at α = (x, y, ϑ)."""
        d = a[:2] - u
        return np.array([np.linalg.norm(d) / SPEED_OF_LIGHT,
                         np.arctan2(d[1], d[0]) - sc.bs_orientations[0],
                         np.arctan2(-d[1], -d[0]) - a[2]])

    alpha = np.array([*x, sc.ue_orientation])
    _, th_b, th_u = angles(alpha)
    t_off, r_off = np.arange(NB) - (NB - 1) / 2, np.arange(NU) - (NU - 1) / 2
    a_b = np.exp(1j * kappa[:, None] * t_off * np.sin(th_b))            # [k, t]
    b = np.einsum("kt,tmk->km", a_b.conj(), w)                           # a_B^H ω
    db = np.einsum("kt,tmk->km", -1j * kappa[:, None] * t_off * np.cos(th_b) * a_b.conj(), w)
    C = 2 * eta2 * NB * NU / sigma2
    w2 = 2 * np.pi * f[:, None]
    fim_eta = C * np.array([
        [NU * np.sum(w2**2 * abs(b) ** 2), NU * np.sum(np.real(1j * w2 * b.conj() * db)), 0],
        [NU * np.sum(np.real(1j * w2 * b.conj() * db)), NU * np.sum(abs(db) ** 2), 0],
        [0, 0, np.sum(abs(b) ** 2 * kappa[:, None] ** 2) * np.cos(th_u) ** 2 * np.sum(r_off**2)],
    ])
    T = np.real(numerical_jacobian(angles, alpha, [1e-3, 1e-3, 1e-6]))
    expected = np.linalg.inv(T.T @ fim_eta @ T)
    bound = long_term_bound(w[None], fisher=fisher_of(sc))
    assert bound.alpha_crlb.shape == (3, 3) and bound.scatterer_error_bound.shape == (1, 0)
    # The whole matrix: the PEB alone is blind to the sign of the τ-θ_B correlation
    # (range and bearing errors are orthogonal in the plane).
    assert scaled_difference(expected, bound.alpha_crlb) < SLAB_CLOSED_FORM_REL
    assert abs(bound.position_error_bound / np.sqrt(expected[0, 0] + expected[1, 1]) - 1) \
        < SLAB_CLOSED_FORM_REL
    gain_bound = sigma2 / (NB * NU**2 * np.sum(abs(b) ** 2))
    assert abs(bound.gain_trace / gain_bound - 1) < SLAB_CLOSED_FORM_REL


# ---------------------------------------------------------------- bound and cost


def test_bound_scales_as_inverse_snr() -> None:
    w = PAPER.random_beamformers(np.random.default_rng(0))
    low = long_term_bound(w, fisher=fisher_of(PAPER))
    high = long_term_bound(w, fisher=fisher_of(dataclasses.replace(PAPER, snr_db=30.0)))
    np.testing.assert_allclose(high.crlb * 10.0, low.crlb, rtol=SLAB_CLOSED_FORM_REL,
                               atol=SLAB_CLOSED_FORM_REL * np.max(np.abs(low.crlb)))
    assert low.scatterer_error_bound.shape == (3, 1)
    assert abs(high.position_error_bound * np.sqrt(10) / low.position_error_bound - 1) \
        < SLAB_CLOSED_FORM_REL


def test_normalized_cost_is_two_at_the_reference_and_follows_the_beam_power() -> None:
    """Eq. (23): each block is 1 at ``w[0]``; ``ω → c ω`` scales the FIM by ``|c|²``."""
    rng = np.random.default_rng(0)
    fisher = fisher_of(PAPER)
    w0 = PAPER.random_beamformers(rng)
    reference = long_term_bound(w0, fisher=fisher)
    assert normalized_cost(w0, fisher=fisher, reference=reference) == pytest.approx(
        2.0, rel=SLAB_CLOSED_FORM_REL)
    assert normalized_cost(0.5 * w0, fisher=fisher, reference=reference) == pytest.approx(
        8.0, rel=SLAB_CLOSED_FORM_REL)
    other = normalized_cost(PAPER.random_beamformers(rng), fisher=fisher, reference=reference)
    assert np.isfinite(other)  # the cost sees the BF directions, not only their power:
    assert other != pytest.approx(2.0, rel=SLAB_CLOSED_FORM_REL)
    assert normalized_cost(np.zeros_like(w0), fisher=fisher, reference=reference) == np.inf


def test_observation_is_the_model_on_the_project_types() -> None:
    """``SlabScenario.observation``: the sounder, with each BS's BF vectors on its own
    subcarriers ``Θ_j``, returns the model's ``G(α; ω) h`` (eq. 11, narrowband) for the
    slot's fading; zero BF vectors send nothing; the open-loop ``y`` is that of its
    precoders."""
    scenario = dataclasses.replace(SlabScenario(), beam_squint=False, snr_db=300.0)
    with pytest.raises(ValueError, match="beam_squint"):
        SlabScenario().observation(1, np.random.default_rng(0))
    obs = scenario.observation(3, np.random.default_rng(4))
    gains = draw_gains(scenario.gain_covariance(), 3, np.random.default_rng(4))
    assert obs.sounder is not None and obs.y.shape == (3, 3, 4, 20, 30)
    w = scenario.random_beamformers(np.random.default_rng(5))  # [bs, bs_ant, beam, sub]
    theta = subcarrier_indices(scenario.num_subcarriers, scenario.num_bs) - 1  # 0-based
    F = np.zeros((3, 30, 4, 20), complex)
    for j in range(3):  # the model's a_B^H: BF element t on antenna N_B - 1 - t
        F[j, theta[j]] = np.moveaxis(w[j], -1, 0)[:, ::-1]
    G = coefficient_matrix(path_responses(scenario.system(), scenario.geometry()), w)
    expected = received_signal(G, gains)  # [slot, bs, ue_ant, beam, sub of Θ_j]
    scale = np.abs(expected).max()
    for t in range(3):
        z = obs.sounder.sound(t, F, np.random.default_rng(6))
        for j in range(3):
            np.testing.assert_allclose(z[j][..., theta[j]], expected[t, j], rtol=0,
                                       atol=SLAB_CLOSED_FORM_REL * scale)
            others = np.setdiff1d(np.arange(30), theta[j])
            assert np.abs(z[j][..., others]).max() < SLAB_CLOSED_FORM_REL * scale
    open_loop = obs.sounder.sound(
        1, np.broadcast_to(obs.precoders[1][:, None], (3, 30, 4, 20)), np.random.default_rng(7))
    np.testing.assert_allclose(obs.y[1], open_loop, rtol=0, atol=SLAB_CLOSED_FORM_REL * scale)
