"""`twin evaluate`: truth sets, scores against direct computations, report, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import make_config, wall_y, write_obj
from twin.errors import TwinInputError
from twin.estimate import estimate_run, read_estimates
from twin.evaluate import evaluate, evaluate_to_dir, truth_sets
from twin.runfile import read_run
from twin.simulate import simulate_to_file

UE = [[12.0, 1.0, 3.0], [18.0, -2.0, 3.0], [25.0, 3.0, 3.0], [9.0, 4.0, 3.0]]


def _run(tmp: Path, name: str, ue: list[list[float]], floor: bool) -> Path:
    objects = {**wall_y("wall_north", 10.0)}
    if floor:
        objects["floor"] = ((-200.0, -200.0, 0.0), (400.0, 0.0, 0.0), (0.0, 400.0, 0.0))
    scene = write_obj(tmp / f"{name}.obj", objects)
    config = make_config(scene.name, ue_positions=ue, bs_array={"rows": 1, "cols": 16},
                         tracing={"max_depth": 2, "refraction": False},
                         radio={"frequency_hz": 28e9, "bandwidth_hz": 100e6,
                                "num_subcarriers": 64})
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config))
    simulate_to_file(tmp / f"{name}.yaml", tmp / f"{name}.h5")
    return tmp / f"{name}.h5"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("evaluate")
    run = _run(tmp, "run", UE, floor=True)
    other = _run(tmp, "other", UE[:3], floor=False)
    estimate_run(run, "miso-ml", tmp / "est.h5", snr_db=20.0, settings=["num_paths=3"])
    return {"run": run, "other": other, "est": tmp / "est.h5", "tmp": tmp}


def test_truth_sets_and_unmodelled_floor_points(files: dict[str, Path]) -> None:
    run = read_run(files["run"])
    sets = truth_sets(run)
    for t, truth in enumerate(sets["single_bounce"]):
        assert set(truth.objects) == {"wall_north", "floor"}
        floor = np.array([o == "floor" for o in truth.objects])
        np.testing.assert_allclose(truth.points[floor, 2], 0.0, atol=1e-3)
        np.testing.assert_allclose(truth.points[~floor, 1], 10.0, atol=1e-3)
        # A 2D model can represent the wall's points, not the floor's.
        assert truth.planar.tolist() == (~floor).tolist(), t
    va = sets["virtual_anchors"][0]
    assert len(va.points) >= 2 and np.all(np.isfinite(va.points))
    assert any(o == "wall_north" for o in va.objects)


def test_scores_match_direct_computation(files: dict[str, Path]) -> None:
    metrics, series = evaluate(files["run"], [files["est"]], cutoff=1.0)
    a = metrics["algorithms"]["miso-ml"]
    run, est = read_run(files["run"]), read_estimates(files["est"]).estimates["miso-ml"]
    err = np.linalg.norm((est.ue_position - run.drive.position)[:, :2], axis=1)
    assert a["dimensions"] == 2 and a["ue"]["scored_in"] == "horizontal plane"
    assert a["ue"]["rmse_m"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert a["ue"]["median_m"] == pytest.approx(np.median(err))
    m = a["maps"]["single_bounce"]
    assert m["unmodelled"] == len(UE)  # one floor bounce per snapshot
    assert m["matched"] + m["missed"] == len(UE)  # the wall bounce of each snapshot
    assert 0.0 <= m["precision"] <= 1.0 and m["per_object"]["wall_north"]["truth"] == len(UE)
    assert a["bound"] is not None  # miso-ml has a CRLB
    assert series["miso-ml"]["ue_error"].shape == (len(UE),)


def test_report_directory_is_written_whole(files: dict[str, Path]) -> None:
    out = files["tmp"] / "report"
    evaluate_to_dir(files["run"], [files["est"]], out)
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "metrics.json", "report.md", "ue_error_cdf.png", "ue_error_over_time.png",
        "map_precision_recall.png", "map.png", "map.html"])
    data = json.loads((out / "metrics.json").read_text())
    assert data["schema_version"] == "1.0" and "miso-ml" in data["algorithms"]
    report = (out / "report.md").read_text()
    assert "| wall_north |" in report and "![map](map.png)" in report
    assert "miso-ml: scatterers" in (out / "map.html").read_text()
    with pytest.raises(TwinInputError, match="not empty"):
        evaluate_to_dir(files["run"], [files["est"]], out, maps=False)
    evaluate_to_dir(files["run"], [files["est"]], out, overwrite=True, maps=False)
    assert not (out / "map.png").exists() and "map.png" not in (out / "report.md").read_text()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report.")]


def test_all_unconverged_estimates_give_a_report_not_a_crash(files: dict[str, Path]) -> None:
    broken = files["tmp"] / "broken.h5"
    broken.write_bytes(files["est"].read_bytes())
    with h5py.File(broken, "r+") as f:
        f["estimates/miso-ml/converged"][...] = False
    out = files["tmp"] / "broken-report"
    metrics = evaluate_to_dir(files["run"], [broken], out, maps=False)
    assert metrics["algorithms"]["miso-ml"]["ue"] is None
    assert "no converged snapshot" in (out / "report.md").read_text()


def test_bad_inputs_one_line(files: dict[str, Path]) -> None:
    twin = str(Path(sys.executable).parent / "twin")
    cases = [
        ([str(files["other"]), str(files["est"])], "another run"),
        ([str(files["run"]), str(files["est"]), "-a", "nope"], "available: miso-ml"),
        ([str(files["run"]), str(files["run"])], "a run file"),
    ]
    for args, needle in cases:
        out = files["tmp"] / "bad"
        done = subprocess.run([twin, "evaluate", *args, "-o", str(out)], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
        assert "Traceback" not in done.stderr and not out.exists()


def test_fuse_points_clusters_within_radius() -> None:
    from twin.evaluate import fuse_points

    pts = np.array([[0.0, 0, 0], [0.1, 0, 0], [5.0, 0, 0], [5.2, 0, 0], [np.nan, 0, 0]])
    fused = fuse_points(pts, radius=0.5)
    np.testing.assert_allclose(fused, [[0.05, 0, 0], [5.1, 0, 0]])
    assert fuse_points(np.zeros((0, 3)), 0.5).shape == (0, 3)


def test_landmarks_persist_along_the_drive(files: dict[str, Path]) -> None:
    """The wall's reflection point moves with the UE; its landmark id does not."""
    sets = truth_sets(read_run(files["run"]))["single_bounce"]
    wall = {lm for truth in sets for lm, o in zip(truth.landmarks, truth.objects, strict=True)
            if o == "wall_north"}
    assert wall == {"wall_north|+0.00,+1.00,+0.00|+10.0"}
    points = np.array([p for truth in sets for p, o in zip(truth.points, truth.objects,
                                                           strict=True) if o == "wall_north"])
    assert np.ptp(points[:, 0]) > 5.0  # different points, one landmark
    metrics, _ = evaluate(files["run"], [files["est"]])
    fused = metrics["algorithms"]["miso-ml"]["fused_map"]
    assert fused["landmarks"] == 1  # 2D estimator: the floor is unmodelled
    assert fused["found"] == {"wall_north|+0.00,+1.00,+0.00|+10.0": True}


def test_several_estimate_files_side_by_side(files: dict[str, Path]) -> None:
    second = files["tmp"] / "est-grid.h5"
    estimate_run(files["run"], "miso-sp-grid", second, snr_db=20.0, overwrite=True)
    metrics, _ = evaluate(files["run"], [files["est"], second])
    assert list(metrics["algorithms"]) == ["miso-ml", "miso-sp-grid"]
    assert metrics["algorithms"]["miso-sp-grid"]["estimate_file"] == "est-grid.h5"
    with pytest.raises(TwinInputError, match="more than one estimate file"):
        evaluate(files["run"], [files["est"], files["est"]])
    only, _ = evaluate(files["run"], [files["est"], second], algorithms=["miso-sp-grid"])
    assert list(only["algorithms"]) == ["miso-sp-grid"]
