"""The estimate file ``twin estimate`` writes: its layout, writer and reader.

ONE HDF5 file per ``twin estimate`` call, separate from the run file (the run stays
read-only and several estimate files can refer to one run), written atomically::

    /config      attrs: kind ("estimates"), schema_version, seed, algorithms (JSON list,
                 in the order run), run_file (name), run_scene_sha256, run_num_snapshots,
                 run_seed, versions (JSON), noise (YAML), service_area (JSON: the
                 run's ``area`` corners [m] and ``ue_height`` [m] the estimators saw,
                 :func:`twin.sounding.service_area`), tracked_from (only in a file
                 ``twin track`` wrote: the name of the estimate file it tracked)
    /snapshot_time[T] [s]   the run's snapshot times (what ``twin track`` runs on)
    /estimates/<algorithm>/
                 ue_position[T,3] [m], ue_yaw[T] [rad], scatterers[T,Q,3] [m],
                 scatterer_valid[T,Q], converged[T], reason[T] (strings), runtime_s[T] [s],
                 path_tau[T,P] [s], path_aod[T,P,2] (azimuth, zenith) [rad],
                 path_gain[T,P] complex128, position_covariance[T,3,3] [m²] (NaN
                 where the estimator reports none; z NaN for a 2-D method),
                 scatterer_covariance[T,Q,3,3] [m²] (likewise),
                 diagnostics/<name>[T]
                 attrs: params (YAML of get_params()), sounding (YAML), estimator (class),
                 position_dimensions (2: horizontal plane, 3), seed, seed_entropy
                 ([seed, crc32(name)]), noise (YAML) and its values (snr_db, or
                 tx_power_dbm and noise_figure_db)
    /estimates/<algorithm>/bound/          (only where the estimator has a bound)
                 position_m[T] [m], scatterer_m[T,Q] [m], orientation_rad[T] [rad] (where
                 the paper bounds the orientation), <name>[T] for each further bound
                 (``Bound.other``, its unit in its name)
                 attrs: description (``Estimator.bound``: what is bounded, with the
                 paper's equation numbers)

Schema 2.2 (2.1: no ``snapshot_time``, read as None, and no ``scatterer_covariance``, read
as NaN; 2.0: no ``position_covariance``, read as NaN, and no ``service_area``; 1.x:
``ue_orientation`` for ``ue_yaw``, no ``position_dimensions``, no ``bound``); a file of another
major version is refused in one line naming both, a newer minor of 2 is read and its added
fields ignored (the rule of :mod:`twin.schema`).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import yaml

from estimators import Bound, Estimate, Estimator
from estimators.types import ServiceArea
from estimators.typing import FloatArray
from twin.errors import TwinInputError
from twin.outputs import Artifact, atomic_file
from twin.runfile import RunData, package_versions
from twin.schema import check_schema_version

SCHEMA_VERSION = "2.2"
FILE_KIND = "estimates"

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
    "position_covariance": {
        "units": "m^2", "dims": "snapshot, xyz, xyz",
        "meaning": "the covariance the estimator reports for ue_position (NaN: none; "
                   "z NaN for a 2-D method)"},
    "scatterer_covariance": {
        "units": "m^2", "dims": "snapshot, scatterer, xyz, xyz",
        "meaning": "the covariance reported for each scatterer (NaN: none)"},
}
NOT_ESTIMATED = "not estimated (--snapshots)"
"""The ``reason`` of a snapshot ``twin estimate --snapshots`` left out."""


def estimated(est: Estimate) -> npt.NDArray[np.bool_]:
    """``[snapshot]``: the snapshots the estimator was run on (not left out by
    ``--snapshots``)."""
    return np.array([reason != NOT_ESTIMATED for reason in est.reason], dtype=bool)


#: Datasets a file of an older minor version may lack (read as NaN).
_ADDED_SINCE_2_0 = ("position_covariance", "scatterer_covariance")
_BOUND_POSITION, _BOUND_SCATTERER, _BOUND_ORIENTATION = (
    "position_m", "scatterer_m", "orientation_rad")


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


@dataclass(frozen=True)
class StoredBound:
    """An estimator's Cramér-Rao bounds as ``twin estimate`` stored them
    (:class:`estimators.base.Bound` from the twin's truth at estimate time).

    Attributes
    ----------
    description : what is bounded (``Estimator.bound``), with the paper's equations.
    position_m : ``[snapshot]`` [m] the position error bound, in the estimator's
        ``position_dimensions`` (NaN where the paper's bound does not apply).
    scatterer_m : ``[snapshot, Q]`` [m] (``Q`` may be 0).
    orientation_rad : ``[snapshot]`` [rad], or None where the paper bounds none.
    other : name (unit in it) → ``[snapshot]`` further bounds of the paper.
    """

    description: str
    position_m: FloatArray
    scatterer_m: FloatArray
    orientation_rad: FloatArray | None = None
    other: Mapping[str, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class EstimateHeader:
    """What an estimate file says of the run and the noise its estimates were made on
    (its ``/config`` attributes and ``/snapshot_time``).

    Attributes
    ----------
    run_file : name of the run file the estimates were made on.
    run_scene_sha256, run_num_snapshots, run_seed : that run's scene hash, number of
        snapshots ``T`` and seed (to check an estimate file against a run file).
    seed : the seed that drew the observations' noise.
    noise : ``{"snr_db": x}`` or ``{"tx_power_dbm": p, "noise_figure_db": nf}``.
    service_area : the run's ``area``, ``ue_height`` and ``ground_height`` the estimators
        saw (empty in a file of schema 2.0; no ``ground_height`` before run schema 1.2).
    snapshot_time : ``[T]`` [s] the run's snapshot times (None before schema 2.2).
    tracked_from : in a file ``twin track`` wrote, the estimate file it tracked.
    """

    run_file: str
    run_scene_sha256: str
    run_num_snapshots: int
    run_seed: int
    seed: int
    noise: Mapping[str, float]
    service_area: Mapping[str, Any] = field(default_factory=dict)
    snapshot_time: FloatArray | None = None
    tracked_from: str | None = None

    @classmethod
    def of_run(cls, run_path: Path, run: RunData, *, seed: int, noise: Mapping[str, float],
               service_area: ServiceArea) -> EstimateHeader:
        return cls(run_file=run_path.name, run_scene_sha256=run.scene_sha256,
                   run_num_snapshots=run.drive.num_snapshots, run_seed=run.seed, seed=seed,
                   noise=noise, service_area={"area": plain(service_area.area),
                                              "ue_height": service_area.ue_height,
                                              "ground_height": service_area.ground_height},
                   snapshot_time=np.asarray(run.drive.time, dtype=np.float64))


@dataclass(frozen=True, kw_only=True)
class EstimateFile(EstimateHeader):
    """An estimate file read back (see the module docstring for the layout): its
    :class:`EstimateHeader` and

    Attributes
    ----------
    schema_version : as written.
    versions : package versions of the writer.
    estimates : algorithm → :class:`estimators.base.Estimate` (``T`` snapshots), in
        the order they were run.
    params, sounding : algorithm → its hyper-parameters / sounding options.
    position_dimensions : algorithm → 2 (its positions live in the horizontal plane)
        or 3, as the estimator declared on its observation.
    bounds : algorithm → :class:`StoredBound`, for the algorithms with a bound.
    estimator : algorithm → the class that made its estimates (module path).
    """

    schema_version: str
    versions: dict[str, str]
    estimates: dict[str, Estimate] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    sounding: dict[str, dict[str, Any]] = field(default_factory=dict)
    position_dimensions: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, StoredBound] = field(default_factory=dict)
    estimator: dict[str, str] = field(default_factory=dict)

    def header(self, *, snapshot_time: FloatArray | None = None,
               tracked_from: str | None = None) -> EstimateHeader:
        """This file's header, for a file derived from it (``twin track``)."""
        kept = {f.name: getattr(self, f.name) for f in fields(EstimateHeader)}
        if snapshot_time is not None:
            kept["snapshot_time"] = snapshot_time
        return EstimateHeader(**{**kept, "tracked_from": tracked_from})


# --------------------------------------------------------------------------- writer


def plain(value: Any) -> Any:
    """A YAML-safe copy of a parameter value (numpy → python, tuples → lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _yaml(mapping: Mapping[str, Any]) -> str:
    return yaml.safe_dump(plain(mapping), sort_keys=False, default_flow_style=False)


def stored_bound(estimator: Estimator, bound: Bound) -> StoredBound:
    """What the estimate file keeps of ``estimator``'s :class:`estimators.base.Bound`.

    Raises
    ------
    ValueError
        A further bound (``Bound.other``) named like one of the fixed datasets: a
        programming error of the estimator.
    """
    clash = sorted(set(bound.other) & {_BOUND_POSITION, _BOUND_SCATTERER, _BOUND_ORIENTATION})
    if clash:
        raise ValueError(f"{estimator.name}: Bound.other reuses the name(s) {clash}")
    return StoredBound(
        description=type(estimator).bound,
        position_m=np.asarray(bound.position_error_bound, dtype=np.float64),
        scatterer_m=np.asarray(bound.scatterer_error_bound, dtype=np.float64),
        orientation_rad=None if bound.orientation_error_bound is None
        else np.asarray(bound.orientation_error_bound, dtype=np.float64),
        other={name: np.asarray(v, dtype=np.float64) for name, v in bound.other.items()},
    )


@dataclass(frozen=True)
class Provenance:
    """How one algorithm's estimates were made: its hyper-parameters, its sounding and
    the class that made them (``/estimates/<algorithm>`` attributes)."""

    params: Mapping[str, Any]
    sounding: Mapping[str, Any]
    estimator: str

    @classmethod
    def of(cls, estimator: Estimator) -> Provenance:
        klass = type(estimator)
        return cls(params=estimator.get_params(), sounding=klass.sounding,
                   estimator=f"{klass.__module__}.{klass.__qualname__}")


def write_estimates(
    output: Path,
    *,
    header: EstimateHeader,
    provenance: Mapping[str, Provenance],
    results: Mapping[str, Estimate],
    position_dimensions: Mapping[str, int],
    bounds: Mapping[str, StoredBound],
) -> None:
    """Write an estimate file (the module docstring's layout) atomically."""
    noise = header.noise
    with atomic_file(output) as tmp, h5py.File(tmp, "w") as f:
        cfg = f.create_group("config")
        cfg.attrs.update(
            kind=FILE_KIND, schema_version=SCHEMA_VERSION, seed=header.seed,
            algorithms=json.dumps(list(results)), run_file=header.run_file,
            run_scene_sha256=header.run_scene_sha256,
            run_num_snapshots=header.run_num_snapshots, run_seed=header.run_seed,
            versions=json.dumps(package_versions(), sort_keys=True), noise=_yaml(noise),
            service_area=json.dumps(plain(header.service_area)),
        )
        if header.tracked_from is not None:
            cfg.attrs["tracked_from"] = header.tracked_from
        if header.snapshot_time is not None:
            f.create_dataset("snapshot_time", data=header.snapshot_time)
            f["snapshot_time"].attrs.update(units="s", dims="snapshot")
        group = f.create_group("estimates")
        for name, est in results.items():
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
            if name in bounds:
                _write_bound(g.create_group("bound"), bounds[name])
            made = provenance[name]
            g.attrs.update(
                params=_yaml(made.params), sounding=_yaml(made.sounding),
                estimator=made.estimator,
                position_dimensions=int(position_dimensions[name]), seed=header.seed,
                seed_entropy=[header.seed, zlib.crc32(name.encode())], noise=_yaml(noise),
                **noise,
            )


def _write_bound(g: h5py.Group, bound: StoredBound) -> None:
    g.attrs["description"] = bound.description
    fixed = {_BOUND_POSITION: (bound.position_m, "m", "snapshot"),
             _BOUND_SCATTERER: (bound.scatterer_m, "m", "snapshot, scatterer")}
    if bound.orientation_rad is not None:
        fixed[_BOUND_ORIENTATION] = (bound.orientation_rad, "rad", "snapshot")
    for key, (values, units, dims) in fixed.items():
        g.create_dataset(key, data=values)
        g[key].attrs.update(units=units, dims=dims)
    for key, values in bound.other.items():
        g.create_dataset(key, data=values)
        g[key].attrs["dims"] = "snapshot"


# --------------------------------------------------------------------------- reader


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read_estimate(g: h5py.Group) -> Estimate:
    diagnostics: dict[str, np.ndarray] = {}

    def collect(key: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            diagnostics[key] = node[()]

    if "diagnostics" in g:
        g["diagnostics"].visititems(collect)
    reason = tuple(s.decode() if isinstance(s, bytes) else str(s) for s in g["reason"][()])
    return Estimate(
        **{key: g[key][()] for key in _DATASETS if key in g or key not in _ADDED_SINCE_2_0},
        reason=reason, diagnostics=diagnostics,
    )


def _read_bound(g: h5py.Group) -> StoredBound:
    fixed = {_BOUND_POSITION, _BOUND_SCATTERER, _BOUND_ORIENTATION}
    return StoredBound(
        description=str(g.attrs["description"]),
        position_m=np.asarray(g[_BOUND_POSITION][()], dtype=np.float64),
        scatterer_m=np.asarray(g[_BOUND_SCATTERER][()], dtype=np.float64),
        orientation_rad=np.asarray(g[_BOUND_ORIENTATION][()], dtype=np.float64)
        if _BOUND_ORIENTATION in g else None,
        other={key: np.asarray(g[key][()], dtype=np.float64) for key in g if key not in fixed},
    )


def read_estimates(path: str | Path) -> EstimateFile:
    """Read an estimate file written by ``twin estimate``.

    Raises
    ------
    TwinInputError
        One line: missing file, not HDF5, not an estimate file (e.g. a run file), a file
        of another major schema version (naming both; a newer minor of the same major is
        read, :mod:`twin.schema`), or a file missing part of the layout.
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
        check_schema_version(version or "?", SCHEMA_VERSION, what="estimate", path=p)
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
                position_dimensions={name: int(group[name].attrs["position_dimensions"])
                                     for name in order},
                bounds={name: _read_bound(group[name]["bound"]) for name in order
                        if "bound" in group[name]},
                estimator={name: str(group[name].attrs["estimator"]) for name in order},
                service_area=json.loads(str(cfg["service_area"]))
                if "service_area" in cfg else {},
                snapshot_time=np.asarray(f["snapshot_time"][()], dtype=np.float64)
                if "snapshot_time" in f else None,
                tracked_from=str(cfg["tracked_from"]) if "tracked_from" in cfg else None,
            )
        except (KeyError, ValueError, TypeError, OSError, yaml.YAMLError) as exc:
            raise TwinInputError(
                f"{p}: damaged estimate file ({_one_line(str(exc)) or type(exc).__name__})"
            ) from None


# ------------------------------------------------------------------------ selecting


def split_names(algorithms: str | Iterable[str]) -> list[str]:
    """Names from ``"a,b"`` or ``["a", "b,c"]``, in the order given, blanks dropped."""
    items = [algorithms] if isinstance(algorithms, str) else list(algorithms)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


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


__all__ = ["ESTIMATE_FILE", "FILE_KIND", "SCHEMA_VERSION", "EstimateFile", "EstimateHeader",
           "Provenance", "StoredBound",
           "check_same_run", "gather_estimates", "is_estimate_file", "plain",
           "read_estimates", "select_estimated", "split_names", "stored_bound",
           "write_estimates"]
