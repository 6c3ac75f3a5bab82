"""RIS-aided fingerprint positioning (Sang et al., issue 10): RMSE vs SNR on the paper's
synthetic model and on twin fingerprints.

    .venv/bin/python scripts/figures/ris_cd.py [--realizations 3] [--users 200]
        [--parts synthetic,twin] [--no-design]

**Synthetic** (:class:`estimators.models.ris_cd.RisCdScenario`, 2 m blocks so that the
design's SDP stays small: 25 blocks, 150 neighbour pairs): per channel realization, the
RIS phases ``uniform``, ``random``, and designed by :func:`estimators.ris_cd_design.design_ris`
with the QoS constraint (``--rate-min`` on every 6th block, at the design SNR) and
without it; for each, ``ris-cd`` and ``ris-rss`` over ``--users`` users per SNR, and for
the designed phases the two bounds of :mod:`estimators.ris_cd_bounds` (the geometric
bound with prior, eq. 44, and the two-stage mixture bound, Lemma 2 / eq. 43, mapped to
position through the fingerprints' Jacobian; kernel covariance = the noise variance).

**Twin** (``scenes/office_floor/ris_positioning.yaml``: the office's hidden room, a 48 x
48 tile, a 0.5 m radio map traced with the run): ``ris-cd`` and ``ris-rss`` through
``twin.sounding.observation_from_run`` (MRT, 2 m prior), for the tile focused on the
map's centre (the config) and for uniform phases (recomputed without re-tracing), with
the run's drive repeated over noise draws.

Writes ``docs/figures/ris_cd_snr.png`` and ``docs/figures/ris_cd.csv``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import dataclasses
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from estimators import ESTIMATORS  # noqa: E402
from estimators.models.ris_cd import RisCdScenario  # noqa: E402
from estimators.ris_cd_bounds import (  # noqa: E402
    geometric_bound_with_prior,
    two_stage_bound,
)
from estimators.ris_cd_design import (  # noqa: E402
    DesignProblem,
    confidence_radius,
    design_ris,
    neighbour_pairs,
    random_phases,
    uniform_phases,
)

FIGURES = ROOT / "docs" / "figures"
SNRS_DB = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
NAMES = ("ris-cd", "ris-rss")
PRIOR = "prior mean (GNSS)"


def curve(rows: list[dict[str, Any]], part: str, phases: str, method: str) -> list[float]:
    """RMSE [m] per SNR of one (part, phases, method) over its rows."""
    sel = [r for r in rows if r["part"] == part and r["phases"] == phases
           and r["method"] == method]
    return [float(np.sqrt(sum(r["squared_error_sum"] for r in sel if r["snr_db"] == s)
                          / max(1, sum(r["count"] for r in sel if r["snr_db"] == s))))
            for s in SNRS_DB]


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


def synthetic(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    scenario = dataclasses.replace(RisCdScenario(), block_size=2.0)
    blocks = scenario.block_positions()
    pairs = neighbour_pairs(blocks, confidence_radius(scenario.prior_std, 0.95))
    for r in range(args.realizations):
        rng = np.random.default_rng(1000 + r)
        realization = scenario.realize(rng)
        errors = scenario.map_errors(realization, rng)
        a_hat, eps = scenario.estimated_matrices(realization, errors)
        design_noise = scenario.noise_variance(realization, args.design_snr_db)
        phases: dict[str, np.ndarray] = {
            "uniform": uniform_phases(scenario.num_elements),
            "random": random_phases(scenario.num_elements, rng)}
        if args.design:
            for label, rate in (("designed, QoS", args.rate_min), ("designed, no QoS", 0.0)):
                problem = DesignProblem(
                    fingerprint_matrices=a_hat, block_positions=blocks, neighbours=pairs,
                    error_bound=eps, qos_blocks=np.arange(0, len(blocks), 6),
                    rate_min=rate, pilot_power=np.ones(scenario.num_pilots),
                    noise_variance=design_noise)
                start = time.perf_counter()
                result = design_ris(problem, rng=np.random.default_rng(r))
                print(f"realization {r}: {label}: {time.perf_counter() - start:.0f} s, "
                      f"converged {result.converged} {result.reason}", flush=True)
                phases[label] = result.theta
        for label, theta in phases.items():
            radio_map = scenario.fingerprint_map(realization, theta, errors)
            for snr in SNRS_DB:
                obs, truth = scenario.sample(realization, theta, snr, args.users,
                                             np.random.default_rng(r * 100 + int(snr) + 50),
                                             fingerprints=radio_map)
                assert obs.prior is not None
                estimates = {name: ESTIMATORS[name]().estimate(obs).ue_position
                             for name in NAMES}
                estimates[PRIOR] = obs.prior.mean
                for name, position in estimates.items():
                    err = np.linalg.norm((position - truth)[:, :2], axis=1)
                    rows.append({"part": "synthetic", "realization": r, "phases": label,
                                 "snr_db": snr, "method": name,
                                 "squared_error_sum": float(np.sum(err**2)),
                                 "count": len(err)})
                if label.startswith("designed") or label == "uniform":
                    rows.extend(bound_rows(scenario, realization, theta, radio_map, obs,
                                           truth, r, label, snr))
        print(f"realization {r} done", flush=True)


def bound_rows(scenario: RisCdScenario, realization: Any, theta: np.ndarray,
               radio_map: Any, obs: Any, truth: np.ndarray, r: int, label: str,
               snr: float) -> list[dict[str, Any]]:
    """Both bounds' squared PEB summed over the first 40 users."""
    noise = float(obs.noise_variance[0, 0])
    f = realization.precoder
    fingerprints = np.einsum("isk,s->ik", radio_map.cfr[:, 0, 0], f)
    geometric, two_stage = 0.0, 0.0
    users = range(min(40, len(truth)))
    prior = np.diag([scenario.prior_std**2] * 2)
    for u in users:
        j = jacobian(realization, theta, truth[u])
        geometric += float(np.trace(geometric_bound_with_prior(j, noise, prior)))
        distance = np.linalg.norm(radio_map.block_positions[:, :2] - obs.prior.mean[u, :2],
                                  axis=1)
        near = distance <= max(confidence_radius(scenario.prior_std, 0.95), distance.min())
        observed = obs.y[u, 0, 0, 0]
        bound = two_stage_bound(fingerprints[near], j, observed, noise, noise,
                                rng=np.random.default_rng(u), num_samples=256)
        two_stage += float(bound.position_error_bound) ** 2
    n = len(users)
    return [{"part": "synthetic", "realization": r, "phases": label, "snr_db": snr,
             "method": f"bound: {which}", "squared_error_sum": value, "count": n}
            for which, value in (("geometric with prior", geometric),
                                 ("two-stage", two_stage))]


def twin(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from twin.config import load_config
    from twin.ris import recompute_cfr
    from twin.scene import BUNDLED_DIR, TwinWarning
    from twin.simulate import simulate
    from twin.sounding import observation_from_run

    config, base = load_config(BUNDLED_DIR / "office_floor" / "ris_positioning.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        run = simulate(config, base).run
    assert run.ris is not None
    profiles = {"focus (config)": run.ris.profile,
                "uniform": np.where(run.ris.profile != 0, 1.0 + 0j, 0j)}
    for label, profile in profiles.items():
        ris = dataclasses.replace(run.ris, profile=profile)
        variant = dataclasses.replace(run, ris=ris,
                                      cfr=recompute_cfr(ris, profile).astype(np.complex64))
        for snr in SNRS_DB:
            errors: dict[str, list[float]] = {name: [] for name in (*NAMES, PRIOR)}
            for draw in range(args.twin_draws):
                for name in NAMES:
                    rng = np.random.default_rng(draw * 1000 + int(snr) + 50)
                    obs = observation_from_run(variant, rng=rng, seed=draw,
                                               **{**ESTIMATORS[name].sounding,
                                                  "snr_db": snr})
                    assert obs.prior is not None
                    found = {name: ESTIMATORS[name]().estimate(obs).ue_position}
                    if name == NAMES[0]:
                        found[PRIOR] = obs.prior.mean
                    for key, position in found.items():
                        errors[key].extend(np.linalg.norm(
                            (position - run.drive.position)[:, :2], axis=1).tolist())
            for name, values in errors.items():
                rows.append({"part": "twin", "realization": 0, "phases": label,
                             "snr_db": snr, "method": name,
                             "squared_error_sum": float(np.sum(np.square(values))),
                             "count": len(values)})
    print("twin done", flush=True)


def plot(rows: list[dict[str, Any]], parts: list[str]) -> None:
    fig, axes = plt.subplots(1, len(parts), figsize=(6.5 * len(parts), 4.5), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        keys = sorted({(r["phases"], r["method"]) for r in rows if r["part"] == part})
        for phases, method in keys:
            style = ("--" if method.startswith("bound") else ":" if method == PRIOR
                     else "-o" if method == "ris-cd" else "-s")
            ax.plot(SNRS_DB, curve(rows, part, phases, method), style, ms=4,
                    label=f"{method} ({phases})")
        ax.set_xlabel("SNR at the area's centre [dB]" if part == "synthetic"
                      else "SNR per snapshot [dB]")
        ax.set_ylabel("horizontal RMSE [m]")
        ax.set_yscale("log")
        ax.set_title(f"{part}: RIS-aided fingerprint positioning")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(FIGURES / "ris_cd_snr.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--realizations", type=int, default=3)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--twin-draws", type=int, default=20)
    parser.add_argument("--parts", default="synthetic,twin")
    parser.add_argument("--rate-min", type=float, default=1.0)
    parser.add_argument("--design-snr-db", type=float, default=10.0)
    parser.add_argument("--no-design", dest="design", action="store_false")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    rows: list[dict[str, Any]] = []
    if "synthetic" in parts:
        synthetic(args, rows)
    if "twin" in parts:
        twin(args, rows)
    FIGURES.mkdir(parents=True, exist_ok=True)
    with (FIGURES / "ris_cd.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, parts)
    for part in parts:
        for phases, method in sorted({(r["phases"], r["method"]) for r in rows
                                      if r["part"] == part}):
            values = curve(rows, part, phases, method)
            print(f"{part:9s} {phases:18s} {method:28s} "
                  + " ".join(f"{v:6.2f}" for v in values))
    print(f"wrote {FIGURES / 'ris_cd_snr.png'}, {FIGURES / 'ris_cd.csv'}")


if __name__ == "__main__":
    main()
