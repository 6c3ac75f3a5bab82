"""`twin dataset`: sharded, resumable, reproducible datasets (issue 7).

A test-sized DAUN-style dataset on the bundled street: four BSs with 1x4 ULAs, a
single-antenna UE, narrowband uplink observations, ray-traced paths kept. The same
dataset is made by the local engine with one and two workers and by Ray, and by a run
killed with SIGKILL and resumed: every shard must be the same bytes.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from tests.twin.test_cli import TWIN, assert_one_line_error, run_twin
from twin.dataset.cluster import cluster_environment, local_cluster, node_cpus
from twin.dataset.config import parse_dataset_config
from twin.dataset.engine import make_dataset
from twin.dataset.generate import ShardGenerator
from twin.dataset.loader import ShardDataset
from twin.dataset.store import verify
from twin.errors import TwinInputError
from twin.scene import BUNDLED_DIR

STREET = BUNDLED_DIR / "street" / "street.xml"
BUILDINGS = [((-40, 10), (-22, 28)), ((-20, 10), (-5, 28)), ((5, 10), (22, 28)),
             ((24, 10), (40, 28)), ((-40, -30), (-22, -10)), ((-20, -30), (-5, -10)),
             ((5, -30), (22, -10)), ((24, -30), (40, -10))]


def config(**dataset: Any) -> dict[str, Any]:
    """The test-sized dataset config; ``dataset`` entries replace the section's."""
    yaws = (0.0, np.pi, np.pi / 2, -np.pi / 2)
    spots = ((-45.0, 0.0), (45.0, 0.0), (0.0, -9.0), (0.0, 9.0))
    section: dict[str, Any] = {
        "num_samples": 14, "samples_per_shard": 3,
        "positions": {"kind": "uniform", "box": [[-40.0, -20.0], [40.0, 20.0]],
                      "height": 1.5},
        "sounding": {"snr_db": [0.0, 30.0]}, "keep": ["observations", "cfr", "paths"],
        "max_paths": 8}
    section.update(dataset)
    return {
        "seed": 11, "scene": {"file": str(STREET)},
        "radio": {"frequency_hz": 28e9, "bandwidth_hz": 100e6, "num_subcarriers": 8},
        "base_stations": [
            {"name": f"bs{j}", "position": [x, y, 8.0], "orientation": [yaw, 0.0, 0.0],
             "array": {"rows": 1, "cols": 4}} for j, ((x, y), yaw) in enumerate(
                zip(spots, yaws, strict=True))],
        "tracing": {"max_depth": 2, "samples_per_src": 10_000},
        "dataset": section,
    }


def write(tmp: Path, data: dict[str, Any], name: str = "dataset.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def shard_hashes(directory: Path) -> list[str]:
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["complete"]
    return [entry["sha256"] for entry in manifest["shards"]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset made in-process by the local engine, one worker."""
    tmp = tmp_path_factory.mktemp("dataset")
    out = tmp / "reference"
    make_dataset(write(tmp, config()), out)
    return out


def test_shards_hold_the_sounding_model_and_the_truth(reference: Path) -> None:
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["num_shards"] == 5 and [s["num_samples"] for s in manifest["shards"]] == [
        3, 3, 3, 3, 2]
    assert manifest["seed"] == 11 and len(manifest["scene_sha256"]) == 64
    assert manifest["versions"]["sionna-rt"] and manifest["config"]["dataset"]["num_samples"]
    with h5py.File(reference / "shard-00000.h5") as f:
        y, h = f["observations/y"][()], f["observations/h"][()]
        snr_db, noise = f["observations/snr_db"][()], f["observations/noise_variance"][()]
        position = f["ue_position"][()]
        assert y.shape == h.shape == (3, 4, 4) and f["cfr"].shape == (3, 4, 1, 4, 8)
        assert f["paths/tau"].shape == (3, 4, 8)
        assert f["paths/interaction_points"].shape == (3, 4, 8, 2, 3)
        # SNR: mean |h|^2 over BSs and elements over the noise variance (DAUN eq. 1).
        np.testing.assert_allclose(10 * np.log10(np.mean(np.abs(h) ** 2, axis=(1, 2)) / noise),
                                   snr_db, rtol=1e-5)
        assert np.all((snr_db >= 0) & (snr_db <= 30))
        # The narrowband channel is the CFR at the carrier: the paths' sum at f = 0.
        valid, gain = f["paths/valid"][()], f["paths/gain"][()]
        los = f["observations/los"][()]
        np.testing.assert_array_equal(los, np.any(valid & (f["paths/depth"][()] == 0), axis=2))
        first = np.where(valid, gain, 0).sum(axis=2)  # antenna pair (0, 0)
        np.testing.assert_allclose(h[..., 0], first, rtol=1e-4, atol=1e-9)
    assert np.all(position[:, 2] == 1.5)
    for (x0, y0), (x1, y1) in BUILDINGS:  # never inside a building
        assert not np.any((position[:, 0] > x0) & (position[:, 0] < x1)
                          & (position[:, 1] > y0) & (position[:, 1] < y1))


def test_same_dataset_from_two_workers_and_ray(reference: Path, tmp_path: Path) -> None:
    path = write(tmp_path, config())
    make_dataset(path, tmp_path / "two", workers=2)
    make_dataset(path, tmp_path / "ray", engine="ray", workers=2)
    expected = shard_hashes(reference)
    assert shard_hashes(tmp_path / "two") == expected
    assert shard_hashes(tmp_path / "ray") == expected


def test_two_node_ray_cluster_makes_the_same_dataset(reference: Path, tmp_path: Path) -> None:
    """Two Ray nodes on loopback, started as on a real cluster (``ray start --head``, then
    ``ray start --address``), one CPU each: the two actors of ``--workers 2`` can only be
    placed one per node, and the shards they make through ``--address`` are the bytes
    the in-process engine made."""
    if not TWIN.exists():
        pytest.skip(f"console script not installed at {TWIN}")
    path = write(tmp_path, config())
    with local_cluster(2, cpus_per_node=1) as address:
        assert node_cpus(address) == [1.0, 1.0]
        # The command a user types, in a process of its own, with the cluster's
        # environment (this one has run a local Ray instance, whose settings it keeps).
        subprocess.run([str(TWIN), "dataset", str(path), "-o", str(tmp_path / "cluster"),
                        "--engine", "ray", "--workers", "2", "--address", address, "-q"],
                       check=True, capture_output=True, timeout=600,
                       env=cluster_environment())
    assert shard_hashes(tmp_path / "cluster") == shard_hashes(reference)


def test_killed_run_resumes_to_the_same_dataset(reference: Path, tmp_path: Path) -> None:
    """SIGKILL after the first shards are in the manifest, then --resume."""
    if not TWIN.exists():
        pytest.skip(f"console script not installed at {TWIN}")
    path = write(tmp_path, config())
    out = tmp_path / "killed"
    process = subprocess.Popen([str(TWIN), "dataset", str(path), "-o", str(out), "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            manifest = out / "manifest.json"
            if manifest.is_file() and len(json.loads(manifest.read_text())["shards"]) >= 2:
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = json.loads((out / "manifest.json").read_text())
    assert 2 <= len(done["shards"]) < done["num_shards"], "killed too late to test resume"
    assert verify(out)  # unfinished: verify says so
    result = run_twin("dataset", str(path), "-o", str(out), "--resume", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert shard_hashes(out) == shard_hashes(reference)
    assert verify(out) == []
    assert not list(out.glob(".*.tmp"))


def test_verify_names_a_truncated_and_an_altered_shard(reference: Path, tmp_path: Path
                                                        ) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    torn = copy / "shard-00001.h5"
    torn.write_bytes(torn.read_bytes()[:-100])
    altered = copy / "shard-00003.h5"
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0x01
    altered.write_bytes(bytes(data))
    (copy / "shard-00004.h5").unlink()
    problems = {p.file: p.what for p in verify(copy)}
    assert set(problems) == {"shard-00001.h5", "shard-00003.h5", "shard-00004.h5"}
    assert problems["shard-00001.h5"].startswith("torn")
    assert problems["shard-00003.h5"].startswith("altered")
    assert problems["shard-00004.h5"] == "missing"
    result = run_twin("dataset", "verify", str(copy), cwd=tmp_path)
    assert result.returncode == 1
    assert sorted(line.split(":")[0] for line in result.stdout.splitlines()) == sorted(problems)
    ok = run_twin("dataset", "verify", str(reference), cwd=tmp_path)
    assert ok.returncode == 0 and "complete and intact" in ok.stdout


@pytest.mark.parametrize(("change", "needles"), [
    ({"num_samples": 0}, ("dataset.num_samples", "greater than 0")),
    ({"positions": {"kind": "uniform", "polygon": [[0, 0], [1, 0]]}},
     ("dataset.positions", "polygon needs >= 3 vertices")),
    ({"positions": {"kind": "uniform", "box": [[-35, 15], [-25, 25]]}},  # in a building
     ("dataset.positions", "no valid position")),
    ({"positions": {"kind": "grid", "box": [[-3, -3], [3, 3]], "spacing_m": 3.0}},
     ("dataset.positions", "9 valid point(s)", "num_samples = 14")),
    # 20 km off the scene's origin (a survey frame): float32 rounds by 0.18 wavelengths
    ({"positions": {"kind": "uniform", "box": [[20000, 0], [20010, 10]]}},
     ("positions (base_stations, dataset.positions) reach 20010 m", "translate")),
])
def test_bad_config_is_one_line(tmp_path: Path, change: dict[str, Any],
                                needles: tuple[str, ...]) -> None:
    path = write(tmp_path, config(**change))
    result = run_twin("dataset", str(path), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(result, needles)
    assert not (tmp_path / "out").exists()


def test_existing_directory_needs_resume(reference: Path, tmp_path: Path) -> None:
    with pytest.raises(TwinInputError, match="--resume"):
        make_dataset(write(tmp_path, config()), reference)
    with pytest.raises(TwinInputError, match="differs"):
        make_dataset(write(tmp_path, config(num_samples=13)), reference, resume=True)


def test_grid_and_drives_positions(tmp_path: Path) -> None:
    grid = ShardGenerator(parse_dataset_config(config(
        num_samples=20, positions={"kind": "grid", "box": [[-12, -12], [12, 12]],
                                   "spacing_m": 4.0})), tmp_path)
    points = grid.grid_points()
    # 7 x 7 points; the 8 with |x| in {8, 12} and |y| = 12 lie in buildings
    inside = (np.abs(points[:, 0]) > 5) & (np.abs(points[:, 1]) > 10)
    assert len(points) == 49 - 8 and not inside.any()
    first, _ = grid.positions(1, np.random.default_rng(0))
    np.testing.assert_array_equal(first[:, :2], points[3:6])
    drives = ShardGenerator(parse_dataset_config(config(
        num_samples=30, samples_per_shard=30, positions={
            "kind": "drives", "box": [[-40, -9], [40, 9]], "step_m": 2.0,
            "samples_per_drive": 10})), tmp_path)
    xy, drive = drives.positions(0, np.random.default_rng(1))
    for d in np.unique(drive):
        steps = np.linalg.norm(np.diff(xy[drive == d, :2], axis=0), axis=1)
        np.testing.assert_allclose(steps, 2.0, rtol=1e-12)
    assert np.all(np.bincount(drive - drive.min())[np.unique(drive) - drive.min()] <= 10)
    assert np.all(np.abs(xy[:, 1]) <= 9)


def test_torch_dataset_feeds_a_training_loop(reference: Path) -> None:
    """The Dataset through a DataLoader: a linear map from |y| to the position, trained a
    few epochs, lowers its loss (the loop runs; no accuracy claimed)."""
    import torch
    from torch.utils.data import DataLoader

    data = ShardDataset(reference, max_open=2)
    assert len(data) == 14
    sample = data[-1]
    assert sample["observations/y"].dtype == torch.complex64
    assert sample["observations/y"].shape == (4, 4) and sample["ue_position"].shape == (3,)
    loader = DataLoader(data, batch_size=5, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        total = 0.0
        for batch in loader:
            features = torch.log10(batch["observations/y"].abs().reshape(-1, 16) + 1e-12)
            loss = torch.nn.functional.mse_loss(model(features),
                                                batch["ue_position"][:, :2].float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total)
    assert losses[-1] < losses[0]
    assert len(data._open) <= 2
    data.close()


def uma_config(**dataset: Any) -> dict[str, Any]:
    """DAUN's paper geometry (configs/datasets/daun_uma.yaml), test-sized: 8 antennas."""
    spots = ((-50.0, -50.0), (50.0, -50.0), (50.0, 50.0), (-50.0, 50.0))
    section: dict[str, Any] = {
        "num_samples": 12, "samples_per_shard": 5, "source": "uma",
        "positions": {"kind": "uniform", "box": [[-20.0, -20.0], [20.0, 20.0]]},
        "sounding": {"snr_db": [-10.0, 30.0]}, "keep": ["observations"]}
    section.update(dataset)
    return {
        "seed": 3, "radio": {"frequency_hz": 30e9, "num_subcarriers": 1},
        "base_stations": [
            {"name": f"bs{j}", "position": [x, y, 25.0],
             "orientation": [float(np.arctan2(-y, -x)), 0.0, 0.0],
             "array": {"rows": 1, "cols": 8}} for j, (x, y) in enumerate(spots)],
        "dataset": section}


def test_uma_statistical_mode(tmp_path: Path) -> None:
    """The same sounding model on 38.901 UMa channels: reproducible, the LOS flags of the
    model, and configs that ask for ray-traced outputs refused."""
    path = write(tmp_path, uma_config())
    make_dataset(path, tmp_path / "a")
    make_dataset(path, tmp_path / "b", workers=2)
    assert shard_hashes(tmp_path / "a") == shard_hashes(tmp_path / "b")
    assert verify(tmp_path / "a") == []
    data = ShardDataset(tmp_path / "a", fields=("observations/y", "observations/los",
                                                "ue_position"))
    assert len(data) == 12 and data[0]["observations/y"].shape == (4, 8)
    assert np.all(np.abs(np.stack([data[i]["ue_position"].numpy() for i in range(12)])[:, :2])
                  <= 20)
    data.close()
    with pytest.raises(TwinInputError, match="observations only"):
        parse_dataset_config(uma_config(keep=["observations", "paths"]))
