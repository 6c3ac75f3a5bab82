"""What docs/GUARANTEES.md promises, one test per case of issue 20 (and the rules behind
them): an output never destroys what the command did not write, bad input is one line
with nothing left behind, resources are checked before the work, workers die with
their driver. Destructive cases run in a temporary directory with a canary file that
must survive.

Most commands run in-process (typer's runner: the same code as the console script,
without its start-up); killing and dropping privileges need a real subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_config, wall_y, write_obj
from tests.twin.test_cli import TWIN, assert_one_line_error, run_twin, temp_leftovers
from tests.twin.test_dataset import config as street_dataset_config
from tests.twin.test_dataset import uma_config
from twin.cli import app
from twin.dataset.engine import make_dataset
from twin.dataset.store import verify
from twin.errors import TwinInputError
from twin.estimate import estimate_run
from twin.evaluate import evaluate_to_dir
from twin.outputs import atomic_directory, stamp, stamp_of, write_bytes_atomic
from twin.simulate import simulate_to_file

CANARY = b"the user's own data\n"
POSITIONS = [(4.0, 0.0, 1.5), (6.0, 1.0, 1.5), (8.0, -1.0, 1.5)]


# ----------------------------------------------------------------------- helpers


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    """Run ``twin ARGS`` in-process in ``cwd``; the result has exit_code, stdout, stderr."""
    runner = CliRunner(env={"COLUMNS": "400", **(env or {})})
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, list(args), catch_exceptions=True)
    finally:
        os.chdir(previous)


def assert_refused(result: Any, *needles: str) -> str:
    """Exit code 2, one ``error:`` line naming the input, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"raised {result.exception!r}")
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def snapshot_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def write_config(directory: Path, data: dict[str, Any], name: str = "cfg.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def small_config(directory: Path, **kwargs: Any) -> dict[str, Any]:
    write_obj(directory / "scene.obj", wall_y("wall_north", 10.0))
    kwargs.setdefault("ue_positions", POSITIONS)
    return make_config("scene.obj", **kwargs)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with cfg.yaml, scene.obj, run.h5, est.h5 and report/ (twin's own)."""
    directory = tmp_path_factory.mktemp("chain")
    config = write_config(directory, small_config(directory))
    simulate_to_file(config, directory / "run.h5")
    estimate_run(directory / "run.h5", "miso-sp-grid", directory / "est.h5", snr_db=20.0)
    evaluate_to_dir(directory / "run.h5", [directory / "est.h5"], directory / "report",
                    maps=False)
    return directory


@pytest.fixture
def work(chain: Path, tmp_path: Path) -> Path:
    """A copy of :func:`chain` with a canary file, to be damaged by the test if it can."""
    directory = tmp_path / "work"
    shutil.copytree(chain, directory)
    (directory / "canary.txt").write_bytes(CANARY)
    return directory


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small UMa dataset directory (60 samples, 2 shards)."""
    directory = tmp_path_factory.mktemp("dataset")
    config = write_config(directory, uma_config(num_samples=60, samples_per_shard=30),
                          "uma.yaml")
    make_dataset(config, directory / "data")
    return directory / "data"


@pytest.fixture
def data(dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    return copy


# ------------------------------------------------------- 1-4: no data lost, ever


@pytest.mark.parametrize("target", [".", "..", "HOME", "/"])
def test_evaluate_never_replaces_the_working_home_or_root_directory(
        work: Path, target: str, tmp_path: Path) -> None:
    """Case 1: ``-o .`` in the directory of the inputs used to delete every file in it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "canary.txt").write_bytes(CANARY)
    before, home_before = snapshot_tree(work), snapshot_tree(home)
    output = str(home) if target == "HOME" else target
    result = cli("evaluate", "run.h5", "est.h5", "-o", output, "--overwrite", cwd=work,
                  env={"HOME": str(home)})
    assert_refused(result, output)
    assert snapshot_tree(work) == before and snapshot_tree(home) == home_before


def test_evaluate_never_replaces_a_dataset(work: Path, data: Path) -> None:
    """Case 2: a dataset directory is not a report; ``--overwrite`` leaves it whole."""
    result = cli("evaluate", "run.h5", "est.h5", "-o", str(data), "--overwrite", cwd=work)
    assert_refused(result, str(data), "not a twin report directory")
    assert verify(data) == []


def test_simulate_never_writes_onto_its_inputs(work: Path) -> None:
    """Case 3: the config (and the scene) are inputs, not outputs."""
    before = snapshot_tree(work)
    for target in ("cfg.yaml", "scene.obj", "./cfg.yaml"):
        result = cli("simulate", "cfg.yaml", "-o", target, "--overwrite", cwd=work)
        assert_refused(result, str(Path(target)), "input")
    assert snapshot_tree(work) == before


def test_train_never_writes_into_its_dataset(data: Path, tmp_path: Path) -> None:
    """Case 4: a shard is not a checkpoint; nothing goes inside the input directory."""
    for target in ("shard-00000.h5", "model.pt"):
        result = cli("train", "daun", str(data), "-o", str(data / target), "--overwrite",
                      cwd=tmp_path)
        assert_refused(result, str(data / target), "input directory")
        assert verify(data) == []
    assert not (data / "model.pt").exists()


@pytest.mark.parametrize("command, target, needle", [
    (["simulate", "cfg.yaml"], "est.h5", "not a twin run file"),
    (["simulate", "cfg.yaml"], "user.h5", "not a twin run file"),
    (["estimate", "run.h5", "-a", "miso-sp-grid", "--snr-db", "20"], "user.h5",
     "not a twin estimate file"),
    (["estimate", "run.h5", "-a", "miso-sp-grid", "--snr-db", "20"], "canary.txt",
     "not a twin estimate file"),
    (["render", "run.h5"], "photo.png", "not a twin map"),
    (["render", "run.h5"], "page.html", "not a twin map"),
    (["evaluate", "run.h5", "est.h5"], "notes", "not a twin report directory"),
    (["track", "est.h5"], "user.h5", "not a twin track file"),
])
def test_overwrite_replaces_only_what_the_command_wrote(
        work: Path, command: list[str], target: str, needle: str) -> None:
    """``--overwrite`` refuses a file or directory the command did not write."""
    import matplotlib.pyplot as plt

    with h5py.File(work / "user.h5", "w") as f:
        f["my_measurements"] = np.arange(3.0)
    fig = plt.figure()
    fig.savefig(work / "photo.png")
    plt.close(fig)
    (work / "page.html").write_text("<html><head></head><body>mine</body></html>")
    (work / "notes").mkdir()
    (work / "notes" / "ideas.md").write_text("keep")
    before = snapshot_tree(work)
    assert_refused(cli(*command, "-o", target, "--overwrite", "-q", cwd=work), target, needle)
    assert snapshot_tree(work) == before


def test_a_report_with_a_file_of_the_users_is_not_replaced(work: Path) -> None:
    (work / "report" / "my_notes.md").write_text("keep")
    before = snapshot_tree(work)
    result = cli("evaluate", "run.h5", "est.h5", "-o", "report", "--overwrite", "--no-maps",
                  cwd=work)
    assert_refused(result, "report", "not a twin report directory")
    assert snapshot_tree(work) == before


def test_overwrite_replaces_the_commands_own_outputs(work: Path) -> None:
    """The other side of the rule: each command replaces what it wrote before (and an
    empty file)."""
    (work / "empty.h5").touch()
    for args in (["simulate", "cfg.yaml", "-o", "run.h5"],
                 ["simulate", "cfg.yaml", "-o", "empty.h5"],
                 ["estimate", "run.h5", "-a", "miso-sp-grid", "--snr-db", "20", "-o",
                  "est.h5"],
                 ["evaluate", "run.h5", "est.h5", "--no-maps", "-o", "report"],
                 ["render", "run.h5", "est.h5", "-o", "map.html"],
                 ["render", "run.h5", "est.h5", "-o", "map.html"]):
        result = cli(*args, "--overwrite", cwd=work)
        assert result.exit_code == 0, result.stderr
    assert stamp_of(work / "map.html") == "map"
    assert (work / "canary.txt").read_bytes() == CANARY
    assert temp_leftovers(work) == []


def test_a_report_is_replaced_only_once_the_new_one_is_complete(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new report is written beside the old one; a failure leaves the old one."""
    import twin.evaluate

    before = snapshot_tree(work / "report")

    def broken_plots(*args: Any) -> None:
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(twin.evaluate, "_plots", broken_plots)
    with pytest.raises(RuntimeError, match="disk full"):
        evaluate_to_dir(work / "run.h5", [work / "est.h5"], work / "report", maps=False,
                        overwrite=True)
    assert snapshot_tree(work / "report") == before
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []


def test_atomic_directory_keeps_the_old_one_until_the_new_one_is_whole(
        tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(KeyError), atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise KeyError("stop")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    # As readable as any folder the user makes (mkdtemp's own mode is 0700).
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask


def test_stamps_mark_twins_png_and_html_and_leave_them_valid(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from PIL import Image

    fig = plt.figure(figsize=(2, 1))
    fig.savefig(tmp_path / "a.png")
    plt.close(fig)
    pixels = np.asarray(Image.open(tmp_path / "a.png"))
    assert stamp_of(tmp_path / "a.png") is None
    stamp(tmp_path / "a.png", "map")
    assert stamp_of(tmp_path / "a.png") == "map"
    with Image.open(tmp_path / "a.png") as image:
        image.load()  # every chunk's CRC is checked
        np.testing.assert_array_equal(np.asarray(image), pixels)
    (tmp_path / "a.html").write_text("<!DOCTYPE html><html><head><title>t</title></head></html>")
    assert stamp_of(tmp_path / "a.html") is None
    stamp(tmp_path / "a.html", "map")
    assert stamp_of(tmp_path / "a.html") == "map"
    write_bytes_atomic(tmp_path / "b.bin", b"x")
    assert (tmp_path / "b.bin").read_bytes() == b"x" and temp_leftovers(tmp_path) == []


# ------------------------------------------------------------ 5-6: no silent garbage


def ris_config(directory: Path, profile: np.ndarray) -> Path:
    cfg = small_config(directory)
    np.save(directory / "profile.npy", profile)
    cfg["ris"] = [{"name": "tile", "position": [5.0, 9.9, 2.0], "orientation": [-1.5708, 0, 0],
                   "elements": [2, 2], "profile": {"kind": "file", "file": "profile.npy"}}]
    return write_config(directory, cfg)


@pytest.mark.parametrize("profile", [
    np.array([0.1, np.nan, 0.3, 0.4]),
    np.array([1, np.nan + 1j, 1j, -1]),
    np.array([1, np.inf, 1j, -1], dtype=np.complex64),
    np.array([1, 0j, 1j, -1]),
], ids=["real-nan", "complex-nan", "complex-inf", "complex-zero"])
def test_a_ris_profile_without_a_phase_everywhere_is_an_error(
        tmp_path: Path, profile: np.ndarray) -> None:
    """Case 5: a NaN phase made every CFR value NaN; a complex NaN became phase 0."""
    ris_config(tmp_path, profile)
    result = cli("simulate", "cfg.yaml", "-o", "run.h5", "-q", cwd=tmp_path)
    assert_refused(result, "profile.npy", "element 1")
    assert not (tmp_path / "run.h5").exists() and temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("value, needle", [
    (".inf", "finite"), ("-.inf", "finite"), (".nan", "finite"), ("true", "true"),
    ("false", "false")])
@pytest.mark.parametrize("key", ["radio.frequency_hz", "base_stations[0].position[2]",
                                 "ue.positions[1][0]", "tracing.samples_per_src"])
def test_non_finite_numbers_and_booleans_are_refused_at_their_key(
        tmp_path: Path, key: str, value: str, needle: str) -> None:
    """Case 6: ``frequency_hz: .inf`` was blamed on the material, ``true`` read as 1 Hz."""
    cfg = small_config(tmp_path)
    path = key.replace("[", ".").replace("]", "").split(".")
    node: Any = cfg
    for part in path[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = path[-1]
    node[int(last) if last.isdigit() else last] = "@@"
    text = yaml.safe_dump(cfg, sort_keys=False).replace("'@@'", value)
    (tmp_path / "cfg.yaml").write_text(text)
    result = cli("simulate", "cfg.yaml", "-o", "run.h5", cwd=tmp_path)
    assert_refused(result, key, needle)
    assert not (tmp_path / "run.h5").exists()


# -------------------------------------------------------- 7-10: bounded resources


def test_a_mesh_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """Case 7: a PLY that is /dev/zero grew memory without limit."""
    (tmp_path / "zero.ply").symlink_to("/dev/zero")
    for name, target in (("direct.xml", "/dev/zero"), ("linked.xml", "zero.ply")):
        (tmp_path / name).write_text(
            '<scene version="2.1.0"><shape type="ply" id="wall">'
            f'<string name="filename" value="{target}"/></shape></scene>')
        cfg = make_config(name, ue_positions=POSITIONS)
        write_config(tmp_path, cfg)
        result = cli("simulate", "cfg.yaml", "-o", "run.h5", cwd=tmp_path)
        assert_refused(result, "not a regular file")
    assert not (tmp_path / "run.h5").exists()


@pytest.mark.parametrize("change, knob", [
    ({"bs_array": {"rows": 1000, "cols": 1000}, "tracing": {"max_depth": 3},
      "radio": {"frequency_hz": 28e9, "bandwidth_hz": 1e8, "num_subcarriers": 64},
      "ue_positions": [(4.0 + i, 0.0, 1.5) for i in range(10)]}, "base_stations[0].array"),
    ({"radio": {"frequency_hz": 28e9, "bandwidth_hz": 1e8, "num_subcarriers": "1e9"}},
     "radio.num_subcarriers"),
    ({"tracing": {"samples_per_src": 10**9}}, "tracing.samples_per_src"),
    ({"tracing": {"max_num_paths_per_src": 10**9}}, "tracing.max_num_paths_per_src"),
    ({"trajectory": {"waypoints": [[4, 0, 1.5], [40, 0, 1.5]], "speed_mps": 1.0,
                     "sample_period_s": 1e-9}}, "ue (snapshots)"),
], ids=["array", "subcarriers", "samples", "path-buffer", "snapshots"])
def test_a_run_the_memory_cannot_hold_is_refused_naming_the_knob(
        tmp_path: Path, change: dict[str, Any], knob: str) -> None:
    """Case 8: estimated before the work, refused with one line naming the setting."""
    write_config(tmp_path, small_config(tmp_path, **change))
    result = cli("simulate", "cfg.yaml", "-o", "run.h5", cwd=tmp_path,
                  env={"TWIN_MEMORY_LIMIT": "4G"})
    assert_refused(result, knob, "memory", "TWIN_MEMORY_LIMIT")
    assert not (tmp_path / "run.h5").exists()


def test_a_grid_the_memory_cannot_hold_is_refused(data: Path, tmp_path: Path) -> None:
    """Case 8: ``--grid-spacing 0.001`` allocated 23.8 GiB before failing."""
    result = cli("train", "daun", str(data), "-o", "m.pt", "--grid-spacing", "0.001",
                  cwd=tmp_path, env={"TWIN_MEMORY_LIMIT": "8G"})
    assert_refused(result, "--grid-spacing", "memory")
    assert not (tmp_path / "m.pt").exists()


def test_a_path_count_the_data_cannot_hold_is_refused(work: Path) -> None:
    """Case 8: ``--set num_paths=1000000000`` hung."""
    result = cli("estimate", "run.h5", "-a", "miso-ml", "-o", "e.h5", "--snr-db", "20",
                  "--set", "num_paths=1000000000", cwd=work)
    assert_refused(result, "num_paths")
    assert not (work / "e.h5").exists()


@pytest.mark.parametrize("samples", ["1e12", "4294967295", "1073741824.0"])
def test_tracing_knobs_beyond_sionnas_limits_are_one_line(tmp_path: Path,
                                                           samples: str) -> None:
    """Case 9: ``samples_per_src: 1e12`` was a Dr.Jit TypeError traceback."""
    cfg = small_config(tmp_path, tracing={"samples_per_src": "@@", "deterministic": False})
    cfg["ris"] = [{"name": "tile", "position": [5.0, 9.9, 2.0], "elements": [2, 2],
                   "orientation": [-1.5708, 0.0, 0.0]}]
    text = yaml.safe_dump(cfg, sort_keys=False).replace("'@@'", samples)
    (tmp_path / "cfg.yaml").write_text(text)
    assert_refused(cli("simulate", "cfg.yaml", "-o", "run.h5", cwd=tmp_path),
                   "tracing.samples_per_src")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_driver(tmp_path: Path) -> None:
    """Case 10: ``kill -9`` of the driver left both workers (~2 GB each) for good."""
    config = write_config(tmp_path, street_dataset_config(num_samples=3000,
                                                          samples_per_shard=3), "ds.yaml")
    driver = subprocess.Popen([str(TWIN), "dataset", str(config), "-o", "out", "--workers",
                               "2", "-q"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        # Wait for the pool: two workers that have written at least one shard between them.
        while time.monotonic() < deadline:
            workers = [p for p in _children(driver.pid)
                       if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
            if len(workers) == 2 and list((tmp_path / "out").glob("shard-*.h5")):
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the pool did not start"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "orphaned workers"
    finally:
        driver.kill()
        for pid in workers:  # whatever the outcome, none outlives the test
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert verify(tmp_path / "out")  # unfinished, and says so: --resume goes on


# --------------------------------------------------------- 11-14: one line, early


@pytest.mark.parametrize("damage, needle", [
    (lambda m: m.pop("num_shards"), "num_shards is missing"),
    (lambda m: m.update(shards=None), "shards is a NoneType"),
    (lambda m: m["shards"][0].pop("sha256"), "shards[0].sha256 is missing"),
    (lambda m: m["shards"][0].update(file="../../etc/passwd"), "../../etc/passwd"),
    (lambda m: m.update(num_shards=True), "num_shards is a bool"),
], ids=["no-count", "null-shards", "entry-field", "entry-path", "bool"])
def test_a_damaged_manifest_is_one_line(data: Path, tmp_path: Path, damage: Any,
                                        needle: str) -> None:
    """Case 11: ``KeyError``/``TypeError`` tracebacks from ``twin dataset verify``."""
    manifest = json.loads((data / "manifest.json").read_text())
    damage(manifest)
    (data / "manifest.json").write_text(json.dumps(manifest))
    result = cli("dataset", "verify", str(data), cwd=tmp_path)
    assert_refused(result, "damaged manifest", needle)


def test_outputs_are_checked_before_any_work(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Case 12: an output under a file, or a directory where a file goes, is refused
    before the dataset is made or the network trained."""
    import estimators.daun.admm
    import twin.dataset.engine

    def no_work(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("work started before the output was checked")

    # twin.train imports train_daun when it starts the work.
    monkeypatch.setattr(estimators.daun.admm, "train_daun", no_work)
    monkeypatch.setattr(twin.dataset.engine, "ShardGenerator", no_work)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    config = write_config(tmp_path, uma_config(num_samples=6, samples_per_shard=3), "uma.yaml")
    for args, needle in (
        (["train", "daun", str(data), "-o", "a_file/model.pt"], "not a directory"),
        (["train", "daun", str(data), "-o", "a_dir"], "is a directory"),
        (["train", "daun", str(data), "-o", "a_dir", "--overwrite"], "is a directory"),
        (["dataset", str(config), "-o", "a_file/ds"], "not a directory"),
        (["dataset", str(config), "-o", "a_file"], "a_file"),
    ):
        assert_refused(cli(*args, cwd=tmp_path), needle)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="root writes through chmod unless setpriv drops the capability")
def test_read_only_directories_are_refused_before_any_work(data: Path, tmp_path: Path
                                                           ) -> None:
    """Case 12 as a user without write permission sees it."""
    locked = tmp_path / "locked"
    locked.mkdir()
    config = write_config(tmp_path, uma_config(num_samples=6, samples_per_shard=3), "uma.yaml")
    run_config = write_config(tmp_path, small_config(tmp_path))
    locked.chmod(0o555)
    try:
        for args in (["dataset", str(config), "-o", "locked/ds"],
                     ["train", "daun", str(data), "-o", "locked/model.pt"],
                     ["simulate", str(run_config), "-o", "locked/run.h5"]):
            result = run_twin(*args, cwd=tmp_path, unprivileged=True)
            assert_one_line_error(result, ("locked", "not writable"))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("change, needle", [
    ({"dataset": {"sounding": {"snr_db": [float("nan"), 10.0]}}}, "dataset.sounding.snr_db"),
    ({"radio": {"frequency_hz": float("inf")}}, "radio.frequency_hz"),
    ({"dataset": {"num_samples": True}}, "dataset.num_samples"),
], ids=["nan-snr", "inf-frequency", "bool-count"])
def test_a_dataset_directory_appears_only_for_a_valid_config(
        tmp_path: Path, change: dict[str, Any], needle: str) -> None:
    """Case 13: an ``OverflowError`` left a ``manifest.json`` behind."""
    cfg = uma_config(num_samples=6, samples_per_shard=3)
    for section, values in change.items():
        cfg[section].update(values)
    write_config(tmp_path, cfg, "uma.yaml")
    assert_refused(cli("dataset", "uma.yaml", "-o", "ds", cwd=tmp_path), needle)
    assert not (tmp_path / "ds").exists()


def test_a_dataset_that_fails_before_its_first_shard_leaves_no_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twin.dataset.generate import ShardGenerator

    def failing(self: ShardGenerator, index: int) -> bytes:
        raise TwinInputError("dataset.positions: boxed in")

    monkeypatch.setattr(ShardGenerator, "generate", failing)
    config = write_config(tmp_path, uma_config(num_samples=6, samples_per_shard=3), "uma.yaml")
    with pytest.raises(TwinInputError, match="boxed in"):
        make_dataset(config, tmp_path / "ds")
    assert list(tmp_path.iterdir()) == [config]


def test_demo_checks_every_output_before_it_starts(tmp_path: Path) -> None:
    """Case 14: ``demo/report`` as a file failed after 16 s, with files left behind."""
    demo = tmp_path / "demo"
    (demo / "office").mkdir(parents=True)
    (demo / "office" / "report").write_bytes(CANARY)  # where the office walk's report goes
    assert_refused(cli("demo", "-o", str(demo), "-q", cwd=tmp_path), "report")
    assert [p.name for p in demo.iterdir()] == ["office"]
    assert [p.name for p in (demo / "office").iterdir()] == ["report"]
    assert (demo / "office" / "report").read_bytes() == CANARY


def test_config_files_are_bounded(tmp_path: Path) -> None:
    """A config that is not a regular file, or whose aliases expand without end."""
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        laughs.append(f"{chr(97 + i)}: &{chr(97 + i)} " + "[" + ", ".join(
            [f"*{chr(96 + i)}"] * 10) + "]")
    (tmp_path / "laughs.yaml").write_text("\n".join(laughs) + "\n")
    assert_refused(cli("simulate", "laughs.yaml", "-o", "run.h5", cwd=tmp_path),
                   "aliases are expanded")
    assert_refused(cli("simulate", "/dev/zero", "-o", "run.h5", cwd=tmp_path),
                   "not a regular file")

