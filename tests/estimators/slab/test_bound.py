"""SLAB's long-term CRLB (Zhou, Liu, Lau 2019, Lemma 1, eqs. 20, 47-55), the BFR cost
(23), and the registered estimators' ``crlb`` from an observation and its truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest

from estimators.arrays import SPEED_OF_LIGHT
from estimators.fisher import gaussian_fim, numerical_jacobian
from estimators.slab.bound import SlabFisher, long_term_bound, normalized_cost
from estimators.slab.estimators import Slab, SlabLce
from estimators.slab.scenario import small
from estimators.types import ChannelTruth, Truth
from tests.estimators.slab.reference import (
    PAPER,
    SINGLE_LOS,
    fd_steps,
    fisher_of,
    independent_mean,
    scaled_difference,
)
from tests.tolerances import FIM_NUMERIC_REL, SLAB_CLOSED_FORM_REL

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

    alpha = np.array([*x, sc.ue_yaw])
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


# --------------------------------------------------- the estimators' crlb(obs, truth)


def _relative(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1)))


def test_crlb_is_lemma_1_for_the_observation_beams_at_the_truth() -> None:
    """Every SLAB estimator's ``crlb``: Lemma 1 of one slot with the observation's
    precoders (BS ``j`` on ``Θ_j``, the model's element ``t`` on antenna ``N_B - 1 - t``)
    at the true geometry, ``Σ`` the snapshot's path powers; the same for every variant."""
    scenario = small()
    obs, truth = scenario.observation(2, np.random.default_rng(3), 20.0)
    bound = Slab().crlb(obs, truth)
    other = SlabLce().crlb(obs, truth)
    np.testing.assert_array_equal(bound.position_error_bound, other.position_error_bound)
    assert bound.position_error_bound.shape == (2,)
    assert bound.scatterer_error_bound.shape == (2, 3)
    assert bound.orientation_error_bound is not None
    K = scenario.num_subcarriers // scenario.num_bs
    amplitude2 = scenario.num_bs_antennas * scenario.num_ue_antennas
    for t in range(2):
        w = np.repeat(obs.precoders[t][:, ::-1, :, None], K, axis=3)
        power = np.abs(np.stack([bs.gain[t] for bs in truth])) ** 2 / amplitude2
        fisher = SlabFisher.at(system=scenario.system(), geometry=scenario.geometry(),
                               gain_covariance=power[:, :, None] * np.eye(2),
                               noise_variance=float(obs.noise_variance[t, 0]))
        expected = long_term_bound(w, fisher=fisher)
        assert _relative(bound.position_error_bound[t],
                         expected.position_error_bound) < SLAB_CLOSED_FORM_REL
        assert _relative(bound.orientation_error_bound[t],
                         expected.orientation_error_bound) < SLAB_CLOSED_FORM_REL
        assert _relative(bound.scatterer_error_bound[t],
                         expected.scatterer_error_bound.reshape(-1)) < SLAB_CLOSED_FORM_REL


def _with_path(truth: ChannelTruth, *, scale: float, scatterer_shift: float | None
               ) -> ChannelTruth:
    """``truth`` with its NLOS path 1 copied, the gain times ``scale``, the single-bounce
    point moved by ``scatterer_shift`` [m] in x and y (``None``: a path of several
    bounces)."""
    point = truth.scatterer[:, 1:2].copy()
    point[..., :2] += scatterer_shift or 0.0  # horizontally: a wall bounce stays one
    if scatterer_shift is None:
        point = np.full_like(point, np.nan)
    return dataclasses.replace(
        truth, gain=np.concatenate([truth.gain, scale * truth.gain[:, 1:2]], axis=1),
        tau=np.concatenate([truth.tau, truth.tau[:, 1:2]], axis=1),
        aod=np.concatenate([truth.aod, truth.aod[:, 1:2]], axis=1),
        aoa=np.concatenate([truth.aoa, truth.aoa[:, 1:2]], axis=1),
        valid=np.concatenate([truth.valid, truth.valid[:, 1:2]], axis=1),
        scatterer=np.concatenate([truth.scatterer, point], axis=1))


def test_crlb_takes_each_bss_strongest_single_bounces_and_is_nan_without_them() -> None:
    """Per BS: the LOS and the L strongest single-bounce paths (a stronger path of
    several bounces is not one; a weaker single bounce is not taken). A truth of one BS
    for three, no LOS, too few single bounces or no UE orientation: NaN, no exception."""
    obs, truth = small().observation(2, np.random.default_rng(3), 20.0)
    estimator = Slab()
    reference = estimator.crlb(obs, truth)
    assert np.all(np.isfinite(reference.position_error_bound))
    extra = (_with_path(truth[0], scale=10.0, scatterer_shift=None),
             _with_path(truth[1], scale=0.5, scatterer_shift=30.0), truth[2])
    bound = estimator.crlb(obs, extra)
    np.testing.assert_array_equal(bound.position_error_bound, reference.position_error_bound)
    stronger = (truth[0], _with_path(truth[1], scale=2.0, scatterer_shift=30.0), truth[2])
    moved = estimator.crlb(obs, stronger).scatterer_error_bound
    assert np.all(moved[:, 1] != reference.scatterer_error_bound[:, 1])  # now the new one
    no_los = dataclasses.replace(truth[2], los=np.array([True, False]))
    bare = dataclasses.replace(truth[1], scatterer=np.full_like(truth[1].scatterer, np.nan))
    cases: list[tuple[Truth, list[bool]]] = [
        (truth[0], [False, False]),
        ((truth[0], truth[1], no_los), [True, False]),
        ((truth[0], bare, truth[2]), [False, False]),
        ((dataclasses.replace(truth[0], ue_orientation=None), *truth[1:]), [False, False])]
    for case, expected in cases:
        finite = np.isfinite(estimator.crlb(obs, case).position_error_bound)
        assert finite.tolist() == expected
    first = tuple(ChannelTruth(**{f.name: getattr(bs, f.name)[:1]
                                  for f in dataclasses.fields(bs)}) for bs in truth)
    with pytest.raises(ValueError, match="snapshots"):
        estimator.crlb(obs, first)
