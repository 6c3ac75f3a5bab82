"""Shared helpers: small mesh scenes written on the fly and configs around them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Offscreen / headless everywhere; no GPU assumptions in tests.
os.environ.setdefault("TWIN_MITSUBA_VARIANT", "llvm_ad_mono_polarized")

Quad = tuple[Sequence[float], Sequence[float], Sequence[float]]


def write_obj(path: Path, quads: dict[str, Quad]) -> Path:
    """Write named rectangles (corner, edge u, edge v) as objects of an OBJ file."""
    lines, base = [], 1
    for name, (corner, u, v) in quads.items():
        c, du, dv = (np.asarray(a, dtype=float) for a in (corner, u, v))
        lines.append(f"o {name}")
        for p in (c, c + du, c + du + dv, c + dv):
            lines.append("v {:.9f} {:.9f} {:.9f}".format(*p))
        lines.append(f"f {base} {base + 1} {base + 2}")
        lines.append(f"f {base} {base + 2} {base + 3}")
        base += 4
    path.write_text("\n".join(lines) + "\n")
    return path


def wall_y(name: str, y: float, half: float = 200.0) -> dict[str, Quad]:
    """A large vertical wall in the plane ``y = const``."""
    return {name: ((-half, y, -half), (2 * half, 0, 0), (0, 0, 2 * half))}


def make_config(
    scene_file: str | Path,
    *,
    bs_position: Sequence[float] = (0.0, 0.0, 3.0),
    bs_orientation: Sequence[float] = (0.0, 0.0, 0.0),
    bs_array: dict[str, Any] | None = None,
    ue_positions: Sequence[Sequence[float]] | None = None,
    ue_array: dict[str, Any] | None = None,
    ue_orientation: Sequence[float] = (0.0, 0.0, 0.0),
    trajectory: dict[str, Any] | None = None,
    tracing: dict[str, Any] | None = None,
    radio: dict[str, Any] | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """A config mapping in the documented YAML layout."""
    ue: dict[str, Any] = {
        "array": ue_array or {"rows": 1, "cols": 1},
        "orientation": list(ue_orientation),
    }
    if trajectory is not None:
        ue["trajectory"] = trajectory
    else:
        positions = ue_positions if ue_positions is not None else [(10.0, 0.0, 1.5)]
        ue["positions"] = [list(map(float, p)) for p in positions]
    return {
        "seed": seed,
        "scene": {"file": str(scene_file)},
        "radio": radio or {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 32},
        "base_stations": [{
            "name": "bs0", "position": list(bs_position), "orientation": list(bs_orientation),
            "array": bs_array or {"rows": 1, "cols": 1},
        }],
        "ue": ue,
        "tracing": {"max_depth": 1, "samples_per_src": 100_000, **(tracing or {})},
    }


def run_config(config: dict[str, Any], base_dir: Path) -> Any:
    """Validate and simulate a config mapping in memory."""
    from twin.config import parse_config
    from twin.simulate import simulate

    return simulate(parse_config(config, "test-config"), base_dir)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def assert_stored_bound(est_file: Any, name: str, finite: Sequence[bool]) -> Any:
    """``twin estimate`` stored ``name``'s declared bound (``Estimator.bound``): one
    position bound a snapshot, finite and positive exactly where ``finite`` says the
    paper's bound applies, NaN elsewhere. Returns the stored bound."""
    from estimators import ESTIMATORS

    stored = est_file.bounds[name]
    assert stored.description == ESTIMATORS[name].bound
    peb = stored.position_m
    expected = np.asarray(finite, dtype=bool)
    assert peb.shape == expected.shape, (name, peb.shape)
    np.testing.assert_array_equal(np.isfinite(peb), expected, err_msg=name)
    assert np.all(peb[expected] > 0), (name, peb)
    return stored
