"""`twin evaluate`: truth sets, scores against direct computations, report, bad input;
every estimator scored in its stored ``position_dimensions``, with its stored bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from scipy.stats import binom, binomtest

from estimators import Estimate, Estimator
from estimators.base import SnapshotEstimate
from estimators.types import Observation
from tests.conftest import make_config, wall_y, write_obj
from twin.errors import TwinInputError
from twin.estimate import estimate_run
from twin.estimatefile import (
    EstimateHeader,
    Provenance,
    StoredBound,
    read_estimates,
    write_estimates,
)
from twin.evaluate import evaluate, evaluate_to_dir
from twin.runfile import read_run
from twin.scoring import (
    calibration_verdict,
    coverage_interval,
    fuse_points,
    integrity_metrics,
    truth_sets,
)
from twin.simulate import simulate_to_file
from twin.sounding import service_area

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
    assert m["precision"] == pytest.approx(m["matched"] / (m["matched"] + m["false"]))
    assert m["per_object"]["wall_north"]["truth"] == len(UE)
    assert a["bound"] is not None  # miso-ml has a CRLB
    assert series["miso-ml"]["ue_error"].shape == (len(UE),)


def test_report_directory_is_written_whole(files: dict[str, Path]) -> None:
    out = files["tmp"] / "report"
    evaluate_to_dir(files["run"], [files["est"]], out)
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "metrics.json", "report.md", "ue_error_cdf.png", "ue_error_over_time.png",
        "map_precision_recall.png", "map.png", "map.html"])
    data = json.loads((out / "metrics.json").read_text())
    assert data["schema_version"] == "1.4" and "miso-ml" in data["algorithms"]
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


# ------------------------------------------------- stored dimensions and bounds

BS_HEIGHT_M, UE_HEIGHT_M = 8.0, 1.5
STREET_UE = [[12.0, 1.0, UE_HEIGHT_M], [18.0, -2.0, UE_HEIGHT_M], [25.0, 3.0, UE_HEIGHT_M]]


class _Recorded(Estimator):
    """Stands for an estimator whose results were recorded in an estimate file (the
    evaluation reads only the file; this class only names the writer's fields)."""

    name = "recorded"

    def __init__(self, *, label: str = "") -> None:
        self.label = label

    def position_dimensions(self, obs: Observation) -> int:
        raise AssertionError("twin evaluate must read the stored dimensions")

    def _estimate_snapshot(self, obs: Observation, t: int,
                           rng: np.random.Generator) -> SnapshotEstimate:
        raise AssertionError("twin evaluate must not estimate")


def _planar_estimate(run_position: np.ndarray, walls: list[np.ndarray]) -> Estimate:
    """What a planar estimator that is right in the plane reports: the true horizontal
    UE position and wall points, all at the BS's height."""
    T, Q = len(run_position), max(len(w) for w in walls)
    scatterers = np.full((T, Q, 3), np.nan)
    valid = np.zeros((T, Q), bool)
    for t, wall in enumerate(walls):
        scatterers[t, :len(wall)] = wall
        valid[t, :len(wall)] = True
    scatterers[..., 2] = np.where(valid, BS_HEIGHT_M, np.nan)
    ue = np.array(run_position, dtype=np.float64)
    ue[:, 2] = BS_HEIGHT_M
    return Estimate(
        ue_position=ue, ue_yaw=np.full(T, np.nan), scatterers=scatterers,
        scatterer_valid=valid, path_tau=np.zeros((T, 0)), path_aod=np.zeros((T, 0, 2)),
        path_gain=np.zeros((T, 0), np.complex128), converged=np.ones(T, bool),
        reason=("",) * T, runtime_s=np.zeros(T),
    )


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run with the BS 6.5 m above the UE (a wall and a floor), and an estimate file
    holding the same planar estimate twice: stored as 2-D (with a bound) and as 3-D."""
    tmp = tmp_path_factory.mktemp("street")
    scene = write_obj(tmp / "street.obj", {
        **wall_y("wall_north", 10.0),
        "floor": ((-200.0, -200.0, 0.0), (400.0, 0.0, 0.0), (0.0, 400.0, 0.0))})
    config = make_config(scene.name, bs_position=(0.0, 0.0, BS_HEIGHT_M),
                         ue_positions=STREET_UE, tracing={"refraction": False})
    (tmp / "street.yaml").write_text(yaml.safe_dump(config))
    simulate_to_file(tmp / "street.yaml", tmp / "street.h5")
    run = read_run(tmp / "street.h5")
    truth = truth_sets(run)["single_bounce"]
    walls = [p.points[np.array([o == "wall_north" for o in p.objects], bool)] for p in truth]
    est = _planar_estimate(run.drive.position, walls)
    peb = np.array([0.1, 0.2, np.nan])  # NaN: a snapshot where the paper's bound does not apply
    write_estimates(
        tmp / "est.h5",
        header=EstimateHeader.of_run(tmp / "street.h5", run, seed=0, noise={"snr_db": 20.0},
                                     service_area=service_area(run)),
        provenance={"planar": Provenance.of(_Recorded(label="2-D")),
                    "spatial": Provenance.of(_Recorded(label="3-D"))},
        results={"planar": est, "spatial": est},
        position_dimensions={"planar": 2, "spatial": 3},
        bounds={"planar": StoredBound(
            description="test bound", position_m=peb, scatterer_m=np.zeros((3, 0)),
            other={"two_stage_position_m": 2 * peb})},
    )
    return {"run": tmp / "street.h5", "est": tmp / "est.h5", "tmp": tmp}


def test_planar_estimator_scored_in_the_plane_with_the_bs_above(street: dict[str, Path]) -> None:
    """BS at 8 m, UE at 1.5 m: a 2-D estimate at the BS's height has no UE error in the
    plane, its wall points are matched and its floor points unmodelled; the same arrays
    stored as 3-D count the 6.5 m height difference as error and the floor as missed."""
    metrics, series = evaluate(street["run"], [street["est"]])
    truth = truth_sets(read_run(street["run"]))["single_bounce"]
    floor = sum(o == "floor" for p in truth for o in p.objects)
    wall = sum(o == "wall_north" for p in truth for o in p.objects)
    assert floor == wall == len(STREET_UE)  # one floor and one wall bounce per snapshot
    planar, spatial = metrics["algorithms"]["planar"], metrics["algorithms"]["spatial"]
    assert planar["dimensions"] == 2 and planar["ue"]["scored_in"] == "horizontal plane"
    assert planar["ue"]["rmse_m"] == pytest.approx(0.0, abs=1e-9)
    m = planar["maps"]["single_bounce"]
    assert (m["matched"], m["missed"], m["false"], m["unmodelled"]) == (wall, 0, 0, floor)
    assert spatial["dimensions"] == 3 and spatial["ue"]["scored_in"] == "3D"
    assert spatial["ue"]["rmse_m"] == pytest.approx(BS_HEIGHT_M - UE_HEIGHT_M, rel=1e-9)
    m = spatial["maps"]["single_bounce"]
    assert m["unmodelled"] == 0 and m["missed"] == wall + floor
    np.testing.assert_allclose(series["spatial"]["ue_error"], BS_HEIGHT_M - UE_HEIGHT_M)


def test_bound_column_for_every_algorithm_with_a_stored_bound(street: dict[str, Path]) -> None:
    """Every algorithm whose estimate-file group has a ``bound`` gets the bound's medians
    in metrics.json and a value in the report's bound column; one without says so."""
    out = street["tmp"] / "report"
    metrics = evaluate_to_dir(street["run"], [street["est"]], out, maps=False)
    with h5py.File(street["est"], "r") as f:
        bounded = {name for name in f["estimates"] if "bound" in f["estimates"][name]}
    assert bounded == {"planar"}
    for name, a in metrics["algorithms"].items():
        assert (a["bound"] is not None) == (name in bounded), name
    bound = metrics["algorithms"]["planar"]["bound"]
    assert bound["description"] == "test bound"
    assert bound["peb_median_m"] == pytest.approx(0.15)
    assert bound["other"] == {"two_stage_position_m": pytest.approx(0.3)}
    lines = (out / "report.md").read_text().splitlines()
    first = lines.index(next(line for line in lines if line.startswith("| algorithm | converged")))
    column = lines[first].split(" | ").index("bound (PEB, median)")
    rows = {cells[0].lstrip("| "): cells  # the UE table: the two rows below its header
            for cells in (line.split(" | ") for line in lines[first + 2:first + 4])}
    assert rows["planar"][column] == "0.15 m" and rows["spatial"][column] == "no bound"
    assert lines.count("- planar: test bound") == 1  # what the bound bounds, said once


def test_every_paper_bound_is_stored_at_estimate_time(files: dict[str, Path]) -> None:
    """``twin estimate`` stores miso-ml's declared dimensions and its bound: the
    estimator's own ``crlb`` on the observation it estimated from, with the twin's true
    channel (a run without a floor: a floor bounce lies on the LOS in the plane, where
    the paper's 2-D bound is NaN); the evaluation shows it without re-sounding."""
    from estimators import ESTIMATORS
    from twin.estimate import algorithm_rng
    from twin.sounding import channel_truth, observation_from_run

    est_path = files["tmp"] / "est-other.h5"
    estimate_run(files["other"], "miso-ml", est_path, snr_db=20.0, settings=["num_paths=2"])
    est_file = read_estimates(est_path)
    assert est_file.position_dimensions == {"miso-ml": 2}
    stored = est_file.bounds["miso-ml"]
    estimator = ESTIMATORS["miso-ml"]().with_params(num_paths=2)
    run = read_run(files["other"])
    obs = observation_from_run(run, rng=algorithm_rng(run.seed, "miso-ml"), seed=run.seed,
                               snr_db=20.0, **type(estimator).sounding)
    direct = estimator.crlb(obs, channel_truth(run, 0))  # the run's one BS
    assert stored.description == type(estimator).bound
    assert np.isfinite(stored.position_m).all() and (stored.position_m > 0).all()
    np.testing.assert_array_equal(stored.position_m, direct.position_error_bound)
    np.testing.assert_array_equal(stored.scatterer_m, direct.scatterer_error_bound)
    _, series = evaluate(files["other"], [est_path])
    np.testing.assert_array_equal(series["miso-ml"]["peb"], stored.position_m)


def test_integrity_counts_wild_fixes_and_coverage() -> None:
    """A fix 8 m off is wild; it is *confident* unless its covariance covers it at 99 %
    (here: σ = 1 m does not, σ = 5 m does, none reported does not); the 95 % coverage is
    the share of fixes with a covariance whose 95 % region holds the truth, and of the
    snapshots estimated."""
    truth = np.zeros((5, 3))
    position = np.array([[8.0, 0, 0], [8.0, 0, 0], [8.0, 0, 0], [0.5, 0, 0], [3.0, 0, 0]])
    covariance = np.full((5, 3, 3), np.nan)
    for t, sigma in ((0, 1.0), (1, 5.0), (3, 1.0), (4, 1.0)):
        covariance[t, :2, :2] = sigma**2 * np.eye(2)
    est = Estimate(
        ue_position=position, ue_yaw=np.full(5, np.nan), scatterers=np.zeros((5, 0, 3)),
        scatterer_valid=np.zeros((5, 0), bool), path_tau=np.zeros((5, 0)),
        path_aod=np.zeros((5, 0, 2)), path_gain=np.zeros((5, 0), np.complex128),
        converged=np.ones(5, bool), reason=("",) * 5, runtime_s=np.zeros(5),
        position_covariance=covariance)
    metrics = integrity_metrics(est, truth, 2)
    # chi2(2) quantiles: 95 % 5.99, 99 % 9.21; d² = 64, 2.56, -, 0.25, 9.
    interval = metrics.pop("coverage_95_interval")
    assert metrics == {"wild": 3, "confident_wild": 2, "with_covariance": 4,
                       "coverage_95": 2 / 4, "calibration": "consistent",
                       "snapshot_coverage_95": 2 / 5}
    exact = binomtest(2, 4).proportion_ci(confidence_level=0.95, method="exact")
    np.testing.assert_allclose(interval, [exact.low, exact.high], rtol=1e-12)
    # Over the snapshots estimated: the one without a covariance misses, the one not
    # estimated does not count.
    ran = np.array([True, True, True, True, False])
    assert integrity_metrics(est, truth, 2, ran)["snapshot_coverage_95"] == 2 / 4


def test_coverage_interval_is_exact_and_judges_at_its_noise() -> None:
    """The Clopper–Pearson interval: closed forms at the ends (``(α/2)^(1/n)``), equal to
    scipy's ``binomtest`` in between, and at least 95 % coverage of the true probability
    (summed over every outcome). A drive of 18 snapshots whose regions all hold the truth
    is consistent with the 0.90–0.98 band, and so is 13 of 18 (its interval reaches
    0.903: the noise of 18 snapshots); 12 of 18 is over-confident; 200 of 200 is
    conservative."""
    n = 18
    assert coverage_interval(n, n) == pytest.approx((0.025 ** (1 / n), 1.0), rel=1e-12)
    assert coverage_interval(0, n) == pytest.approx((0.0, 1 - 0.025 ** (1 / n)), rel=1e-12)
    for k in (1, 9, 17):
        exact = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert coverage_interval(k, n) == pytest.approx((exact.low, exact.high), rel=1e-10)
    for p in (0.5, 0.9, 0.95, 0.99):
        held = sum(binom.pmf(k, n, p) for k in range(n + 1)
                   if coverage_interval(k, n)[0] <= p <= coverage_interval(k, n)[1])
        assert held >= 0.95
    assert calibration_verdict(18, 18) == "consistent"
    assert calibration_verdict(13, 18) == "consistent"
    assert calibration_verdict(12, 18) == "over-confident"
    assert calibration_verdict(200, 200) == "conservative"
    with pytest.raises(ValueError, match="inside <= total"):
        coverage_interval(5, 4)
