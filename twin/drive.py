"""UE snapshots: a trajectory sampled in time, a position list (metres, or latitude and
longitude in a scene of ``twin scene osm``), or a CSV file (``x,y,z`` or
``lat,lon,height`` columns)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.config import TrajectoryConfig, UEConfig
from twin.errors import TwinInputError
from twin.outputs import regular_file


@dataclass(frozen=True)
class Drive:
    """UE state per snapshot.

    Attributes
    ----------
    time : ``[snapshot]`` [s].
    position : ``[snapshot, 3]`` [m].
    velocity : ``[snapshot, 3]`` [m/s] (zero for position lists).
    orientation : ``[snapshot, 3]`` (yaw, pitch, roll) [rad].
    """

    time: npt.NDArray[np.float64]
    position: npt.NDArray[np.float64]
    velocity: npt.NDArray[np.float64]
    orientation: npt.NDArray[np.float64]

    @property
    def num_snapshots(self) -> int:
        return int(self.time.shape[0])


def _polyline(trajectory: TrajectoryConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """The trajectory's distinct waypoints ``[W, 3]``, their arc lengths ``[W]`` [m] and
    the number of samples ``floor(L / (v dt)) + 1`` (a float: it may be huge)."""
    waypoints = np.asarray(trajectory.waypoints, dtype=np.float64)
    # Repeated waypoints add zero-length segments that own no sample: drop them.
    keep = np.concatenate([[True], np.any(np.diff(waypoints, axis=0) != 0, axis=1)])
    waypoints = waypoints[keep]
    if len(waypoints) < 2:
        raise TwinInputError("ue.trajectory.waypoints: zero-length trajectory")
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(waypoints, axis=0), axis=1))])
    step = trajectory.speed_mps * trajectory.sample_period_s
    # A tiny tolerance keeps a sample exactly on the last waypoint despite rounding.
    return waypoints, cum, float(np.floor(cum[-1] / step + 1e-9)) + 1


def snapshot_count(ue: UEConfig, base_dir: Path) -> float:
    """The number of snapshots :func:`build_drive` makes, without making them (a
    CSV's data lines are counted, not parsed)."""
    if ue.trajectory is not None:
        return _polyline(ue.trajectory)[2]
    if ue.positions is not None:
        return float(len(ue.positions))
    if ue.positions_latlon is not None:
        return float(len(ue.positions_latlon))
    path = csv_path(ue, base_dir)
    regular_file(path, "ue.positions_csv")
    with path.open("rb") as f:
        return float(sum(1 for line in f if line.strip() and not line.lstrip().startswith(b"#")))


def sample_trajectory(trajectory: TrajectoryConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample a constant-speed polyline every ``sample_period_s``.

    Returns ``time [T]``, ``position [T, 3]``, ``velocity [T, 3]``; the last sample is at
    or before the final waypoint (``T = floor(L / (v dt)) + 1``).
    """
    waypoints, cum, samples = _polyline(trajectory)
    segments = np.diff(waypoints, axis=0)
    seg_len = np.linalg.norm(segments, axis=1)
    step = trajectory.speed_mps * trajectory.sample_period_s
    count = int(samples)
    arc = np.minimum(np.arange(count) * step, cum[-1])
    seg = np.clip(np.searchsorted(cum, arc, side="right") - 1, 0, len(seg_len) - 1)
    frac = (arc - cum[seg]) / seg_len[seg]
    position = waypoints[seg] + frac[:, None] * segments[seg]
    velocity = trajectory.speed_mps * segments[seg] / seg_len[seg][:, None]
    time = np.arange(count) * trajectory.sample_period_s
    return time, position, velocity


def csv_path(ue: UEConfig, base_dir: Path) -> Path:
    assert ue.positions_csv is not None
    csv = Path(ue.positions_csv).expanduser()
    return csv if csv.is_absolute() else base_dir / csv


#: CSV headers whose first two columns are latitude and longitude [°].
LATLON_HEADERS = (("lat", "lon"), ("latitude", "longitude"))


def _read_positions_csv(path: Path) -> tuple[np.ndarray, bool]:
    """The rows ``[N, 3]`` of a CSV of positions, and whether they are latitude [°],
    longitude [°], height [m] (a header naming ``lat,lon`` or ``latitude,longitude``
    first) rather than x, y, z [m]."""
    regular_file(path, "ue.positions_csv")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__
        raise TwinInputError(f"ue.positions_csv: {path}: unreadable ({reason})") from None
    rows: list[list[float]] = []
    latlon = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        cells = [c.strip() for c in line.replace(";", ",").split(",") if c.strip()]
        if not cells or cells[0].startswith("#"):
            continue
        try:
            values = [float(c) for c in cells]
        except ValueError:
            if not rows and lineno == 1:
                latlon = tuple(c.lower() for c in cells[:2]) in LATLON_HEADERS
                continue  # header line
            raise TwinInputError(f"ue.positions_csv: {path}:{lineno}: not a number") from None
        if len(values) != 3:
            expected = "lat,lon,height" if latlon else "x,y,z"
            raise TwinInputError(
                f"ue.positions_csv: {path}:{lineno}: expected {expected}, got {len(values)} "
                "values"
            )
        rows.append(values)
    if not rows:
        raise TwinInputError(f"ue.positions_csv: {path}: no positions")
    return np.asarray(rows, dtype=np.float64), latlon


def build_drive(ue: UEConfig, base_dir: Path, sample_period_s: float = 1.0, *,
                scene_path: Path | None = None) -> Drive:
    """UE snapshots from the config; position lists are spaced ``sample_period_s`` in time.

    ``scene_path`` (the scene file) georeferences latitude/longitude positions: its
    ``scene.json`` (``twin scene osm``) holds the origin and the projection.
    """
    if ue.trajectory is not None:
        time, position, velocity = sample_trajectory(ue.trajectory)
    else:
        if ue.positions is not None:
            position = np.asarray(ue.positions, dtype=np.float64)
        elif ue.positions_latlon is not None:
            position = _from_latlon(ue.positions_latlon, scene_path, "ue.positions_latlon")
        else:
            position, latlon = _read_positions_csv(csv_path(ue, base_dir))
            if latlon:
                position = _from_latlon(position, scene_path, "ue.positions_csv")
        if not np.all(np.isfinite(position)):
            raise TwinInputError("ue.positions: positions must be finite numbers")
        time = np.arange(len(position)) * sample_period_s
        velocity = np.zeros_like(position)
    orientation = np.broadcast_to(np.asarray(ue.orientation, dtype=np.float64), position.shape)
    return Drive(time, position, velocity, orientation.copy())


def _from_latlon(rows: Any, scene_path: Path | None, where: str) -> np.ndarray:
    """Scene positions ``[N, 3]`` [m] of (latitude [°], longitude [°], height [m]) rows."""
    from twin.osm import load_georeference

    if scene_path is None:
        raise TwinInputError(f"{where}: latitude/longitude positions need a georeferenced "
                             "scene (`twin scene osm`)")
    return load_georeference(scene_path, where).positions(rows, where)
