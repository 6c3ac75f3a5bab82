"""Estimators on a run file: ``twin estimate run.h5 -a ALGO[,ALGO] -o est.h5``.

Each selected estimator sees the run's channel sounded the way it asks for
(``Estimator.sounding``: link, precoder, pilots...) with noise at a given SNR or with
thermal noise at a given transmit power, and estimates every snapshot. The results go
to ONE HDF5 estimate file, separate from the run file (the run stays read-only and
several estimate files can refer to one run), written atomically::

    /config      attrs: kind ("estimates"), schema_version, seed, algorithms (JSON list,
                 in the order run), run_file (name), run_scene_sha256, run_num_snapshots,
                 run_seed, versions (JSON), noise (YAML)
    /estimates/<algorithm>/
                 ue_position[T,3] [m], ue_yaw[T] [rad], scatterers[T,Q,3] [m],
                 scatterer_valid[T,Q], converged[T], reason[T] (strings), runtime_s[T] [s],
                 path_tau[T,P] [s], path_aod[T,P,2] (azimuth, zenith) [rad],
                 path_gain[T,P] complex128, diagnostics/<name>[T]
                 attrs: params (YAML of get_params()), sounding (YAML), estimator (class),
                 seed, seed_entropy ([seed, crc32(name)]), noise (YAML) and its values
                 (snr_db, or tx_power_dbm and noise_figure_db)

Randomness: algorithm ``name`` draws its pilots, random beams and noise, and then any
randomness of its own, from ``np.random.default_rng(SeedSequence([seed, crc32(name)]))``
(:func:`algorithm_rng`); ``seed`` defaults to the run's seed. Same run, algorithms,
settings and seed ⇒ identical arrays (runtimes aside).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

# Importing the package (not only estimators.base) registers every estimator.
from estimators import ESTIMATORS, Estimate, Estimator
from estimators.base import EstimatorInputError
from estimators.types import Observation
from twin.errors import TwinInputError
from twin.outputs import Artifact, atomic_file, check_output
from twin.resources import Need, check_memory
from twin.runfile import RunData, package_versions, read_run
from twin.sounding import observation_from_run

SCHEMA_VERSION = "2.0"
FILE_KIND = "estimates"
DEFAULT_TX_POWER_DBM = 20.0
"""Transmit power [dBm] when neither an SNR nor a power is given (thermal noise)."""
DEFAULT_NOISE_FIGURE_DB = 7.0
"""Receiver noise figure [dB] of the thermal-noise mode."""

ProgressCallback = Callable[[str, int, int], None]
"""``on_progress(algorithm, snapshots_done, snapshots_total)``."""


def is_estimate_file(path: Path) -> bool:
    """Whether ``path`` is an estimate file (its ``/config`` kind), read lazily."""
    try:
        if not (path.is_file() and h5py.is_hdf5(path)):
            return False
        with h5py.File(path, "r") as f:
            return "config" in f and f["config"].attrs.get("kind") == FILE_KIND
    except (OSError, KeyError, ValueError):
        return False


#: What ``twin estimate`` writes (``--overwrite`` replaces only this).
ESTIMATE_FILE = Artifact("twin estimate file", "twin estimate", is_estimate_file)


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


def _registered() -> str:
    return ", ".join(sorted(ESTIMATORS)) or "(none)"


def split_names(algorithms: str | Iterable[str]) -> list[str]:
    """Names from ``"a,b"`` or ``["a", "b,c"]``, in the order given, blanks dropped."""
    items = [algorithms] if isinstance(algorithms, str) else list(algorithms)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def resolve_algorithms(algorithms: str | Iterable[str]) -> list[str]:
    """Registered algorithm names from ``"a,b"`` or ``["a", "b,c"]``, in the order given.

    Raises
    ------
    TwinInputError
        No name, an unknown name (the message lists the registered ones, sorted), or a
        name given twice.
    """
    names = split_names(algorithms)
    if not names:
        raise TwinInputError(f"--algorithms: no algorithm given (registered: {_registered()})")
    for name in names:
        if name not in ESTIMATORS:
            raise TwinInputError(
                f"--algorithms: unknown algorithm '{name}' (registered: {_registered()})"
            )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TwinInputError(f"--algorithms: {', '.join(twice)} given more than once")
    return names


class _MismatchError(Exception):
    """A --set value does not fit the annotation of its hyper-parameter."""


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _conform(hint: Any, value: Any, raw: str) -> Any:
    """``value`` (parsed from the text ``raw``) made to fit ``hint``, or :class:`_MismatchError`.

    Checks the plain types an estimator's hyper-parameters use (bool, int, float, str,
    None, Literal, unions, list/tuple/dict); other annotations accept any value.
    """
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _conform(arg, value, raw)
            except _MismatchError:
                continue
        raise _MismatchError
    if origin is typing.Literal:
        for option in typing.get_args(hint):
            if value == option and type(value) is type(option):
                return option
            if isinstance(option, str) and raw.strip() == option:
                return option
        raise _MismatchError
    if hint is type(None):
        if value is not None:
            raise _MismatchError
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise _MismatchError
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _MismatchError
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e6 (no dot) as text
            try:
                number = float(value)
            except ValueError:
                raise _MismatchError from None
            if not math.isfinite(number):
                raise _MismatchError
            return number
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _MismatchError
        if not math.isfinite(value):
            raise _MismatchError
        return float(value)
    if hint is str:
        return value if isinstance(value, str) else raw.strip()
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, list):
            raise _MismatchError
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _MismatchError
            items = [_conform(a, v, yaml.safe_dump(v)) for a, v in zip(args, value, strict=True)]
        elif args:
            items = [_conform(args[0], v, yaml.safe_dump(v)) for v in value]
        else:
            items = list(value)
        return tuple(items) if (origin or hint) is tuple else items
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, dict):
            raise _MismatchError
        return value
    return value


def _annotations(cls: type[Estimator]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: accept values unchecked
        return {}


def parse_settings(
    settings: Iterable[str], classes: Mapping[str, type[Estimator]]
) -> dict[str, dict[str, Any]]:
    """Hyper-parameter overrides per algorithm from ``--set`` items.

    ``key=value`` sets ``key`` on every selected algorithm that has it (an error if none
    has); ``algo.key=value`` on ``algo`` only (an error if it is not selected or lacks
    ``key``). A scoped setting wins over a global one. Values are YAML (``3``, ``0.5``,
    ``true``, ``null``, ``[1, 2]``), checked against the parameter's annotation: an
    ``int``, or a number such as ``1e6`` that YAML 1.1 reads as text, given to a
    ``float`` parameter becomes a float; text parameters take the text as written.

    Returns
    -------
    ``{algorithm: {parameter: value}}`` for every algorithm of ``classes``.
    """
    params = {name: cls.default_params() for name, cls in classes.items()}
    hints = {name: _annotations(cls) for name, cls in classes.items()}
    global_: dict[str, dict[str, Any]] = {name: {} for name in classes}
    scoped: dict[str, dict[str, Any]] = {name: {} for name in classes}
    seen: set[tuple[str | None, str]] = set()

    def convert(item: str, algo: str, key: str, raw: str, value: Any) -> Any:
        hint = hints[algo].get(key, Any)
        try:
            return _conform(hint, value, raw)
        except _MismatchError:
            raise TwinInputError(
                f"--set {item}: {algo}.{key} expects {_type_name(hint)}, got {raw.strip()!r}"
            ) from None

    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TwinInputError(f"--set {item}: expected key=value or algorithm.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = str(getattr(exc, "problem", "") or "invalid YAML")
            raise TwinInputError(f"--set {item}: value is not valid YAML ({problem})") from None
        algo: str | None
        algo, _, param = key.rpartition(".")
        algo = algo or None
        if (algo, param) in seen:
            raise TwinInputError(f"--set {item}: '{key}' is set more than once")
        seen.add((algo, param))
        if algo is None:
            targets = [name for name in classes if param in params[name]]
            if not targets:
                known = sorted({k for p in params.values() for k in p})
                raise TwinInputError(
                    f"--set {item}: no selected algorithm has a parameter '{param}' "
                    f"(known: {', '.join(known) or 'none'})"
                )
            for name in targets:
                global_[name][param] = convert(item, name, param, raw, value)
        else:
            if algo not in classes:
                raise TwinInputError(
                    f"--set {item}: algorithm '{algo}' is not selected "
                    f"(selected: {', '.join(classes)})"
                )
            if param not in params[algo]:
                raise TwinInputError(
                    f"--set {item}: {algo} has no parameter '{param}' "
                    f"(known: {', '.join(sorted(params[algo])) or 'none'})"
                )
            scoped[algo][param] = convert(item, algo, param, raw, value)
    return {name: {**global_[name], **scoped[name]} for name in classes}


def algorithm_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of algorithm ``name``: ``SeedSequence([seed, crc32(name)])``.

    It draws the observation's pilots, beams and noise, then the estimator's own
    randomness; independent per algorithm, reproducible from the seed.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


# -------------------------------------------------------------------------- running


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _plain(value: Any) -> Any:
    """A YAML-safe copy of a parameter value (numpy → python, tuples → lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _yaml(mapping: Mapping[str, Any]) -> str:
    return yaml.safe_dump(_plain(mapping), sort_keys=False, default_flow_style=False)


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
    output : estimate file to write (``.h5``); see the module docstring for its layout.
    snr_db, tx_power_dbm, noise_figure_db : noise, see :func:`resolve_noise` (default:
        thermal noise at 20 dBm transmit power and a 7 dB noise figure).
    settings : ``key=value`` / ``algo.key=value`` hyper-parameter overrides, see
        :func:`parse_settings`.
    seed : seed of the observation noise and the estimators' randomness (default: the
        run's seed); algorithm ``name`` uses :func:`algorithm_rng` ``(seed, name)``.
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

    # Sound and check for every algorithm first: a misfit, or a setting the memory cannot
    # hold, fails before any estimator runs.
    jobs: list[tuple[str, Estimator, np.random.Generator, Observation]] = []
    held: list[Need] = []
    working: list[Need] = []
    for name, estimator in built.items():
        rng = algorithm_rng(seed, name)
        try:
            obs = _observe(run, run_path, name, type(estimator), rng, seed, noise)
            arrays = estimator.working_memory(obs)  # checks the observation first
        except EstimatorInputError as exc:
            if on_skip is None:
                raise _input_error(name, run_path, exc) from None
            on_skip(name, _misfit(name, exc))
            continue
        jobs.append((name, estimator, rng, obs))
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
    total = run.drive.num_snapshots
    for name, estimator, rng, obs in jobs:
        on_snapshot = _snapshot_callback(on_progress, name, total)
        on_snapshot(0)
        estimate = estimator.estimate(obs, rng, on_snapshot=on_snapshot)  # checked above
        if estimate.num_snapshots != total:
            raise RuntimeError(
                f"{name}: returned {estimate.num_snapshots} snapshots for a run of {total}"
            )
        results[name] = estimate

    _write_estimates(
        output, run_path=run_path, run=run, seed=seed, noise=noise,
        instances={name: estimator for name, estimator, _, _ in jobs}, results=results,
    )
    return results


# ---------------------------------------------------------------------------- files


_DATASETS: dict[str, dict[str, str]] = {
    "ue_position": {"units": "m", "dims": "snapshot, xyz"},
    "ue_yaw": {"units": "rad", "dims": "snapshot"},
    "scatterers": {"units": "m", "dims": "snapshot, scatterer, xyz"},
    "scatterer_valid": {"dims": "snapshot, scatterer"},
    "converged": {"dims": "snapshot"},
    "runtime_s": {"units": "s", "dims": "snapshot", "meaning": "wall time per snapshot"},
    "path_tau": {"units": "s", "dims": "snapshot, path"},
    "path_aod": {"units": "rad (azimuth, zenith)", "dims": "snapshot, path, 2"},
    "path_gain": {"units": "complex baseband gain", "dims": "snapshot, path"},
}


def _write_estimates(
    output: Path,
    *,
    run_path: Path,
    run: RunData,
    seed: int,
    noise: Mapping[str, float],
    instances: Mapping[str, Estimator],
    results: Mapping[str, Estimate],
) -> None:
    with atomic_file(output) as tmp, h5py.File(tmp, "w") as f:
        cfg = f.create_group("config")
        cfg.attrs.update(
            kind=FILE_KIND, schema_version=SCHEMA_VERSION, seed=seed,
            algorithms=json.dumps(list(results)), run_file=run_path.name,
            run_scene_sha256=run.scene_sha256, run_num_snapshots=run.drive.num_snapshots,
            run_seed=run.seed, versions=json.dumps(package_versions(), sort_keys=True),
            noise=_yaml(noise),
        )
        group = f.create_group("estimates")
        for name, est in results.items():
            estimator = instances[name]
            g = group.create_group(name)
            for key, attrs in _DATASETS.items():
                g.create_dataset(key, data=getattr(est, key))
                g[key].attrs.update(attrs)
            g.create_dataset("reason", data=np.asarray(list(est.reason), dtype=object),
                             dtype=h5py.string_dtype())
            diag = g.create_group("diagnostics")
            for key, values in est.diagnostics.items():
                diag.create_dataset(key, data=np.asarray(values))
                diag[key].attrs["dims"] = "snapshot"
            cls = type(estimator)
            g.attrs.update(
                params=_yaml(estimator.get_params()), sounding=_yaml(cls.sounding),
                estimator=f"{cls.__module__}.{cls.__qualname__}", seed=seed,
                seed_entropy=[seed, zlib.crc32(name.encode())], noise=_yaml(noise), **noise,
            )


@dataclass(frozen=True)
class EstimateFile:
    """An estimate file read back (see the module docstring for the layout).

    Attributes
    ----------
    schema_version, seed : as written; ``seed`` drew the observations' noise.
    run_file : name of the run file the estimates were made on.
    run_scene_sha256, run_num_snapshots, run_seed : that run's scene hash, number of
        snapshots ``T`` and seed (to check an estimate file against a run file).
    versions : package versions of the writer.
    noise : ``{"snr_db": x}`` or ``{"tx_power_dbm": p, "noise_figure_db": nf}``.
    estimates : algorithm → :class:`estimators.base.Estimate` (``T`` snapshots), in
        the order they were run.
    params, sounding : algorithm → its hyper-parameters / sounding options.
    """

    schema_version: str
    seed: int
    run_file: str
    run_scene_sha256: str
    run_num_snapshots: int
    run_seed: int
    versions: dict[str, str]
    noise: dict[str, float]
    estimates: dict[str, Estimate] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    sounding: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_estimate(g: h5py.Group) -> Estimate:
    diagnostics: dict[str, np.ndarray] = {}

    def collect(key: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            diagnostics[key] = node[()]

    if "diagnostics" in g:
        g["diagnostics"].visititems(collect)
    reason = tuple(s.decode() if isinstance(s, bytes) else str(s) for s in g["reason"][()])
    return Estimate(
        **{key: g[key][()] for key in _DATASETS}, reason=reason, diagnostics=diagnostics,
    )


def read_estimates(path: str | Path) -> EstimateFile:
    """Read an estimate file written by :func:`estimate_run`.

    Raises
    ------
    TwinInputError
        One line: missing file, not HDF5, not an estimate file (e.g. a run file), or a
        file missing part of the layout.
    """
    p = Path(path)
    if not p.is_file():
        raise TwinInputError(f"{p}: estimate file not found")
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise TwinInputError(f"{p}: not an HDF5 estimate file") from None
    with f:
        cfg = f["config"].attrs if "config" in f else {}
        if cfg.get("kind") != FILE_KIND:
            what = "a run file" if "yaml" in cfg else "not an estimate file"
            raise TwinInputError(f"{p}: {what}, expected estimates (twin estimate -o)")
        version = str(cfg.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise TwinInputError(
                f"{p}: estimate schema {version or '?'}, this twin reads {SCHEMA_VERSION}"
            )
        try:
            order = json.loads(str(cfg["algorithms"]))
            group = f["estimates"]
            return EstimateFile(
                schema_version=version, seed=int(cfg["seed"]), run_file=str(cfg["run_file"]),
                run_scene_sha256=str(cfg["run_scene_sha256"]),
                run_num_snapshots=int(cfg["run_num_snapshots"]), run_seed=int(cfg["run_seed"]),
                versions=json.loads(str(cfg["versions"])),
                noise=yaml.safe_load(str(cfg["noise"])),
                estimates={name: _read_estimate(group[name]) for name in order},
                params={name: yaml.safe_load(str(group[name].attrs["params"])) or {}
                        for name in order},
                sounding={name: yaml.safe_load(str(group[name].attrs["sounding"])) or {}
                          for name in order},
            )
        except (KeyError, ValueError, TypeError, OSError, yaml.YAMLError) as exc:
            raise TwinInputError(
                f"{p}: damaged estimate file ({_one_line(str(exc)) or type(exc).__name__})"
            ) from None


def check_same_run(run_path: Path, run: RunData, est_path: Path, est: EstimateFile) -> None:
    """Refuse an estimate file made on another run than ``run`` (its scene hash, snapshot
    count or seed differ): one line naming both files and what differs."""
    differences = []
    if est.run_scene_sha256 != run.scene_sha256:
        differences.append(
            f"scene SHA-256 {est.run_scene_sha256[:12]}… vs {run.scene_sha256[:12]}…")
    if est.run_num_snapshots != run.drive.num_snapshots:
        differences.append(f"{est.run_num_snapshots} snapshots vs {run.drive.num_snapshots}")
    if est.run_seed != run.seed:
        differences.append(f"run seed {est.run_seed} vs {run.seed}")
    if differences:
        raise TwinInputError(
            f"{est_path}: estimates made on another run than {run_path} "
            f"({'; '.join(differences)})"
        )


def select_estimated(
    requested: str | Iterable[str] | None, available: Sequence[str], source: str
) -> tuple[str, ...]:
    """The algorithms of estimate file(s) to use: ``requested`` (``"a,b"`` or a sequence;
    None or empty: every one ``available``), in the order given.

    Raises
    ------
    TwinInputError
        A requested name that ``source`` (the file(s), for the message) does not hold;
        the message lists the available ones.
    """
    names = split_names(requested) if requested is not None else []
    if not names:
        return tuple(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise TwinInputError(
            f"--algorithms: {', '.join(repr(n) for n in unknown)} not in {source} "
            f"(available: {', '.join(available) or 'none'})"
        )
    return tuple(dict.fromkeys(names))


def gather_estimates(
    run_path: Path, run: RunData, estimate_paths: Sequence[str | Path],
    algorithms: str | Iterable[str] | None = None,
) -> dict[str, tuple[Path, EstimateFile]]:
    """The selected algorithms of one run's estimate files, in file order:
    algorithm → (its file, that file read back).

    Raises
    ------
    TwinInputError
        An unreadable file or one of another run (:func:`check_same_run`), an unknown
        algorithm (:func:`select_estimated`), or an algorithm found in two files and not
        narrowed down by ``algorithms``.
    """
    found: list[tuple[str, Path, EstimateFile]] = []
    for path in map(Path, estimate_paths):
        est_file = read_estimates(path)
        check_same_run(run_path, run, path, est_file)
        found += [(name, path, est_file) for name in est_file.estimates]
    available = list(dict.fromkeys(name for name, _, _ in found))
    chosen = select_estimated(algorithms, available, "the estimate file(s)")
    selected = [item for item in found if item[0] in chosen]
    names = [name for name, _, _ in selected]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TwinInputError(f"{', '.join(twice)} appear(s) in more than one estimate file; "
                             "select with --algorithms")
    return {name: (path, est_file) for name, path, est_file in selected}
