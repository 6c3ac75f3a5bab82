"""RIS-aided fingerprint positioning (Sang et al., issue 10) on the paper's synthetic model
and on twin fingerprints: RMSE vs SNR, vs the required rate, vs RIS elements x pilots and
vs the prior's spread, for designed, uniform and random RIS phases.

    .venv/bin/python -m scripts.ris_cd.figures [--realizations 3] [--users 200]
        [--twin-draws 10] [--parts synthetic,twin] [--sweeps snr,rate,size,prior]
        [--tag TAG] [--replot docs/figures/ris_cd_all.csv]
    .venv/bin/python -m scripts.ris_cd.figures --parts synthetic --sweeps prior-weighted
    .venv/bin/python -m scripts.ris_cd.figures --beam-gains

``--sweeps prior-weighted`` (synthetic only): the SNR figure's users with uniform phases
and the localizers' ``prior_weighted=True`` (eq. 5's MAP), written to
``ris_cd_prior_weighted.csv``, no figure. ``--beam-gains``: only print the twin's
beam-gain table (:func:`beam_gains`).

**Designs.** :func:`estimators.ris_cd.design.design_ris` with ``lmi="norm"`` (the closed
form of the robust distance under ``|θ_e| = 1`` and tangent-point QoS gains; the same
designs as the paper's S-procedure LMIs at a fraction of the time,
docs/estimators/ris_cd.md) on the blocks' estimated channels, neighbours = the block
pairs within the prior's 95 % radius (eq. 14), the rate constraint (``--rate-min``, 1
bit/s/Hz) on every 6th block at the design SNR (``--design-snr-db``, 10 dB), and without
it. References: uniform phases, one random draw per realization.

**Synthetic** (:class:`estimators.ris_cd.scenario.RisCdScenario`, 2 m blocks, 25 over the
10 x 10 m area): per channel realization and phase set, ``ris-cd`` and ``ris-rss`` over
``--users`` uniform users; the SNR is the paper's (at the area's centre, uniform phases,
so a design's gain shows). For the QoS design the two bounds of
:mod:`estimators.ris_cd.bound` (eq. 44′ and Lemma 2 / eq. 43′, on the first 40 users).

**Twin** (``scenes/office_floor/ris_positioning.yaml``: the office's hidden room, a 48 x
48 tile, a 0.5 m radio map): the tile's elements in groups (4 x 4 by default) that each
get one phase on top of the configured focus (:func:`twin.ris_positioning.design_matrices`);
the traced map is exact, so the error bound is 0. The design's pairs are the 8 nearest
blocks' (``--twin-pairs``; each design is also scored on all pairs within the prior's
radius), its rate target ``--twin-rate-min`` (0.5 bit/s/Hz: the room's direct channel
through the wall fades on some QoS blocks' pilots, and no θ lifts them far).
``ris-cd``/``ris-rss`` through ``twin.sounding.observation_from_run`` with one fixed MRT
precoder towards the tile (:func:`twin.ris_positioning.mrt_precoder`) and a thermal noise level
set by the SNR at the map's central block for the configured profile; the run's loop
repeated over ``--twin-draws`` noise and prior draws. The size sweep keeps every 16/P-th
subcarrier.

At each sweep point the figures and tables score every phase set on the realizations
where the QoS design exists (:func:`like_for_like`). Writes
``docs/figures/ris_cd_snr.png`` (with ``snr`` in ``--sweeps``),
``ris_cd_sweeps.png`` (with any other), ``ris_cd_<tag>.csv`` (squared error sums) and
``ris_cd_<tag>_designs.csv`` (every design: time, objective against uniform and random
phases, worst-case rates); ``<tag>`` is ``snr``, ``sweeps`` (no SNR sweep) or ``all``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import dataclasses
import hashlib
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[2]

from estimators import ESTIMATORS  # noqa: E402
from estimators.ris_cd.bound import (  # noqa: E402
    geometric_bound_with_prior,
    two_stage_bound,
)
from estimators.ris_cd.design import (  # noqa: E402
    DesignProblem,
    design_ris,
    neighbour_pairs,
    random_phases,
    uniform_phases,
    worst_case_distance_sq,
    worst_case_rates,
)
from estimators.ris_cd.model import confidence_radius  # noqa: E402
from estimators.ris_cd.scenario import RisCdScenario  # noqa: E402

FIGURES = ROOT / "docs" / "figures"
SNRS_DB = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
SWEEP_SNR_DB = 0.0
RATES = (0.5, 1.0, 1.5, 2.0, 2.5)
# The twin's QoS blocks see the direct channel's fades (best of 500 random θ: 0.65).
TWIN_RATES = (0.25, 0.5, 0.75, 1.0)
PRIOR_STDS = (1.0, 2.0, 3.0, 4.0)
SYNTHETIC_SIZES = ((2, 2), (3, 3), (4, 4))  # RIS shape
TWIN_SIZES = ((2, 2), (4, 4), (8, 8))  # element groups of the tile
PILOTS = (4, 8, 16)
NAMES = ("ris-cd", "ris-rss")
PRIOR = "prior mean (GNSS)"
#: The sweep of the localizers with ``prior_weighted=True`` (synthetic part only).
PRIOR_WEIGHTED = "prior-weighted"
QOS, FREE = "designed, QoS", "designed, no QoS"


# ------------------------------------------------------------------ bookkeeping


def error_row(part: str, sweep: str, x: float, phases: str, method: str, errors: np.ndarray,
              **extra: Any) -> dict[str, Any]:
    return {"part": part, "sweep": sweep, "x": x, "phases": phases, "method": method,
            "squared_error_sum": float(np.sum(np.square(errors))), "count": int(errors.size),
            **extra}


def rmse(rows: list[dict[str, Any]], **match: Any) -> float:
    sel = [r for r in rows if all(r[k] == v for k, v in match.items())]
    count = sum(r["count"] for r in sel)
    return float(np.sqrt(sum(r["squared_error_sum"] for r in sel) / count)) if count else np.nan


def like_for_like(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of each sweep point (part, sweep, x, elements, pilots) restricted to the
    channel realizations where the QoS design exists (an infeasible rate target has none),
    so that every phase set there is scored on the same channels; points with no design
    keep all."""
    def point(r: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(r.get(k) for k in ("part", "sweep", "x", "elements", "pilots"))

    designed: dict[tuple[Any, ...], set[Any]] = {}
    for r in rows:
        if r["phases"] == QOS:
            designed.setdefault(point(r), set()).add(r["realization"])
    return [r for r in rows if point(r) not in designed or r["realization"] in designed[point(r)]]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``ris_cd_<tag>.csv`` with their numbers parsed."""
    types = {"x": float, "squared_error_sum": float, "count": int, "realization": int,
             "elements": int, "pilots": int, "prior_std": float, "rate_min": float}
    with path.open(newline="") as f:
        return [{k: types[k](v) if k in types else v for k, v in r.items() if v != ""}
                for r in csv.DictReader(f)]


def design_record(part: str, label: str, problem: DesignProblem, result: Any,
                  rng: np.random.Generator, scored: DesignProblem | None = None,
                  **extra: Any) -> dict[str, Any]:
    """One design against uniform phases and the best of 100 random draws, by the
    closed-form worst-case objective (eq. 8) and rates (eq. 9); with ``scored`` (the same
    map, other pairs) also by its objective (``*_scored`` columns)."""
    n = problem.num_elements
    draws = [random_phases(n, rng) for _ in range(100)]
    record = {"part": part, "label": label, "elements": n, "pilots": problem.num_pilots,
              "pairs": len(problem.neighbours), "rate_min": problem.rate_min,
              "time_s": round(result.solve_time_s, 2), "converged": result.converged,
              "iterations": result.iterations, "objective": result.objective,
              "sdr_first_solve": result.sdr_bound}
    for suffix, on in (("", problem), ("_scored", scored)):
        if on is None:
            continue

        def objective(theta: np.ndarray, on: DesignProblem = on) -> float:
            return float(np.min(worst_case_distance_sq(on, theta)))

        random = [objective(theta) for theta in draws]
        record |= {f"uniform{suffix}": objective(uniform_phases(n)),
                   f"random_best_of_100{suffix}": max(random),
                   f"random_median{suffix}": float(np.median(random))}
        if suffix:
            record |= {"pairs_scored": len(on.neighbours),
                       "objective_scored": objective(result.theta)}
    rates = worst_case_rates(problem, result.theta)[problem.qos_blocks]
    return {**record, "worst_rate": float(rates.min()) if rates.size else np.nan,
            "reason": result.reason, **extra}


def designed(part: str, problem: DesignProblem, seed: int, designs: list[dict[str, Any]],
             label: str, scored: DesignProblem | None = None, **extra: Any
             ) -> np.ndarray | None:
    """θ of :func:`design_ris` (``lmi="norm"``), or None where no design exists; a
    problem designed before (the sweeps share their default point) is not redone.
    ``scored``: :func:`design_record`'s."""
    key = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in (
        problem.fingerprint_matrices, problem.neighbours, problem.qos_blocks,
        problem.error_bound, np.array([problem.rate_min, problem.noise_variance, seed]))
    )).hexdigest()
    if key in _DESIGNED:
        return _DESIGNED[key]
    # Capped: a design SCS struggles with (inaccurate solves) took 12 minutes uncapped.
    result = design_ris(problem, rng=np.random.default_rng(seed), lmi="norm",
                        max_iterations=10, solver_options={"max_iters": 20_000})
    designs.append(design_record(part, label, problem, result,
                                 np.random.default_rng(seed + 1), scored, **extra))
    print(f"  {part} {label} {extra}: {result.solve_time_s:.1f} s, objective "
          f"{result.objective:.3g} (uniform {designs[-1]['uniform']:.3g}, best random "
          f"{designs[-1]['random_best_of_100']:.3g}) {result.reason}", flush=True)
    _DESIGNED[key] = None if np.any(np.isnan(result.theta)) else result.theta
    return _DESIGNED[key]


_DESIGNED: dict[str, np.ndarray | None] = {}


# -------------------------------------------------------------------- synthetic


def synthetic_problem(scenario: RisCdScenario, realization: Any, errors: np.ndarray,
                      rate: float, design_snr_db: float) -> DesignProblem:
    blocks = scenario.block_positions()
    a_hat, eps = scenario.estimated_matrices(realization, errors)
    qos = np.arange(0, len(blocks), 6) if rate > 0 else np.zeros(0, dtype=np.int64)
    return DesignProblem(
        fingerprint_matrices=a_hat, block_positions=blocks,
        neighbours=neighbour_pairs(blocks, confidence_radius(scenario.prior_std, 0.95)),
        error_bound=eps, qos_blocks=qos, rate_min=rate,
        pilot_power=np.ones(scenario.num_pilots),
        noise_variance=scenario.noise_variance(realization, design_snr_db))


def jacobian(realization: Any, theta: np.ndarray, at: np.ndarray, step: float = 1e-3
             ) -> np.ndarray:
    """``[pilot, 2]`` ∂h/∂(x, y) of the precoded fingerprint at ``at [3]`` (central
    differences of the channel field)."""
    v = np.append(theta, 1.0)
    columns = []
    for axis in (0, 1):
        d = np.zeros(3)
        d[axis] = step
        plus = realization.fingerprint_matrices(at + d)[0] @ v
        minus = realization.fingerprint_matrices(at - d)[0] @ v
        columns.append((plus - minus) / (2 * step))
    return np.stack(columns, axis=-1)


def synthetic_errors(scenario: RisCdScenario, realization: Any, errors: np.ndarray,
                     theta: np.ndarray, snr_db: float, users: int, seed: int,
                     bounds: bool = False, prior_weighted: bool = False
                     ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Horizontal errors [m] per method (and the prior mean) of ``users`` users, the
    localizers with ``prior_weighted``; with ``bounds``, both bounds' mean squared PEB
    over the first 40 users."""
    radio_map = scenario.fingerprint_map(realization, theta, errors)
    obs, truth = scenario.sample(realization, theta, snr_db, users,
                                 np.random.default_rng(seed), fingerprints=radio_map)
    assert obs.prior is not None
    found = {name: ESTIMATORS[name](prior_weighted=prior_weighted).estimate(obs).ue_position
             for name in NAMES}
    found[PRIOR] = obs.prior.mean
    errs = {k: np.linalg.norm((p - truth)[:, :2], axis=1) for k, p in found.items()}
    peb: dict[str, float] = {}
    if bounds:
        noise = float(obs.noise_variance[0, 0])
        fingerprints = np.einsum("isk,s->ik", radio_map.cfr[:, 0, 0], realization.precoder)
        prior = np.diag([scenario.prior_std**2] * 2)
        radius = confidence_radius(scenario.prior_std, 0.95)
        geometric, two_stage = [], []
        for u in range(min(40, users)):
            j = jacobian(realization, theta, truth[u])
            geometric.append(float(np.trace(geometric_bound_with_prior(j, noise, prior))))
            distance = np.linalg.norm(radio_map.block_positions[:, :2] - obs.prior.mean[u, :2],
                                      axis=1)
            near = distance <= max(radius, distance.min())
            bound = two_stage_bound(fingerprints[near], j, obs.y[u, 0, 0, 0], noise, noise,
                                    rng=np.random.default_rng(u), num_samples=256)
            two_stage.append(float(bound.position_error_bound) ** 2)
        peb = {"bound: geometric with prior": float(np.mean(geometric)),
               "bound: two-stage": float(np.mean(two_stage))}
    return errs, peb


def synthetic(args: argparse.Namespace, rows: list[dict[str, Any]],
              designs: list[dict[str, Any]]) -> None:
    base = dataclasses.replace(RisCdScenario(), block_size=2.0)
    for r in range(args.realizations):
        print(f"synthetic realization {r}", flush=True)

        def evaluate(scenario: RisCdScenario, phases: dict[str, np.ndarray | None],
                     sweep: str, x: float, snrs: Iterable[float], r: int = r,
                     bounds: Callable[[str], bool] = lambda _: False,
                     prior_weighted: bool = False, **extra: Any) -> None:
            realization, errors = realize(scenario, r)
            for label, theta in phases.items():
                if theta is None:
                    continue
                for snr in snrs:
                    errs, peb = synthetic_errors(scenario, realization, errors, theta, snr,
                                                 args.users, 100 * r + int(snr) + 50,
                                                 bounds(label), prior_weighted)
                    at = snr if sweep in ("snr", PRIOR_WEIGHTED) else x
                    rows.extend(error_row("synthetic", sweep, at, label, m, e,
                                          realization=r, **extra) for m, e in errs.items())
                    rows.extend({"part": "synthetic", "sweep": sweep, "x": at,
                                 "phases": label, "method": m,
                                 "squared_error_sum": v * min(40, args.users),
                                 "count": min(40, args.users), "realization": r, **extra}
                                for m, v in peb.items())

        def phase_sets(scenario: RisCdScenario, rate: float | None, r: int = r,
                       with_free: bool = False, **extra: Any
                       ) -> dict[str, np.ndarray | None]:
            realization, errors = realize(scenario, r)
            sets: dict[str, np.ndarray | None] = {
                "uniform": uniform_phases(scenario.num_elements),
                "random": random_phases(scenario.num_elements, np.random.default_rng(r))}
            for label, target in ((QOS, args.rate_min if rate is None else rate),
                                  (FREE, 0.0)):
                if label == FREE and not with_free:  # only the SNR figure draws it
                    continue
                problem = synthetic_problem(scenario, realization, errors, target,
                                            args.design_snr_db)
                sets[label] = designed("synthetic", problem, r, designs, label,
                                       realization=r, prior_std=scenario.prior_std, **extra)
            return sets

        if "snr" in args.sweeps:
            evaluate(base, phase_sets(base, None, with_free=True), "snr", 0.0, SNRS_DB,
                     bounds=lambda label: label == QOS)
        if PRIOR_WEIGHTED in args.sweeps:
            # The SNR figure's users (same seeds), uniform θ, eq. (5) with its − ln p(i).
            evaluate(base, {"uniform": uniform_phases(base.num_elements)}, PRIOR_WEIGHTED,
                     0.0, SNRS_DB, prior_weighted=True)
        if "rate" in args.sweeps:
            for rate in RATES:
                evaluate(base, {k: v for k, v in phase_sets(base, rate, rate_min=rate).items()
                                if k == QOS}, "rate", rate, [SWEEP_SNR_DB])
        if "size" in args.sweeps:
            for shape in SYNTHETIC_SIZES:
                for pilots in PILOTS:
                    scenario = dataclasses.replace(base, ris_shape=shape, num_pilots=pilots)
                    extra: dict[str, Any] = {"elements": scenario.num_elements,
                                             "pilots": pilots}
                    sets = phase_sets(scenario, None, **extra)
                    evaluate(scenario, {k: sets[k] for k in ("uniform", "random", QOS)},
                             "size", scenario.num_elements * pilots, [SWEEP_SNR_DB], **extra)
        if "prior" in args.sweeps:
            for std in PRIOR_STDS:
                scenario = dataclasses.replace(base, prior_std=std)
                sets = phase_sets(scenario, None)
                evaluate(scenario, {k: sets[k] for k in ("uniform", "random", QOS)},
                         "prior", std, [SWEEP_SNR_DB])


def realize(scenario: RisCdScenario, r: int) -> tuple[Any, np.ndarray]:
    """Realization ``r`` of a scenario and its radio map's errors (same seed per ``r``)."""
    rng = np.random.default_rng(1000 + r)
    realization = scenario.realize(rng)
    return realization, scenario.map_errors(realization, rng)


# ------------------------------------------------------------------------- twin


def twin(args: argparse.Namespace, rows: list[dict[str, Any]],
         designs: list[dict[str, Any]]) -> None:
    from estimators.observe import thermal_noise_variance
    from twin.config import load_config
    from twin.ris import recompute_cfr
    from twin.ris_positioning import (
        design_matrices,
        fingerprint_map,
        grouped_profile,
        mrt_precoder,
    )
    from twin.scene import BUNDLED_DIR, TwinWarning
    from twin.simulate import simulate
    from twin.sounding import observation_from_run

    config, base_dir = load_config(BUNDLED_DIR / "office_floor" / "ris_positioning.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        full = simulate(config, base_dir).run
    assert full.ris is not None and full.fingerprints is not None
    # Fixed for every phase set (§II-A).
    precoder = mrt_precoder(full, towards=args.twin_precoder)

    def subcarriers(run: Any, pilots: int) -> Any:
        keep = np.arange(0, run.frequencies.size, run.frequencies.size // pilots)
        ris, fp = run.ris, run.fingerprints
        return dataclasses.replace(
            run, cfr=run.cfr[..., keep], frequencies=run.frequencies[keep],
            ris=dataclasses.replace(ris, bs_to_ris=ris.bs_to_ris[..., keep],
                                    ris_to_ue=ris.ris_to_ue[..., keep],
                                    cfr_direct=ris.cfr_direct[..., keep]),
            fingerprints=dataclasses.replace(fp, cfr_direct=fp.cfr_direct[..., keep],
                                             ris_to_ue=fp.ris_to_ue[..., keep]))

    def with_profile(run: Any, profile: np.ndarray) -> Any:
        ris = dataclasses.replace(run.ris, profile=profile)
        return dataclasses.replace(run, ris=ris,
                                   cfr=recompute_cfr(ris, profile).astype(np.complex64))

    def reference_power(run: Any) -> float:
        """Mean received power per pilot at the map's central block, configured profile,
        for 1 W over all subcarriers."""
        centre = run.fingerprints.block_positions.mean(axis=0)
        nearest = int(np.argmin(np.sum((run.fingerprints.block_positions - centre) ** 2, 1)))
        map_ = fingerprint_map(run)
        assert map_ is not None
        cfr = map_.cfr[nearest, 0, 0]
        return float(np.mean(np.abs(precoder @ cfr) ** 2)) / run.frequencies.size

    def errors(run: Any, snr_db: float, prior_std: float, power: float) -> dict[str, np.ndarray]:
        noise = thermal_noise_variance(run.bandwidth, run.frequencies.size, 7.0)
        tx_power_dbm = 30 + snr_db + 10 * np.log10(noise / power)
        found: dict[str, list[np.ndarray]] = {name: [] for name in (*NAMES, PRIOR)}
        for draw in range(args.twin_draws):
            for name in NAMES:
                sounding = {**ESTIMATORS[name].sounding, "precoder": precoder[:, None],
                            "tx_power_dbm": tx_power_dbm, "prior_std_m": prior_std}
                rng = np.random.default_rng(draw * 1000 + int(snr_db) + 50)
                obs = observation_from_run(run, rng=rng, seed=draw, **sounding)
                assert obs.prior is not None
                position = {name: ESTIMATORS[name]().estimate(obs).ue_position}
                if name == NAMES[0]:
                    position[PRIOR] = obs.prior.mean
                for key, p in position.items():
                    found[key].append(np.linalg.norm((p - run.drive.position)[:, :2], axis=1))
        return {k: np.concatenate(v) for k, v in found.items()}

    def phase_sets(run: Any, groups: tuple[int, int], rate: float | None, prior_std: float,
                   with_free: bool = False, **extra: Any) -> dict[str, np.ndarray | None]:
        A, _ = design_matrices(run, precoder, groups=groups)
        blocks = run.fingerprints.block_positions
        # The 8 nearest blocks (268 pairs): the prior's radius holds 3 122 at 0.5 m.
        adjacent = neighbour_pairs(blocks, 1.01 * np.sqrt(2) * run.fingerprints.block_size[0])
        n = A.shape[-1] - 1
        configured = np.abs(A @ np.ones(n + 1)) ** 2
        noise = float(np.mean(configured)) / 10 ** (args.design_snr_db / 10)
        sets: dict[str, np.ndarray | None] = {
            "focus (config)": run.ris.profile,
            "uniform": np.where(run.ris.profile != 0, 1.0 + 0j, 0j),
            "random": grouped_profile(run, random_phases(n, np.random.default_rng(0)),
                                      groups=groups)}
        for label, target in ((QOS, args.twin_rate_min if rate is None else rate),
                              (FREE, 0.0)):
            if label == FREE and not with_free:  # only the SNR figure draws it
                continue
            qos = np.arange(0, len(blocks), 6) if target > 0 else np.zeros(0, np.int64)
            within = neighbour_pairs(blocks, confidence_radius(prior_std, 0.95))
            problem = DesignProblem(
                fingerprint_matrices=A, block_positions=blocks,
                neighbours=within if args.twin_pairs == "prior" else adjacent,
                error_bound=np.zeros(len(blocks)), qos_blocks=qos, rate_min=target,
                pilot_power=np.ones(A.shape[1]), noise_variance=noise)
            phi = designed("twin", problem, 0, designs, label,
                           dataclasses.replace(problem, neighbours=within),
                           groups=f"{groups[0]}x{groups[1]}", prior_std=prior_std, **extra)
            sets[label] = None if phi is None else grouped_profile(run, phi, groups=groups)
        return sets

    def evaluate(run: Any, sets: dict[str, np.ndarray | None], sweep: str, x: float,
                 snrs: Iterable[float], prior_std: float, **extra: Any) -> None:
        power = reference_power(run)
        for label, profile in sets.items():
            if profile is None:
                continue
            variant = with_profile(run, profile)
            for snr in snrs:
                for method, e in errors(variant, snr, prior_std, power).items():
                    rows.append(error_row("twin", sweep, snr if sweep == "snr" else x,
                                          label, method, e, realization=0, **extra))
        print(f"  twin {sweep} {x} done", flush=True)

    groups, std = (4, 4), 2.0
    if "snr" in args.sweeps:
        evaluate(full, phase_sets(full, groups, None, std, with_free=True), "snr", 0.0,
                 SNRS_DB, std)
    if "rate" in args.sweeps:
        for rate in TWIN_RATES:
            sets = phase_sets(full, groups, rate, std, rate_min=rate)
            evaluate(full, {QOS: sets[QOS]}, "rate", rate, [SWEEP_SNR_DB], std)
    if "size" in args.sweeps:
        for size in TWIN_SIZES:
            for pilots in PILOTS:
                run = subcarriers(full, pilots) if pilots < full.frequencies.size else full
                extra: dict[str, Any] = {"elements": size[0] * size[1], "pilots": pilots}
                sets = phase_sets(run, size, None, std, **extra)
                evaluate(run, {k: sets[k] for k in ("uniform", "random", QOS)}, "size",
                         size[0] * size[1] * pilots, [SWEEP_SNR_DB], std, **extra)
    if "prior" in args.sweeps:
        for prior_std in PRIOR_STDS:
            sets = phase_sets(full, groups, None, prior_std)
            evaluate(full, {k: sets[k] for k in ("uniform", "random", QOS)}, "prior",
                     prior_std, [SWEEP_SNR_DB], prior_std)


def beam_gains() -> None:
    """Print the twin's beam-gain table (docs/estimators/ris_cd.md, "Which beam the BS
    points on the twin"): for the fixed MRT towards the map's centre and towards the
    tile, the mean over blocks and subcarriers of ``|·|²`` [dB] of the precoded direct
    channel, of the cascade through the tile at its configured focus, and of the cascade
    through one of the 4 x 4 element groups (12 x 12 elements; mean over the groups)."""
    from twin.config import load_config
    from twin.ris_positioning import design_matrices, mrt_precoder
    from twin.scene import BUNDLED_DIR, TwinWarning
    from twin.simulate import simulate

    config, base_dir = load_config(BUNDLED_DIR / "office_floor" / "ris_positioning.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        run = simulate(config, base_dir).run

    def db(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(np.abs(x) ** 2)))

    print("| BS beam | direct channel | cascade, configured focus | one 12 x 12 group |")
    beams: tuple[tuple[Literal["block", "tile"], str], ...] = (
        ("block", "MRT towards the map's centre"), ("tile", "MRT towards the tile"))
    for towards, label in beams:
        A, _ = design_matrices(run, mrt_precoder(run, towards=towards), groups=(4, 4))
        print(f"| {label} | {db(A[..., -1]):.1f} dB | {db(A[..., :-1].sum(axis=-1)):.1f} dB "
              f"| {db(A[..., :-1]):.1f} dB |")


# ---------------------------------------------------------------------- figures


# A twin run with --twin-precoder block, its rows' part renamed, can join a replot.
TITLES = {"twin": "twin, MRT towards the tile",
          "twin-block-mrt": "twin, MRT towards the map's centre"}
STYLE = {QOS: ("C0", "o"), FREE: ("C1", "v"), "uniform": ("C2", "s"),
         "random": ("C3", "x"), "focus (config)": ("C4", "d")}


def plot(rows: list[dict[str, Any]], parts: list[str], sweeps: list[str]) -> None:
    if "snr" in sweeps:
        fig, axes = plt.subplots(1, len(parts), figsize=(6.5 * len(parts), 4.8), squeeze=False)
        for ax, part in zip(axes[0], parts, strict=True):
            sel = [r for r in rows if r["part"] == part and r["sweep"] == "snr"]
            for phases, (color, marker) in STYLE.items():
                if not any(r["phases"] == phases for r in sel):
                    continue
                for method, line in (("ris-cd", "-"), ("ris-rss", "--")):
                    ax.plot(SNRS_DB, [rmse(sel, phases=phases, method=method, x=s)
                                      for s in SNRS_DB], line, color=color, marker=marker,
                            ms=4, label=f"{method}, {phases}")
            for method, line in (("bound: geometric with prior", ":"),
                                 ("bound: two-stage", "-.")):
                if any(r["method"] == method for r in sel):
                    ax.plot(SNRS_DB, [rmse(sel, phases=QOS, method=method, x=s)
                                      for s in SNRS_DB], line, color="k",
                            label=f"{method} ({QOS})")
            ax.plot(SNRS_DB, [rmse(sel, method=PRIOR, x=s) for s in SNRS_DB], ":",
                    color="gray", label=PRIOR)
            ax.set_xlabel("SNR at the area's centre, uniform phases [dB]" if part == "synthetic"
                          else "SNR at the map's centre, configured profile [dB]")
            ax.set_ylabel("horizontal RMSE [m]")
            ax.set_yscale("log")
            ax.set_title(f"{TITLES.get(part, part)}: RMSE vs SNR")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(FIGURES / "ris_cd_snr.png", dpi=120)
        plt.close(fig)
    others = [s for s in ("rate", "size", "prior") if s in sweeps]
    if not others:
        return
    fig, axes = plt.subplots(len(parts), len(others), figsize=(5.2 * len(others),
                                                               4.2 * len(parts)),
                             squeeze=False)
    for row, part in enumerate(parts):
        for col, sweep in enumerate(others):
            ax = axes[row, col]
            sel = [r for r in rows if r["part"] == part and r["sweep"] == sweep]
            for phases, (color, marker) in STYLE.items():
                for method, line in (("ris-cd", "-"), ("ris-rss", "--")):
                    mine = [r for r in sel if r["phases"] == phases and r["method"] == method]
                    if not mine:
                        continue
                    if sweep == "size":
                        for pilots, alpha in zip(PILOTS, (0.45, 0.7, 1.0), strict=True):
                            xs = sorted({r["x"] for r in mine if r.get("pilots") == pilots})
                            ax.plot(xs, [rmse(mine, x=x) for x in xs], line, color=color,
                                    marker=marker, ms=4, alpha=alpha,
                                    label=f"{method}, {phases}" if pilots == PILOTS[-1]
                                    else None)
                    else:
                        xs = sorted({r["x"] for r in mine})
                        ax.plot(xs, [rmse(mine, x=x) for x in xs], line, color=color,
                                marker=marker, ms=4, label=f"{method}, {phases}")
            xs = sorted({r["x"] for r in sel if r["method"] == PRIOR})
            if sweep != "size":
                ax.plot(xs, [rmse(sel, method=PRIOR, x=x) for x in xs], ":", color="gray",
                        label=PRIOR)
            ax.set_xlabel({"rate": "required worst-case rate R_min [bit/s/Hz]",
                           "size": "RIS elements (twin: phase groups) x pilots "
                                   "(faint: 4, mid: 8, full: 16 pilots)",
                           "prior": "prior std per axis [m]"}[sweep])
            if sweep == "size":
                ax.set_xscale("log", base=2)
            ax.set_ylabel("horizontal RMSE [m]")
            ax.set_title(f"{TITLES.get(part, part)}: RMSE vs {sweep} at {SWEEP_SNR_DB:g} dB")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(FIGURES / "ris_cd_sweeps.png", dpi=120)
    plt.close(fig)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--realizations", type=int, default=3)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--twin-draws", type=int, default=10)
    parser.add_argument("--parts", default="synthetic,twin")
    parser.add_argument("--sweeps", default="snr,rate,size,prior")
    parser.add_argument("--rate-min", type=float, default=1.0)
    parser.add_argument("--twin-rate-min", type=float, default=0.5)
    parser.add_argument("--twin-precoder", choices=("tile", "block"), default="tile",
                        help="the twin's fixed MRT: towards the tile, or the map's centre")
    parser.add_argument("--design-snr-db", type=float, default=10.0)
    parser.add_argument("--twin-pairs", choices=("adjacent", "prior"), default="adjacent",
                        help="the twin design's pairs: the 8 nearest blocks' or all within "
                             "the prior's radius (eq. 14; ~10x as many, ~10 min a design)")
    parser.add_argument("--tag", help="the tables' <tag> (default: from --sweeps), e.g. to "
                                      "run the parts apart and merge their tables")
    parser.add_argument("--beam-gains", action="store_true",
                        help="only print the twin's beam-gain table (one simulation)")
    parser.add_argument("--replot", type=Path, metavar="CSV",
                        help="only redraw the figures and tables of an earlier run's "
                             "ris_cd_<tag>.csv (with the --parts and --sweeps it has)")
    args = parser.parse_args()
    if args.beam_gains:
        beam_gains()
        return
    parts = [p for p in args.parts.split(",") if p]
    args.sweeps = [s for s in args.sweeps.split(",") if s]
    rows: list[dict[str, Any]] = []
    designs: list[dict[str, Any]] = []
    start = time.perf_counter()
    FIGURES.mkdir(parents=True, exist_ok=True)
    # One run may make the SNR figure and another the sweeps: their tables stay apart.
    tag = args.tag or ("snr" if args.sweeps == ["snr"] else
                       "prior_weighted" if args.sweeps == [PRIOR_WEIGHTED] else
                       "sweeps" if "snr" not in args.sweeps else "all")
    if args.replot:
        rows = read_rows(args.replot)
    for part, run_part in (("synthetic", synthetic), ("twin", twin)):
        if part in parts and not args.replot:
            run_part(args, rows, designs)
            # After each part, so that a long run keeps what it has.
            write_csv(FIGURES / f"ris_cd_{tag}.csv", rows)
            if designs:  # the prior-weighted sweep designs nothing
                write_csv(FIGURES / f"ris_cd_{tag}_designs.csv", designs)
    rows = like_for_like(rows)
    plot(rows, parts, args.sweeps)
    for part in parts:
        for sweep in args.sweeps:
            sel = [r for r in rows if r["part"] == part and r["sweep"] == sweep]
            # The size sweep's points are (elements, pilots) pairs, not their product.
            key = ("elements", "pilots") if sweep == "size" else ("x",)
            xs = sorted({tuple(r[k] for k in key) for r in sel})
            print(f"{part} / {sweep}: {'/'.join(key)} = "
                  + " ".join("/".join(f"{v:g}" for v in x) for x in xs))
            for phases, method in sorted({(r["phases"], r["method"]) for r in sel}):
                values = [rmse(sel, phases=phases, method=method,
                               **dict(zip(key, x, strict=True))) for x in xs]
                print(f"  {phases:18s} {method:28s} " + " ".join(f"{v:6.2f}" for v in values))
    tables = "" if args.replot else f" and ris_cd_{tag}.csv, ris_cd_{tag}_designs.csv"
    print(f"{time.perf_counter() - start:.0f} s; wrote the figures{tables} in {FIGURES}")


if __name__ == "__main__":
    main()
