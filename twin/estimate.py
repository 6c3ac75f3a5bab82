"""Estimators on a run file: ``twin estimate run.h5 -a ALGO[,ALGO] -o est.h5``.

Each selected estimator sees the run's channel sounded the way it asks for
(``Estimator.sounding``: link, precoder, pilots...) with noise at a given SNR or with
thermal noise at a given transmit power, and estimates every snapshot. Where the
estimator has a bound (``Estimator.bound``), its :meth:`~estimators.base.Estimator.crlb`
is evaluated on the same observation with the twin's true channel
(:func:`twin.sounding.channel_truth`), and ``Estimator.position_dimensions`` of the
observation is recorded, so that ``twin evaluate`` needs neither the estimator nor the
sounding again. The results go to ONE estimate file (:mod:`twin.estimatefile` gives its
layout); hyper-parameters come from :mod:`twin.settings`.

Randomness: algorithm ``name`` draws its pilots, random beams and noise, and then any
randomness of its own, from ``np.random.default_rng(SeedSequence([seed, crc32(name)]))``
(:func:`algorithm_rng`); ``seed`` defaults to the run's seed. Same run, algorithms,
settings and seed ⇒ identical arrays (runtimes aside).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# Importing the package (not only estimators.base) registers every estimator.
from estimators import ESTIMATORS, Estimate, Estimator
from estimators.base import EstimatorInputError
from estimators.observe import select_snapshots
from estimators.types import Observation, Truth
from twin.errors import TwinInputError
from twin.estimatefile import (
    ESTIMATE_FILE,
    NOT_ESTIMATED,
    EstimateHeader,
    Provenance,
    StoredBound,
    stored_bound,
    write_estimates,
)
from twin.outputs import check_output
from twin.resources import Need, check_memory
from twin.runfile import RunData, read_run
from twin.scoring import check_dimensions
from twin.settings import parse_settings, resolve_algorithms
from twin.sounding import channel_truth, observation_from_run, service_area

DEFAULT_TX_POWER_DBM = 20.0
"""Transmit power [dBm] when neither an SNR nor a power is given (thermal noise)."""
DEFAULT_NOISE_FIGURE_DB = 7.0
"""Receiver noise figure [dB] of the thermal-noise mode."""

ProgressCallback = Callable[[str, int, int], None]
"""``on_progress(algorithm, snapshots_done, snapshots_total)``."""


# ---------------------------------------------------------------------------- inputs


def resolve_noise(
    snr_db: float | None = None,
    tx_power_dbm: float | None = None,
    noise_figure_db: float | None = None,
) -> dict[str, float]:
    """The noise options of :func:`twin.sounding.build_observation`.

    Parameters
    ----------
    snr_db : mean received SNR per sample [dB]; exclusive with ``tx_power_dbm``.
    tx_power_dbm : total transmit power [dBm]; the noise is thermal,
        ``k_B T_0 (B/K) NF``, and the SNR follows the twin's path loss. Default
        :data:`DEFAULT_TX_POWER_DBM` when neither is given.
    noise_figure_db : receiver noise figure [dB] (default
        :data:`DEFAULT_NOISE_FIGURE_DB`); thermal-noise mode only.

    Returns
    -------
    ``{"snr_db": x}`` or ``{"tx_power_dbm": p, "noise_figure_db": nf}``.

    Raises
    ------
    TwinInputError
        Both modes given, a noise figure with an SNR, or a non-finite value.
    """
    if snr_db is not None and tx_power_dbm is not None:
        raise TwinInputError("give either --snr-db or --tx-power-dbm, not both")
    for option, value in (("--snr-db", snr_db), ("--tx-power-dbm", tx_power_dbm),
                          ("--noise-figure-db", noise_figure_db)):
        if value is not None and not math.isfinite(value):
            raise TwinInputError(f"{option}: must be a finite number, got {value}")
    if snr_db is not None:
        if noise_figure_db is not None:
            raise TwinInputError(
                "--noise-figure-db applies to thermal noise (--tx-power-dbm), not to --snr-db"
            )
        return {"snr_db": float(snr_db)}
    nf = DEFAULT_NOISE_FIGURE_DB if noise_figure_db is None else float(noise_figure_db)
    if nf < 0:
        raise TwinInputError(f"--noise-figure-db: must be >= 0 dB, got {nf:g}")
    power = DEFAULT_TX_POWER_DBM if tx_power_dbm is None else float(tx_power_dbm)
    return {"tx_power_dbm": power, "noise_figure_db": nf}


def algorithm_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of algorithm ``name``: ``SeedSequence([seed, crc32(name)])``.

    It draws the observation's pilots, beams and noise, then the estimator's own
    randomness; independent per algorithm, reproducible from the seed.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


# -------------------------------------------------------------------------- running


def parse_snapshots(
    specs: Iterable[str], names: Sequence[str], total: int
) -> dict[str, npt.NDArray[np.int64]]:
    """``--snapshots`` items as the snapshot indices each algorithm estimates.

    Each item is ``[ALGO=]SPEC``, SPEC a Python slice ``START:STOP[:STEP]`` or a
    comma-separated list of indices; an item without ``ALGO=`` applies to every
    algorithm that has no item of its own. No item: every snapshot.

    Raises
    ------
    TwinInputError
        One line naming the item: an unknown algorithm, a malformed SPEC, an index outside
        ``0..total-1``, or a selection with no snapshot.
    """
    every = np.arange(total, dtype=np.int64)
    chosen: dict[str, npt.NDArray[np.int64]] = {}
    default = every
    for item in specs:
        name, _, spec = item.rpartition("=")
        name = name.strip()
        if name and name not in names:
            raise TwinInputError(f"--snapshots {item}: '{name}' is not among the selected "
                                 f"algorithms ({', '.join(names)})")
        try:
            if ":" in spec:
                parts = [int(x) if x.strip() else None for x in spec.split(":")]
                if len(parts) > 3:
                    raise ValueError
                index = every[slice(*parts)]
            else:
                index = np.array([int(x) for x in spec.split(",")], dtype=np.int64)
        except ValueError:
            raise TwinInputError(f"--snapshots {item}: expected [ALGO=]START:STOP[:STEP] or "
                                 "[ALGO=]I,J,K") from None
        if index.size == 0 or index.min() < 0 or index.max() >= total:
            raise TwinInputError(f"--snapshots {item}: selects no snapshot or one outside "
                                 f"0..{total - 1}")
        if name:
            chosen[name] = np.unique(index)
        else:
            default = np.unique(index)
    return {name: chosen.get(name, default) for name in names}


def _expand(est: Estimate, index: npt.NDArray[np.int64], total: int) -> Estimate:
    """An estimate of the snapshots ``index`` spread over all ``total``: the others
    reported as not converged, reason :data:`NOT_ESTIMATED`, NaN and no runtime."""
    if index.size == total:
        return est

    def spread(values: Any, fill: Any) -> Any:
        values = np.asarray(values)
        out = np.full((total, *values.shape[1:]), fill, dtype=values.dtype)
        out[index] = values
        return out

    reason = [NOT_ESTIMATED] * total
    for i, r in zip(index, est.reason, strict=True):
        reason[int(i)] = r
    return Estimate(
        ue_position=spread(est.ue_position, np.nan), ue_yaw=spread(est.ue_yaw, np.nan),
        scatterers=spread(est.scatterers, np.nan),
        scatterer_valid=spread(est.scatterer_valid, False),
        path_tau=spread(est.path_tau, np.nan), path_aod=spread(est.path_aod, np.nan),
        path_gain=spread(est.path_gain, np.nan), converged=spread(est.converged, False),
        reason=tuple(reason), runtime_s=spread(est.runtime_s, 0.0),
        diagnostics={k: spread(v, np.nan) for k, v in est.diagnostics.items()},
        position_covariance=spread(est.position_covariance, np.nan),
        scatterer_covariance=spread(est.scatterer_covariance, np.nan),
    )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _observe(
    run: RunData, run_path: Path, name: str, cls: type[Estimator], rng: np.random.Generator,
    seed: int, noise: Mapping[str, float],
) -> Observation:
    options = {**cls.sounding, **noise}
    try:
        return observation_from_run(run, rng=rng, seed=seed, **options)
    except EstimatorInputError:
        raise
    except ValueError as exc:
        shown = ", ".join(
            f"{k}=array{np.shape(v)}" if isinstance(v, np.ndarray) else f"{k}={v}"
            for k, v in options.items()
        )
        raise TwinInputError(_one_line(
            f"{run_path}: cannot sound the channel for '{name}' ({shown}): {exc}"
        )) from None


def _nbytes(value: Any) -> int:
    """Bytes of the numpy arrays in ``value`` and in its dataclass fields, recursively."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


def _build(name: str, cls: type[Estimator], overrides: Mapping[str, Any]) -> Estimator:
    try:
        return cls(**overrides)
    except ValueError as exc:  # an estimator that checks its parameters on construction
        settings = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise TwinInputError(
            f"--set: '{name}' rejects its parameters ({settings}): {_one_line(str(exc))}"
        ) from None


def _snapshot_callback(
    on_progress: ProgressCallback | None, name: str, total: int
) -> Callable[[int], None]:
    def on_snapshot(done: int) -> None:
        if on_progress is not None:
            on_progress(name, done, total)

    return on_snapshot


def _misfit(name: str, exc: EstimatorInputError) -> str:
    return _one_line(str(exc)).removeprefix(f"{name}: ")


def _input_error(name: str, run_path: Path, exc: EstimatorInputError) -> TwinInputError:
    return TwinInputError(f"{run_path}: '{name}' cannot run on this run: {_misfit(name, exc)}")


def estimate_run(
    run_path: str | Path,
    algorithms: str | Sequence[str],
    output: str | Path,
    *,
    snr_db: float | None = None,
    tx_power_dbm: float | None = None,
    noise_figure_db: float | None = None,
    settings: Iterable[str] = (),
    seed: int | None = None,
    snapshots: Iterable[str] = (),
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Estimate]:
    """Run estimators on a run file and write their estimates to one HDF5 file.

    Every input is checked (noise options, seed, the output path, the run file,
    algorithm names, ``--set`` items, each estimator's sounding) before any estimator
    runs.

    Parameters
    ----------
    run_path : run file written by ``twin simulate``.
    algorithms : registered names, ``"a,b"`` or a sequence (commas allowed inside).
    output : estimate file to write (``.h5``); its layout: :mod:`twin.estimatefile`.
    snr_db, tx_power_dbm, noise_figure_db : noise, see :func:`resolve_noise` (default:
        thermal noise at 20 dBm transmit power and a 7 dB noise figure).
    settings : ``key=value`` / ``algo.key=value`` hyper-parameter overrides, see
        :func:`twin.settings.parse_settings`.
    seed : seed of the observation noise and the estimators' randomness (default: the
        run's seed); algorithm ``name`` uses :func:`algorithm_rng` ``(seed, name)``.
    snapshots : ``[ALGO=]START:STOP[:STEP]`` or ``[ALGO=]I,J,K`` items
        (:func:`parse_snapshots`): estimate only those snapshots (the slow convex
        baselines on a few); the others are stored as not converged (reason
        :data:`NOT_ESTIMATED`). The observation is sounded for the whole run first, so a
        snapshot sees the same noise whichever are selected. Default: all.
    overwrite : replace an existing output.
    on_progress : ``(algorithm, snapshots_done, snapshots_total)``, called with 0 when
        an algorithm starts and after each snapshot.
    on_skip : ``(algorithm, reason)``: if given, an estimator that cannot work with this
        run is left out (and reported here) instead of failing the call.

    Returns
    -------
    ``{algorithm: Estimate}`` in the order given (less the skipped); each ``Estimate``
    has ``T`` snapshots.

    Raises
    ------
    TwinInputError
        One line naming the bad input: noise options, unknown algorithm or
        hyper-parameter, unreadable run file, unwritable or existing output, an
        estimator that cannot work with this run (e.g. a single-antenna estimator on a
        run with a UE array; with ``on_skip``, only when none can).
    """
    run_path, output = Path(run_path), Path(output)
    noise = resolve_noise(snr_db, tx_power_dbm, noise_figure_db)
    if seed is not None and seed < 0:
        raise TwinInputError(f"--seed: must be >= 0, got {seed}")
    settings = list(settings)
    # A setting that names a file (a checkpoint) is an input too.
    named = [Path(value) for value in (item.partition("=")[2].strip() for item in settings)
             if value and Path(value).expanduser().exists()]
    check_output(output, ESTIMATE_FILE, overwrite=overwrite, inputs=[run_path, *named])
    run = read_run(run_path)
    names = resolve_algorithms(algorithms)
    classes = {name: ESTIMATORS[name] for name in names}
    overrides = parse_settings(settings, classes)
    built = {name: _build(name, cls, overrides[name]) for name, cls in classes.items()}
    seed = run.seed if seed is None else seed
    if seed < 0:
        raise TwinInputError(f"{run_path}: run seed {seed} is negative; pass --seed")
    selected = parse_snapshots(snapshots, names, run.drive.num_snapshots)

    # Sound and check for every algorithm first: a misfit, or a setting the memory cannot
    # hold, fails before any estimator runs.
    jobs: list[tuple[str, Estimator, np.random.Generator, Observation, Observation]] = []
    dimensions: dict[str, int] = {}
    held: list[Need] = []
    working: list[Need] = []
    for name, estimator in built.items():
        rng = algorithm_rng(seed, name)
        try:
            obs = _observe(run, run_path, name, type(estimator), rng, seed, noise)
            chosen = select_snapshots(obs, selected[name])
            arrays = estimator.working_memory(chosen)  # checks the observation first
        except EstimatorInputError as exc:
            if on_skip is None:
                raise _input_error(name, run_path, exc) from None
            on_skip(name, _misfit(name, exc))
            continue
        # Declared by every estimator: a missing declaration fails here, before any run.
        dimensions[name] = check_dimensions(name, estimator.position_dimensions(obs))
        jobs.append((name, estimator, rng, obs, chosen))
        held.append(Need(f"'{name}''s observation", _nbytes(obs), "--algorithms"))
        if arrays:
            largest = max(arrays, key=lambda key: arrays[key])
            working.append(Need(f"'{name}''s working arrays", math.fsum(arrays.values()),
                                f"--set {name}.{largest}"))
        # The estimators run one after the other: only the largest working set counts.
        check_memory([*held, *sorted(working, key=lambda n: n.bytes)[-1:]],
                     "twin estimate")
    if not jobs:
        raise TwinInputError(f"{run_path}: none of {', '.join(names)} can run on this run")

    results: dict[str, Estimate] = {}
    bounds: dict[str, StoredBound] = {}
    truth: Truth | None = None  # the run's, built once for every estimator with a bound
    total = run.drive.num_snapshots
    for name, estimator, rng, obs, chosen in jobs:
        on_snapshot = _snapshot_callback(on_progress, name, chosen.num_snapshots)
        on_snapshot(0)
        estimate = estimator.estimate(chosen, rng, on_snapshot=on_snapshot)  # checked above
        if estimate.num_snapshots != chosen.num_snapshots:
            raise RuntimeError(f"{name}: returned {estimate.num_snapshots} snapshots for "
                               f"{chosen.num_snapshots}")
        results[name] = _expand(estimate, selected[name], total)
        if type(estimator).bound:
            truth = _truth(run) if truth is None else truth
            bounds[name] = stored_bound(estimator, estimator.crlb(obs, truth))

    write_estimates(
        output, header=EstimateHeader.of_run(run_path, run, seed=seed, noise=noise,
                                             service_area=service_area(run)),
        provenance={name: Provenance.of(estimator) for name, estimator, _, _, _ in jobs},
        results=results, position_dimensions=dimensions, bounds=bounds,
    )
    return results


def _truth(run: RunData) -> Truth:
    """The run's true channel for the estimators' bounds (:data:`estimators.types.Truth`:
    one :class:`~estimators.types.ChannelTruth` per BS, each estimator picks its own; a
    single one for a single-BS run)."""
    per_bs = [channel_truth(run, bs) for bs in range(len(run.bs_name))]
    return per_bs[0] if len(per_bs) == 1 else per_bs




__all__ = ["DEFAULT_NOISE_FIGURE_DB", "DEFAULT_TX_POWER_DBM", "NOT_ESTIMATED",
           "algorithm_rng", "estimate_run", "parse_snapshots", "resolve_noise"]
