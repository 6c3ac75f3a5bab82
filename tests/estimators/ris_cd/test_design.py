"""Sang et al.'s robust RIS design (correlation dispersion, §II-C to §III).

The closed-form worst cases are checked against random errors on the error sphere and
against their minimisers; the S-procedure LMIs at a fixed rank-one ``V`` against the
closed forms; the SDR + SCA design against its constraints, its own convergence claims
and the random/uniform baselines; an infeasible rate target against its report.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.observe import complex_normal
from estimators.ris_cd.design import (
    DesignProblem,
    DesignResult,
    LmiForm,
    design_ris,
    neighbour_pairs,
    nominal_distance_sq,
    nominal_rates,
    random_phases,
    sprocedure_bounds,
    uniform_phases,
    worst_case_distance_sq,
    worst_case_rates,
)
from estimators.ris_cd.model import confidence_radius
from tests.tolerances import (
    FLOAT64_ABS,
    FLOAT64_REL,
    RIS_CD_BRUTE_FORCE_REL,
    RIS_CD_FORMS_REL,
    RIS_CD_HISTORY_REL,
    RIS_CD_LMI_REL,
    RIS_CD_RATE_ABS,
    RIS_CD_SDR_REL,
)

SPEED_OF_LIGHT = 299_792_458.0
#: Gaussian prior of the prediction stage: 0.2 m per axis, 95 % (2-D radius 0.49 m), so
#: that blocks 0.4 m apart on a grid are neighbours and diagonal ones (0.57 m) are not.
PRIOR_STD_M, CONFIDENCE = 0.2, 0.95


def random_problem(rng: np.random.Generator, *, num_blocks: int = 4, num_pilots: int = 3,
                   num_elements: int = 4, direct: bool = True, rel_error: float = 0.1,
                   rate_min: float = 1.0) -> DesignProblem:
    """i.i.d. CN(0, 1) fingerprints, every pair a neighbour, ``ε_i`` a fraction of
    ``‖A_i‖_F`` (cascade only), noise at 10 dB random-phase SNR."""
    shape = (num_blocks, num_pilots, num_elements + 1)
    A = complex_normal(rng, shape)
    if not direct:
        A[..., -1] = 0
    positions = np.column_stack([np.arange(num_blocks) * 0.3, np.zeros((num_blocks, 2))])
    power = np.full(num_pilots, 1.0 / num_pilots)
    return DesignProblem(
        fingerprint_matrices=A, block_positions=positions,
        neighbours=neighbour_pairs(positions, np.inf),
        error_bound=rel_error * np.linalg.norm(A[..., :-1], axis=(1, 2)),
        qos_blocks=np.arange(num_blocks), rate_min=rate_min, pilot_power=power,
        noise_variance=power[0] * num_elements / 10.0)


def indoor_problem(*, num_elements: int = 4, num_pilots: int = 3, rows: int = 2,
                   cols: int = 3, rel_error: float = 0.05, rate_min: float = 1.0,
                   seed: int = 0) -> DesignProblem:
    """A planar indoor layout: BS, a ULA RIS on a wall, blocks on a 0.4 m grid and one
    QoS user block 2 m away (the last, no neighbour), all behind a blocked direct link;
    the cascade is the RIS-to-block LOS plus two scatterers, at 28 GHz over 400 MHz.
    Adjacent blocks have similar fingerprints at uniform phases: the case the design is
    for."""
    rng = np.random.default_rng(seed)
    wavelength = SPEED_OF_LIGHT / 28e9
    f = 28e9 + 400e6 * (np.arange(num_pilots) / num_pilots - 0.5)
    bs = np.array([0.0, 0.0, 3.0])
    offsets = (np.arange(num_elements) - (num_elements - 1) / 2) * wavelength / 2
    ris = np.array([6.0, 0.0, 1.5]) + offsets[:, None] * np.array([0.0, 1.0, 0.0])
    gx, gy = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    blocks = np.column_stack([3 + 0.4 * gx.ravel(), 3 + 0.4 * gy.ravel(),
                              np.ones(rows * cols)])
    blocks = np.vstack([blocks, [4.0, 1.0, 1.0]])
    scatterers = np.column_stack([rng.uniform(2, 8, 2), rng.uniform(-2, 6, 2),
                                  rng.uniform(0, 3, 2)])
    d1 = np.linalg.norm(ris - bs, axis=1)
    A = np.zeros((len(blocks), num_pilots, num_elements + 1), dtype=np.complex128)
    for b, p in enumerate(blocks):
        legs = [(np.linalg.norm(ris - p, axis=1), 1.0)]
        legs += [(np.linalg.norm(ris - s, axis=1) + np.linalg.norm(s - p), 0.5)
                 for s in scatterers]
        for d2, weight in legs:
            A[b, :, :-1] += weight / (d1 * d2) * np.exp(
                -2j * np.pi * f[:, None] * (d1 + d2)[None, :] / SPEED_OF_LIGHT)
    A /= np.sqrt(np.mean(np.abs(A[..., :-1]) ** 2))
    power = np.full(num_pilots, 1.0 / num_pilots)
    return DesignProblem(
        fingerprint_matrices=A, block_positions=blocks,
        neighbours=neighbour_pairs(blocks, confidence_radius(PRIOR_STD_M, CONFIDENCE)),
        error_bound=rel_error * np.linalg.norm(A[..., :-1], axis=(1, 2)),
        qos_blocks=np.array([len(blocks) - 1]), rate_min=rate_min, pilot_power=power,
        noise_variance=power[0] * num_elements / 10.0)


def unit_sphere(rng: np.random.Generator, shape: tuple[int, ...], count: int) -> np.ndarray:
    """``count`` complex arrays of ``shape`` uniform on the unit Frobenius sphere."""
    z = complex_normal(rng, (count, *shape), 2.0)
    return z / np.linalg.norm(z.reshape(count, -1), axis=1).reshape(count, *[1] * len(shape))


# -------------------------------------------------------------- geometry helpers


def test_neighbour_pairs_are_the_close_pairs_once() -> None:
    rng = np.random.default_rng(1)
    positions = rng.uniform(0, 2, (12, 3))
    radius = 0.8
    pairs = neighbour_pairs(positions, radius)
    expected = {(i, j) for i in range(12) for j in range(i + 1, 12)
                if np.linalg.norm(positions[i] - positions[j]) <= radius}
    assert {tuple(p) for p in pairs.tolist()} == expected
    assert len(pairs) == len(expected)
    grid = indoor_problem(rows=2, cols=3)
    assert len(grid.neighbours) == 7  # 2 x 3 grid, 0.4 m: edges only, no diagonals


def test_baseline_phases_are_unit_modulus() -> None:
    theta = random_phases(64, np.random.default_rng(2))
    np.testing.assert_allclose(np.abs(theta), 1.0, rtol=0, atol=FLOAT64_ABS)
    np.testing.assert_array_equal(uniform_phases(5), np.ones(5))
    np.testing.assert_array_equal(random_phases(8, np.random.default_rng(3)),
                                  random_phases(8, np.random.default_rng(3)))


def test_problem_rejects_bad_input() -> None:
    good = random_problem(np.random.default_rng(4))
    for change in ({"neighbours": np.array([[1, 0]])}, {"error_bound": -1.0},
                   {"pilot_power": np.ones(2)}, {"noise_variance": 0.0},
                   {"qos_blocks": np.array([7])}, {"error_bound": np.ones(2)},
                   {"block_positions": np.zeros((3, 3))}):
        with pytest.raises(ValueError):
            dataclasses.replace(good, **change)
    with pytest.raises(ValueError, match="no neighbour pairs"):
        design_ris(dataclasses.replace(good, neighbours=np.zeros((0, 2), dtype=int)),
                   rng=np.random.default_rng(0))


# ------------------------------------------------------------ closed forms (8), (9)


@pytest.mark.parametrize("rel_error", [0.1, 0.6])
def test_worst_case_distance_is_the_minimum_over_the_error_ball(rel_error: float) -> None:
    """Eq. (8) with the pair bound of eq. (15): random errors on the sphere never go
    below the closed form, its minimiser ``Δ* = −ε u θ^H/‖θ‖`` attains it (0.6: some pairs
    clip at 0, attained by ``Δ = −(A_i − A_j) v θ^H/‖θ‖²`` inside the ball)."""
    rng = np.random.default_rng(5)
    problem = random_problem(rng, rel_error=rel_error)
    theta = random_phases(problem.num_elements, rng)
    v = np.append(theta, 1.0)
    closed = worst_case_distance_sq(problem, theta)
    A, eps = problem.fingerprint_matrices, problem.error_bound
    P, N = problem.num_pilots, problem.num_elements
    clipped = 0
    for p, (i, j) in enumerate(problem.neighbours):
        D = A[i] - A[j]
        bound = eps[i] + eps[j]
        h = D @ v
        scale = float(np.sum(np.abs(h) ** 2))
        deltas = bound * unit_sphere(rng, (P, N), 2000)
        sampled = np.sum(np.abs(h[None, :] + deltas @ theta) ** 2, axis=1)
        assert sampled.min() >= closed[p] - RIS_CD_BRUTE_FORCE_REL * scale
        norm = np.linalg.norm(h)
        if norm >= bound * np.linalg.norm(theta):
            worst = -bound * np.outer(h / norm, theta.conj()) / np.linalg.norm(theta)
        else:
            clipped += 1
            worst = -np.outer(h, theta.conj()) / np.linalg.norm(theta) ** 2
        assert np.linalg.norm(worst) <= bound * (1 + FLOAT64_REL)
        attained = float(np.sum(np.abs(h + worst @ theta) ** 2))
        assert attained == pytest.approx(closed[p], rel=RIS_CD_BRUTE_FORCE_REL,
                                         abs=RIS_CD_BRUTE_FORCE_REL * scale)
    assert (clipped > 0) == (rel_error > 0.5)
    assert np.all(closed <= nominal_distance_sq(problem, theta))


def test_worst_case_rate_uses_the_per_pilot_bound() -> None:
    """Eq. (9) at ``|h_ik| → max(0, |a_ik v| − ε_i‖θ‖)``: attained by a per-pilot error
    ``‖δ_ik‖ = ε_i``, never undercut by one, and conservative for a whole
    ``‖Δ_i‖_F ≤ ε_i``."""
    rng = np.random.default_rng(6)
    problem = random_problem(rng, rel_error=0.05)
    theta = random_phases(problem.num_elements, rng)
    v = np.append(theta, 1.0)
    A, eps, P = problem.fingerprint_matrices, problem.error_bound, problem.num_pilots
    worst = worst_case_rates(problem, theta)
    nominal = nominal_rates(problem, theta)
    assert np.all(worst <= nominal)
    manual = np.zeros(problem.num_blocks)
    for i in range(problem.num_blocks):
        h = A[i] @ v
        u = h / np.abs(h)
        rows = -eps[i] * u[:, None] * theta.conj()[None, :] / np.linalg.norm(theta)
        gain = np.abs(h + rows @ theta) ** 2
        manual[i] = np.mean(np.log2(1 + problem.pilot_power * gain / problem.noise_variance))
        frobenius = eps[i] * unit_sphere(rng, (P, problem.num_elements), 500)
        sampled = np.abs(h[None, :] + frobenius @ theta) ** 2
        rates = np.mean(np.log2(1 + problem.pilot_power * sampled / problem.noise_variance),
                        axis=1)
        assert rates.min() >= worst[i] - FLOAT64_ABS
    np.testing.assert_allclose(worst, manual, rtol=FLOAT64_REL, atol=0)


# --------------------------------------------------------------- S-procedure (27), (31)


@pytest.mark.parametrize(("lmi", "direct"), [("compact", True), ("kronecker", True),
                                             ("compact", False), ("kronecker", False)])
def test_sprocedure_lmi_at_rank_one_is_the_closed_form(lmi: LmiForm, direct: bool) -> None:
    """Lemma 1 is lossless: at ``V = v v^H``, the largest ``t`` (``γ``) the LMI admits is
    the closed-form worst case, for both LMI forms, with and without a direct link; pairs
    and pilots whose worst case clips at 0 included."""
    rng = np.random.default_rng(7)
    problem = random_problem(rng, num_blocks=3, rel_error=0.3, direct=direct)
    theta = random_phases(problem.num_elements, rng)
    distance, gain = sprocedure_bounds(problem, theta, lmi=lmi)
    closed = worst_case_distance_sq(problem, theta)
    v = np.append(theta, 1.0)
    A, eps = problem.fingerprint_matrices, problem.error_bound
    closed_gain = np.maximum(0.0, np.abs(A @ v) - eps[:, None] * np.linalg.norm(theta)) ** 2
    scale = np.sum(np.abs(A @ v) ** 2, axis=-1).mean()
    np.testing.assert_allclose(distance, closed, rtol=0, atol=RIS_CD_LMI_REL * scale)
    np.testing.assert_allclose(gain, closed_gain[problem.qos_blocks], rtol=0,
                               atol=RIS_CD_LMI_REL * scale)
    assert np.any(closed_gain == 0) and np.any(closed > 0)


# ----------------------------------------------------------------- the design


@pytest.fixture(scope="module")
def binding() -> tuple[DesignProblem, DesignResult, DesignResult]:
    """The indoor problem at a rate target that binds (the unconstrained design misses
    it), designed with and without it."""
    problem = indoor_problem(rate_min=RATE_BINDING)
    free = design_ris(dataclasses.replace(problem, rate_min=0.0),
                      rng=np.random.default_rng(8))
    constrained = design_ris(problem, rng=np.random.default_rng(8), penalty=0.1)
    return problem, free, constrained


#: The indoor problem's binding rate target [bit/s/Hz]: the distance-only design gives the
#: QoS block 3.87 (measured).
RATE_BINDING = 5.0


def test_design_meets_the_rate_target(
        binding: tuple[DesignProblem, DesignResult, DesignResult]) -> None:
    problem, free, constrained = binding
    assert np.min(free.rates) < problem.rate_min  # the constraint binds
    assert constrained.converged, constrained.reason
    np.testing.assert_allclose(np.abs(constrained.theta), 1.0, rtol=0, atol=FLOAT64_ABS)
    assert np.all(constrained.rates >= problem.rate_min - RIS_CD_RATE_ABS)
    np.testing.assert_allclose(
        constrained.rates, worst_case_rates(problem, constrained.theta)[problem.qos_blocks],
        rtol=FLOAT64_REL)
    # The rate costs distance; both stay below their relaxations.
    assert constrained.objective < free.objective
    for result in (free, constrained):
        assert result.objective <= result.sdr_bound * (1 + RIS_CD_SDR_REL)
        assert result.objective == pytest.approx(
            np.min(worst_case_distance_sq(problem, result.theta)), rel=FLOAT64_REL)


def test_rank_one_refinement_converges_monotonically(
        binding: tuple[DesignProblem, DesignResult, DesignResult]) -> None:
    """§III-C: the rank-one gap reaches the tolerance within the cap, and the penalised
    objective (eq. 35) never decreases while η is unchanged. The constrained design starts
    from a 10x weaker penalty than the default: it stalls at a rank-2 stationary point,
    grows η once, and then converges; at rank one the penalised objective is the
    closed-form objective of the extracted θ."""
    _, free, constrained = binding
    for result in (free, constrained):
        assert result.converged, result.reason
        assert result.rank_one_gap[-1] <= 1e-5
        sizes = {result.rank_one_gap.size, result.objective_history.size,
                 result.penalty_history.size}
        assert sizes == {result.iterations + 1}
        assert result.iterations <= 30
        history, eta = result.objective_history, result.penalty_history
        same = eta[1:] == eta[:-1]
        scale = abs(history[-1])
        assert np.all(np.diff(history)[same] >= -RIS_CD_HISTORY_REL * scale)
        assert history[-1] == pytest.approx(result.objective, rel=RIS_CD_SDR_REL)
    assert free.iterations >= 1 and constrained.iterations >= 3
    assert np.count_nonzero(np.diff(constrained.penalty_history)) == 1
    assert constrained.rank_one_gap[0] > 0.1  # the SDR alone is far from rank one


def test_design_beats_random_and_uniform_phases(
        binding: tuple[DesignProblem, DesignResult, DesignResult]) -> None:
    """The worst-case minimum distance: the distance-only design against uniform phases
    and 200 random draws; the rate-constrained one against the draws that also meet the
    rate target (uniform phases do not: 0.84 bit/s/Hz)."""
    problem, free, constrained = binding
    rng = np.random.default_rng(9)
    draws = [random_phases(problem.num_elements, rng) for _ in range(200)]
    objective = np.array([np.min(worst_case_distance_sq(problem, t)) for t in draws])
    feasible = np.array([worst_case_rates(problem, t)[-1] >= problem.rate_min for t in draws])
    uniform = uniform_phases(problem.num_elements)
    assert free.objective > max(np.min(worst_case_distance_sq(problem, uniform)),
                                objective.max())
    assert worst_case_rates(problem, uniform)[-1] < problem.rate_min
    assert np.count_nonzero(feasible) >= 10
    assert constrained.objective > objective[feasible].max()


def test_infeasible_rate_target_is_reported() -> None:
    problem = indoor_problem(rate_min=20.0)
    result = design_ris(problem, rng=np.random.default_rng(10))
    assert not result.converged
    assert "infeasible" in result.reason
    assert np.all(np.isnan(result.theta)) and np.isnan(result.objective)


def test_unfinished_refinement_is_reported() -> None:
    """No SCA iteration allowed: the SDR's rank above tolerance is reported, and θ (the
    best of the eigenvector and the Gaussian draws) is still unit-modulus and feasible."""
    problem = indoor_problem(num_elements=6, rate_min=1.0)
    result = design_ris(problem, rng=np.random.default_rng(11), max_iterations=0)
    assert result.rank_one_gap[0] > 1e-5
    assert not result.converged
    assert "rank-one gap" in result.reason
    np.testing.assert_allclose(np.abs(result.theta), 1.0, rtol=0, atol=FLOAT64_ABS)
    assert np.all(result.rates >= problem.rate_min - RIS_CD_RATE_ABS)


def test_norm_form_gives_the_s_procedure_designs(
        binding: tuple[DesignProblem, DesignResult, DesignResult]) -> None:
    """``lmi="norm"`` (the robust distance in closed form under ``|θ_e| = 1``, the QoS
    gains by SCA tangents) against the paper's S-procedure LMIs on the binding instance:
    both designs converge, meet the rate and reach the same worst-case distance (measured
    7.3583 / 7.3583 without QoS, 5.7004 / 5.7081 with it); the norm form's first solve is a
    relaxation of the distance-only problem, so it bounds that design."""
    problem, free, constrained = binding
    norm_free = design_ris(dataclasses.replace(problem, rate_min=0.0),
                           rng=np.random.default_rng(8), lmi="norm")
    norm_constrained = design_ris(problem, rng=np.random.default_rng(8), lmi="norm")
    for result, reference in ((norm_free, free), (norm_constrained, constrained)):
        assert result.converged, result.reason
        assert result.rank_one_gap[-1] <= 1e-5
        assert result.objective == pytest.approx(
            np.min(worst_case_distance_sq(problem, result.theta)), rel=FLOAT64_REL)
        assert result.objective == pytest.approx(reference.objective, rel=RIS_CD_FORMS_REL)
    assert np.all(norm_constrained.rates >= problem.rate_min - RIS_CD_RATE_ABS)
    assert norm_free.objective <= norm_free.sdr_bound * (1 + RIS_CD_SDR_REL)
    with pytest.raises(ValueError, match="S-procedure"):
        sprocedure_bounds(problem, uniform_phases(problem.num_elements), lmi="norm")
