"""The installation's face: ``twin --version``, the optional extras (a command that needs a
missing one says which in one line), the package version in every file's metadata, and
the schema-version rule of the run, estimate and dataset files (:mod:`twin.schema`).

A missing extra is simulated, not uninstalled: a ``None`` entry in ``sys.modules`` makes
its import fail (and :func:`importlib.util.find_spec` report it absent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import h5py
import pytest
import yaml

from twin.dataset.config import SCHEMA_VERSION as DATASET_SCHEMA
from twin.dataset.engine import _resume_state, make_dataset
from twin.dataset.store import MANIFEST, read_manifest
from twin.errors import TwinInputError
from twin.estimatefile import SCHEMA_VERSION as ESTIMATE_SCHEMA
from twin.estimatefile import read_estimates
from twin.install import EXTRAS, missing_modules, require_extra, version
from twin.runfile import SCHEMA_VERSION as RUN_SCHEMA
from twin.runfile import read_run
from twin.schema import check_schema_version, parse_schema_version

ROOT = Path(__file__).resolve().parents[2]
TWIN = Path(sys.executable).with_name("twin")
ONE_LINE = r"^[^\n]*\Z"
#: Runs the CLI with the modules named in argv[1] (comma-separated) made unimportable.
_BLOCKED_CLI = ("import sys; blocked = sys.argv.pop(1); "
                "sys.modules.update({m: None for m in blocked.split(',')}); "
                "sys.argv[0] = 'twin'; from twin.cli import main; main()")


def _cli(*args: str, cwd: Path, blocked: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "FORCE_COLOR"}}
    env.setdefault("TWIN_MITSUBA_VARIANT", "llvm_ad_mono_polarized")
    command = ([sys.executable, "-c", _BLOCKED_CLI, blocked] if blocked else [str(TWIN)])
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# ------------------------------------------------------------------ version, extras


def test_cli_version_is_the_installed_distribution(tmp_path: Path) -> None:
    result = _cli("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mmwave-twin {metadata.version('mmwave-twin')}"
    assert version() == metadata.version("mmwave-twin")


def test_extras_match_pyproject_and_are_installed() -> None:
    """pyproject.toml's extras name the modules :data:`EXTRAS` checks, none of them is a
    core dependency, ``all`` holds every extra, and this environment (scripts/setup.sh)
    has them all."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    for extra, modules in EXTRAS.items():
        names = {_requirement_name(r).replace("-", "_") for r in optional[extra]}
        assert names == set(modules), extra
        assert not names & {n.replace("-", "_") for n in core}, extra
        assert missing_modules(extra) == [], extra
    assert optional["all"] == [f"mmwave-twin[{','.join(EXTRAS)}]"]
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'pip_install -e ".[dev,all]"' in setup


def _requirement_name(requirement: str) -> str:
    for stop in "<>=!~[; ":
        requirement = requirement.split(stop)[0]
    return requirement.lower()


def test_missing_extra_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shapely", None)
    assert missing_modules("osm") == ["shapely"]
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        require_extra("osm", "twin scene osm")
    assert str(info.value) == ("twin scene osm needs the 'osm' extra: pip install "
                               "'mmwave-twin[osm]' (missing: shapely)")


def test_make_dataset_with_ray_engine_needs_the_ray_extra(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(TwinInputError, match=r"'ray' extra: pip install 'mmwave-twin\[ray\]'"):
        make_dataset(tmp_path / "dataset.yaml", tmp_path / "out", engine="ray")
    assert not (tmp_path / "out").exists()


def test_cli_dataset_ray_without_ray_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "dataset.yaml").write_text("seed: 1\n")
    result = _cli("dataset", "dataset.yaml", "-o", "out", "--engine", "ray", "-q",
                  cwd=tmp_path, blocked="ray")
    line = _assert_one_line_error(result, "twin dataset --engine ray", "'ray' extra",
                                  "pip install 'mmwave-twin[ray]'")
    assert line.endswith("(missing: ray)")
    assert not (tmp_path / "out").exists()
    # The local engine does not need ray: the same command goes on to read the config.
    local = _cli("dataset", "dataset.yaml", "-o", "out", "-q", cwd=tmp_path, blocked="ray")
    assert "extra" not in local.stderr and "Traceback" not in local.stderr
    assert local.returncode == 2 and "dataset.yaml" in local.stderr


def test_cli_scene_osm_without_osmium_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "city.osm").write_text("<osm version='0.6'/>\n")
    result = _cli("scene", "osm", "city.osm", "-o", "scene", cwd=tmp_path, blocked="osmium")
    _assert_one_line_error(result, "twin scene osm", "'osm' extra",
                           "pip install 'mmwave-twin[osm]'", "(missing: osmium)")
    assert not (tmp_path / "scene").exists()


# ------------------------------------------------------------------ schema rule


@pytest.mark.parametrize(("value", "parsed"), [
    ("1.1", (1, 1)), ("2", (2, 0)), (1, (1, 0)), (b"2.10", (2, 10)), ("1.1.1", None),
    ("v1", None), (True, None), (1.5, None), (None, None), ("", None)])
def test_parse_schema_version(value: object, parsed: tuple[int, int] | None) -> None:
    assert parse_schema_version(value) == parsed


def test_schema_rule() -> None:
    assert check_schema_version("2.9", "2.2", what="estimate", path="f.h5") == (2, 9)
    assert check_schema_version("2.0", "2.2", what="estimate", path="f.h5") == (2, 0)
    with pytest.raises(TwinInputError, match=r"^f\.h5: estimate schema 3\.0 is newer than "
                                             r"this twin reads \(estimate schema 2\.2, "):
        check_schema_version("3.0", "2.2", what="estimate", path="f.h5")
    with pytest.raises(TwinInputError, match=r"schema 1\.4 is older[^\n]*schema 2\.2"):
        check_schema_version("1.4", "2.2", what="estimate", path="f.h5")
    with pytest.raises(TwinInputError, match=r"'x' is not MAJOR\.MINOR"):
        check_schema_version("x", "2.2", what="estimate", path="f.h5")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-snapshot run of the bundled street and a ``miso-ml`` estimate of it."""
    from twin.estimate import estimate_run

    tmp = tmp_path_factory.mktemp("schema")
    config = {
        "seed": 3, "scene": {"file": "bundled:street"},
        "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 8},
        "base_stations": [{"name": "bs0", "position": [0.0, -8.0, 10.0],
                           "orientation": [1.5707963, 0.0, 0.0],
                           "array": {"rows": 1, "cols": 4}}],
        "ue": {"array": {"rows": 1, "cols": 1}, "orientation": [0.0, 0.0, 0.0],
               "positions": [[-10.0, 4.0, 1.5], [10.0, 4.0, 1.5]]},
        "tracing": {"max_depth": 1, "samples_per_src": 10_000},
    }
    (tmp / "drive.yaml").write_text(yaml.safe_dump(config))
    result = _cli("simulate", "drive.yaml", "-o", "run.h5", "-q", cwd=tmp)
    assert result.returncode == 0, result.stderr
    estimate_run(tmp / "run.h5", "miso-ml", tmp / "est.h5", snr_db=20.0)
    return tmp / "run.h5", tmp / "est.h5"


def _with_schema(source: Path, target: Path, schema: str, *, extra: bool = False) -> Path:
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as f:
        f["config"].attrs["schema_version"] = schema
        if extra:  # what a newer minor may add: a group and an attribute this twin ignores
            f.create_group("added_later").create_dataset("values", data=[1.0, 2.0])
            f["config"].attrs["added_later"] = "yes"
    return target


def test_run_and_estimate_files_store_the_package_version(files: tuple[Path, Path]) -> None:
    run, est = files
    assert read_run(run).versions["mmwave-twin"] == version()
    back = read_estimates(est)
    assert back.versions["mmwave-twin"] == version()
    assert back.schema_version == ESTIMATE_SCHEMA


def test_run_file_schema_rule(files: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = files
    major = int(RUN_SCHEMA.split(".")[0])
    newer_minor = _with_schema(run, tmp_path / "minor.h5", f"{major}.99", extra=True)
    assert read_run(newer_minor).versions == read_run(run).versions
    newer = _with_schema(run, tmp_path / "newer.h5", f"{major + 1}.0")
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        read_run(newer)
    message = str(info.value)
    assert str(newer) in message and f"{major + 1}.0" in message and RUN_SCHEMA in message
    assert "newer" in message
    older = _with_schema(run, tmp_path / "older.h5", f"{major - 1}.5")
    with pytest.raises(TwinInputError, match=r"schema 0\.5 is older"):
        read_run(older)
    # As users meet it: one line from the command, naming both versions, nothing written.
    result = _cli("estimate", "newer.h5", "-a", "miso-ml", "-o", "est.h5", cwd=tmp_path)
    _assert_one_line_error(result, "newer.h5", f"run file schema {major + 1}.0", RUN_SCHEMA)
    assert not (tmp_path / "est.h5").exists()


def test_estimate_file_schema_rule(files: tuple[Path, Path], tmp_path: Path) -> None:
    _, est = files
    major = int(ESTIMATE_SCHEMA.split(".")[0])
    newer_minor = _with_schema(est, tmp_path / "minor.h5", f"{major}.99", extra=True)
    back = read_estimates(newer_minor)
    assert back.schema_version == f"{major}.99" and list(back.estimates) == ["miso-ml"]
    newer = _with_schema(est, tmp_path / "newer.h5", f"{major + 1}.0")
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        read_estimates(newer)
    message = str(info.value)
    assert f"estimate schema {major + 1}.0 is newer" in message and ESTIMATE_SCHEMA in message
    with pytest.raises(TwinInputError, match=r"estimate schema 1\.0 is older"):
        read_estimates(_with_schema(est, tmp_path / "older.h5", "1.0"))


def _manifest(directory: Path, schema: Any) -> Path:
    directory.mkdir()
    manifest = {"schema_version": schema, "config": {}, "seed": 1, "num_samples": 0,
                "samples_per_shard": 1, "num_shards": 0, "shards": [], "complete": True,
                "versions": {"mmwave-twin": version()}, "added_later": [1, 2]}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return directory


def test_dataset_schema_rule(tmp_path: Path) -> None:
    assert read_manifest(_manifest(tmp_path / "same", DATASET_SCHEMA))["seed"] == 1
    minor = _manifest(tmp_path / "minor", f"{DATASET_SCHEMA}.3")
    assert read_manifest(minor)["schema_version"] == f"{DATASET_SCHEMA}.3"
    newer = _manifest(tmp_path / "newer", DATASET_SCHEMA + 1)
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        read_manifest(newer)
    message = str(info.value)
    assert f"dataset schema {DATASET_SCHEMA + 1} is newer" in message
    assert f"(dataset schema {DATASET_SCHEMA}," in message
    with pytest.raises(TwinInputError, match=r"dataset schema 0 is older"):
        read_manifest(_manifest(tmp_path / "older", 0))
    with pytest.raises(TwinInputError, match=r"no schema_version"):
        read_manifest(_no_schema(tmp_path / "none"))
    # --resume goes on only with a dataset of exactly this version.
    with pytest.raises(TwinInputError, match=rf"schema {DATASET_SCHEMA}\.3, this twin writes"):
        _resume_state(minor, cast(Any, None))


def _no_schema(directory: Path) -> Path:
    directory.mkdir()
    (directory / MANIFEST).write_text(json.dumps({"seed": 1}))
    return directory


def test_dataset_manifest_stores_the_package_version(tmp_path: Path) -> None:
    config = {
        "seed": 5, "scene": {"file": "bundled:street"},
        "radio": {"frequency_hz": 28e9, "bandwidth_hz": 100e6, "num_subcarriers": 8},
        "base_stations": [{"name": "bs0", "position": [0.0, -9.0, 8.0],
                           "orientation": [1.5707963, 0.0, 0.0],
                           "array": {"rows": 1, "cols": 4}}],
        "tracing": {"max_depth": 1, "samples_per_src": 10_000},
        "dataset": {"num_samples": 2, "samples_per_shard": 2,
                    "positions": {"kind": "uniform", "box": [[-20.0, -5.0], [20.0, 5.0]],
                                  "height": 1.5}},
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(config))
    manifest = make_dataset(tmp_path / "dataset.yaml", tmp_path / "out")
    assert manifest["versions"]["mmwave-twin"] == version()
    assert read_manifest(tmp_path / "out")["schema_version"] == DATASET_SCHEMA
