"""`twin export deepmimo`: the export loaded by the real `deepmimo` package.

One small run (bundled office floor, two BSs with 2x4 arrays, a 1x2 UE array, rotated
devices, a RIS tile, four snapshots) is exported; deepmimo (its own environment,
`.venv-deepmimo`, made by scripts/setup.sh) loads it with its own loader and makes its
own channels (scripts/twin/deepmimo_channels.py), which must be the run's CFR.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from estimators.arrays import SPEED_OF_LIGHT
from estimators.types import ArrayGeometry
from tests.tolerances import DEEPMIMO_CHANNEL_REL
from twin.channel import cfr
from twin.cli import app
from twin.errors import TwinInputError
from twin.export_deepmimo import deepmimo_array, interaction_codes
from twin.paths import InteractionType
from twin.runfile import RunData, read_run

REPO = Path(__file__).resolve().parents[2]
DEEPMIMO_PYTHON = REPO / ".venv-deepmimo" / "bin" / "python"
HELPER = REPO / "scripts" / "twin" / "deepmimo_channels.py"

CONFIG: dict[str, Any] = {
    "seed": 5,
    "scene": {"file": "bundled:office_floor"},
    "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 32},
    "base_stations": [
        {"name": "ap0", "position": [14.0, 7.5, 2.6], "orientation": [-2.0, 0.1, 0.05],
         "array": {"rows": 2, "cols": 4, "spacing_wavelengths": 0.5}},
        {"name": "ap1", "position": [2.0, 7.0, 2.6], "orientation": [0.2, 0.0, 0.0],
         "array": {"rows": 2, "cols": 4, "spacing_wavelengths": 0.5}},
    ],
    "ue": {
        "array": {"rows": 1, "cols": 2, "spacing_wavelengths": 0.5},
        "orientation": [0.5, -0.2, 0.1],
        "trajectory": {"waypoints": [[5.0, 7.0, 1.2], [11.5, 7.0, 1.2], [11.5, 4.0, 1.2],
                                     [14.3, 1.9, 1.2]],
                       "speed_mps": 1.4, "sample_period_s": 2.5},
    },
    "ris": [{"name": "ris0", "position": [8.0, 3.75, 1.8], "orientation": [0.0, 0.0, 0.0],
             "elements": [8, 8], "profile": {"kind": "focus", "target": [14.3, 1.9, 1.2]}}],
    "tracing": {"max_depth": 2, "samples_per_src": 10_000},
    "outputs": {"ris_paths_range_db": None},
}
TOP = 3  # --max-paths of the second export


@dataclass(frozen=True)
class Exported:
    run: RunData
    folder: Path
    top_folder: Path
    loaded: dict[str, np.ndarray]
    top_loaded: dict[str, np.ndarray]
    params: dict[str, Any]


def _deepmimo(folder: Path) -> dict[str, np.ndarray]:
    """deepmimo's view of an export: the helper run in deepmimo's own environment."""
    if not DEEPMIMO_PYTHON.is_file():
        pytest.fail(f"deepmimo's environment {DEEPMIMO_PYTHON.parent.parent} is missing: run "
                    "scripts/setup.sh (or make setup) to create it", pytrace=False)
    out = folder.parent / f"{folder.name}.deepmimo.npz"
    done = subprocess.run([str(DEEPMIMO_PYTHON), str(HELPER), str(folder), str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    tmp = tmp_path_factory.mktemp("deepmimo")
    (tmp / "walk.yaml").write_text(yaml.safe_dump(CONFIG))
    runner = CliRunner()
    done = runner.invoke(app, ["simulate", str(tmp / "walk.yaml"), "-o", str(tmp / "walk.h5"),
                               "--quiet"])
    assert done.exit_code == 0, done.output
    folder, top_folder = tmp / "office_walk", tmp / "office_walk_top3"
    done = runner.invoke(app, ["export", "deepmimo", str(tmp / "walk.h5"), "-o", str(folder),
                               "--max-paths", "500"])
    assert done.exit_code == 0, done.output
    assert "2 BS x 4 snapshots" in done.output
    done = runner.invoke(app, ["export", "deepmimo", str(tmp / "walk.h5"), "-o",
                               str(top_folder), "--max-paths", str(TOP), "--quiet"])
    assert done.exit_code == 0, done.output
    return Exported(
        run=read_run(tmp / "walk.h5"), folder=folder, top_folder=top_folder,
        loaded=_deepmimo(folder), top_loaded=_deepmimo(top_folder),
        params=json.loads((folder / "params.json").read_text()))


def _in_deepmimo_order(run: RunData, h: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """``[T, Nr, Nt, K]`` of the run → deepmimo's antenna order."""
    ue = np.asarray(params["twin"]["ue_antenna_order"])
    bs = np.asarray(params["twin"]["bs_antenna_order"])
    return h[:, ue][:, :, bs]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_deepmimo_channels_are_the_runs_cfr(exported: Exported) -> None:
    """deepmimo's own channel generation (loader, arrays, rotations, subcarriers), times
    sqrt(K) (its 1/sqrt(N) normalisation), is the run's CFR: multi-antenna at both ends,
    two BSs, rotated devices, RIS paths included."""
    run, loaded, params = exported.run, exported.loaded, exported.params
    T, B, Nr, Nt, K = run.cfr.shape
    assert (B, Nr, Nt) == (2, 2, 8)
    assert str(loaded["deepmimo_version"]).startswith("4.0.")
    assert (run.paths.interaction_types == InteractionType.RIS).any()
    assert np.all(run.paths.tau[run.paths.valid] * run.bandwidth < K)  # none clipped
    for b in range(B):
        h = loaded[f"channel_{b}"] * params["twin"]["channel_scale"]
        assert h.shape == (T, Nr, Nt, K)
        assert _rel(h, _in_deepmimo_order(run, run.cfr[:, b], params)) <= DEEPMIMO_CHANNEL_REL


def test_max_paths_keeps_the_strongest(exported: Exported) -> None:
    """--max-paths 3: deepmimo's channel is the CFR of each link's three strongest paths."""
    run, loaded = exported.run, exported.top_loaded
    params = json.loads((exported.top_folder / "params.json").read_text())
    p = run.paths
    power = np.where(p.valid, np.mean(np.abs(p.gain) ** 2, axis=(-2, -1)), -np.inf)
    rank = np.argsort(np.argsort(-power, axis=2, kind="stable"), axis=2)
    top = replace(p, valid=p.valid & (rank < TOP))
    reference = cfr(top, run.frequencies)
    for b in range(p.valid.shape[1]):
        assert int(loaded[f"num_paths_{b}"].max()) == TOP
        h = loaded[f"channel_{b}"] * params["twin"]["channel_scale"]
        assert _rel(h, _in_deepmimo_order(run, reference[:, b], params)) <= DEEPMIMO_CHANNEL_REL
    assert _rel(loaded["channel_0"], exported.loaded["channel_0"]) > 1e-3  # paths left out


def _rows(types_or_codes: np.ndarray, delay: np.ndarray, points: np.ndarray,
          extra: np.ndarray) -> list[tuple[float, ...]]:
    """A link's paths as sortable rows (NaN → inf): delay, code, points, extra."""
    rows = np.concatenate([delay[:, None], types_or_codes[:, None], points.reshape(len(delay), -1),
                           extra.reshape(len(delay), -1)], axis=1).astype(np.float64)
    return sorted(map(tuple, np.where(np.isnan(rows), np.inf, rows).tolist()))


def test_geometry_round_trip(exported: Exported) -> None:
    """deepmimo's `inter_pos` (as its loader returns it) is the run's interaction points to
    float32, path by path, with the delays and the interaction codes (a digit per bounce
    from the BS: 1 reflection, 3 scattering, 4 transmission, 2 diffraction; a RIS tile 1)."""
    run, loaded = exported.run, exported.loaded
    p = run.paths
    digit = {0: 0, 1: 1, 2: 3, 3: 4, 4: 2, 5: 1}
    for b in range(p.valid.shape[1]):
        inter_pos, inter = loaded[f"inter_pos_{b}"], loaded[f"inter_{b}"]
        D = inter_pos.shape[2]
        assert int(p.depth[:, b].max()) == D
        for t in range(p.num_snapshots):
            v = p.valid[t, b]
            codes = np.array([float("".join(str(digit[int(x)]) for x in row if x) or "0")
                              for row in p.interaction_types[t, b, v]])
            points = p.interaction_points[t, b, v][:, :D].astype(np.float32)
            mine = _rows(codes, p.tau[t, b, v].astype(np.float32), points, np.zeros(v.sum()))
            n = int(loaded[f"num_paths_{b}"][t])
            theirs = _rows(inter[t, :n], loaded[f"delay_{b}"][t, :n], inter_pos[t, :n],
                           np.zeros(n))
            assert n == v.sum()
            assert mine == theirs, (t, b)


def test_object_identity(exported: Exported) -> None:
    """`inter_obj` names the object of every interaction point as the ray tracer saw it
    (the RIS tile too, an object of the exported scene), and deepmimo's own geometric
    assignment on the exported mesh agrees."""
    run, loaded, folder = exported.run, exported.loaded, exported.folder
    p = run.paths
    objects = json.loads((folder / "objects.json").read_text())
    assert [o["name"] for o in objects] == list(p.object_names)
    assert [o["id"] for o in objects] == list(range(len(objects)))
    ris_id = p.object_names.index("ris0")
    assert exported.params["twin"]["ris_objects"] == [ris_id]
    walls = [i for i, name in enumerate(p.object_names) if name.startswith("wall_partition")]
    seen_ris = False
    for b in range(p.valid.shape[1]):
        with np.load(folder / f"inter_obj_t000_tx{b:03d}_r001.npz") as f:
            inter_obj = f["inter_obj"]
        D = inter_obj.shape[2]
        for t in range(p.num_snapshots):
            v = p.valid[t, b]
            ids = np.where(p.object_ids[t, b, v] >= 0, p.object_ids[t, b, v], np.nan)[:, :D]
            n = int(loaded[f"num_paths_{b}"][t])
            mine = _rows(np.zeros(v.sum()), p.tau[t, b, v].astype(np.float32),
                         np.zeros((v.sum(), 0)), ids)
            theirs = _rows(np.zeros(n), loaded[f"delay_{b}"][t, :n], np.zeros((n, 0)),
                           inter_obj[t, :n])
            assert mine == theirs, (t, b)
        # deepmimo's nearest triangle: the same object, but at a RIS vertex (the tile's
        # centre, in the plane of the wall it hangs on: a tie deepmimo gives the wall).
        computed = loaded[f"inter_obj_{b}"][:, :, :D]
        ours = inter_obj[:, :computed.shape[1]]
        known = ~np.isnan(ours)
        ris = ours == ris_id
        np.testing.assert_array_equal(computed[known & ~ris], ours[known & ~ris])
        assert np.isin(computed[ris], [ris_id, *walls]).all()
        seen_ris |= bool(ris.any())
    assert seen_ris


def test_conventions(exported: Exported) -> None:
    """Degrees, zenith from +z, power in dB of the path's power gain, LOS code 0: BS 1's
    line of sight at snapshot 0 against the geometry;
    the drive is one RX set, a point per snapshot, its times in params.json."""
    run, loaded, params = exported.run, exported.loaded, exported.params
    b, t = 1, 0
    assert loaded[f"los_{b}"][t] == 1
    los = int(np.flatnonzero(loaded[f"inter_{b}"][t] == 0)[0])
    d = run.drive.position[t] - run.bs_position[b]
    dist = float(np.linalg.norm(d))
    assert loaded[f"aod_az_{b}"][t, los] == pytest.approx(np.degrees(np.arctan2(d[1], d[0])),
                                                           abs=1e-3)
    assert loaded[f"aod_el_{b}"][t, los] == pytest.approx(np.degrees(np.arccos(d[2] / dist)),
                                                           abs=1e-3)
    assert loaded[f"aoa_el_{b}"][t, los] == pytest.approx(np.degrees(np.arccos(-d[2] / dist)),
                                                           abs=1e-3)
    # The path's power gain [dB]: Friis between isotropic antennas, less the polarization
    # mismatch of the UE's pitch and roll (the run's gains have it).
    wavelength = SPEED_OF_LIGHT / run.carrier_frequency
    friis_db = 20 * np.log10(wavelength / (4 * np.pi * dist))
    gain = run.paths.gain[t, b, 0]
    assert run.paths.depth[t, b, 0] == 0  # the run's LOS path
    run_db = 10 * np.log10(np.mean(np.abs(gain) ** 2))
    assert loaded[f"power_{b}"][t, los] == pytest.approx(run_db, abs=1e-4)
    assert loaded[f"power_{b}"][t, los] == pytest.approx(friis_db, abs=0.5)
    assert loaded[f"delay_{b}"][t, los] == pytest.approx(dist / SPEED_OF_LIGHT, rel=1e-6)
    n = int(loaded[f"num_paths_{b}"][t])
    assert np.all(np.diff(loaded[f"power_{b}"][t, :n]) <= 0)  # strongest first
    assert np.isnan(loaded[f"power_{b}"][t, n:]).all()  # DeepMIMO's padding
    np.testing.assert_array_equal(loaded[f"rx_pos_{b}"], run.drive.position.astype(np.float32))
    np.testing.assert_array_equal(loaded[f"tx_pos_{b}"][0], run.bs_position[b].astype(np.float32))
    txrx = params["txrx_sets"]
    assert (txrx["txrx_set_0"]["num_points"], txrx["txrx_set_0"]["num_ant"]) == (2, 8)
    assert (txrx["txrx_set_1"]["num_points"], txrx["txrx_set_1"]["num_ant"]) == (4, 2)
    assert params["twin"]["snapshot_time_s"] == run.drive.time.tolist()
    rotation = params["twin"]["channel"]["bs_antenna"]["rotation"]  # BS 0's, as DeepMIMO takes
    assert rotation == pytest.approx(np.degrees(run.bs_orientation[0][::-1]).tolist())
    assert params["scene"]["representation"] == "mesh"


def test_interaction_codes() -> None:
    T = InteractionType
    types = np.array([[0, 0, 0], [T.SPECULAR, 0, 0], [T.DIFFRACTION, T.SPECULAR, 0],
                      [T.DIFFUSE, T.REFRACTION, T.RIS]])
    np.testing.assert_array_equal(interaction_codes(types), [0, 1, 21, 341])


def test_deepmimo_array_order_and_refusals() -> None:
    """DeepMIMO's panel [n_y, n_z] (y fastest, from its first element) ↔ the run's
    column-major planar array; dual polarization is refused in one line."""
    from estimators.arrays import planar_array_positions

    d = 0.5 * 0.01
    geometry = ArrayGeometry(element_positions=planar_array_positions(
        2, 3, vertical_spacing_m=d, horizontal_spacing_m=d), rows=2, cols=3)
    panel = deepmimo_array(geometry, 0.01, "BS array")
    assert panel.shape == (3, 2) and panel.spacing == pytest.approx(0.5)
    moved = geometry.element_positions[panel.order] - panel.reference
    iy, iz = np.arange(6) % 3, np.arange(6) // 3
    np.testing.assert_allclose(moved, np.stack([0 * iy, d * iy, d * iz], axis=-1), atol=1e-12)
    dual = ArrayGeometry(element_positions=planar_array_positions(
        2, 3, vertical_spacing_m=d, horizontal_spacing_m=d, num_polarizations=2), rows=2, cols=3,
        polarization="VH")
    with pytest.raises(TwinInputError, match="one port per element"):
        deepmimo_array(dual, 0.01, "BS array")


def test_user_errors(exported: Exported, tmp_path: Path) -> None:
    """One line, exit 2, nothing written: a name deepmimo cannot load, an existing
    export without --overwrite, a folder of the user's, a non-run input, --max-paths 0."""
    run_file = exported.folder.parent / "walk.h5"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    cases = [
        (["-o", str(tmp_path / "Walk")], "lower-cased"),
        (["-o", str(exported.folder)], "--overwrite"),
        (["-o", str(mine), "--overwrite"], "not a DeepMIMO scenario folder"),
        (["-o", str(tmp_path / "walk"), "--max-paths", "0"], "at least 1"),
    ]
    runner = CliRunner()
    for args, message in cases:
        done = runner.invoke(app, ["export", "deepmimo", str(run_file), *args])
        assert done.exit_code == 2, done.output
        assert message in done.output and done.output.count("\n") == 1, done.output
    done = runner.invoke(app, ["export", "deepmimo", str(exported.folder / "params.json"), "-o",
                               str(tmp_path / "walk")])
    assert done.exit_code == 2 and "run file" in done.output, done.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert (mine / "notes.txt").read_text() == "keep"
    # A replaced export is an export again (and only one).
    done = runner.invoke(app, ["export", "deepmimo", str(run_file), "-o",
                               str(exported.top_folder), "--max-paths", str(TOP),
                               "--overwrite", "--quiet"])
    assert done.exit_code == 0, done.output


