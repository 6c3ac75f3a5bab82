"""The project as a package: an sdist and a wheel that carry the bundled scenes and the
shipped checkpoints, and a plain (non-editable) install of the wheel that works from
outside the clone.

The sdist is built from the working tree and the wheel from the unpacked sdist (what
``pip install`` of an sdist or ``git+...`` does), both through setuptools' PEP 517 hooks,
offline. The wheel is installed with ``--no-deps`` into a fresh venv that sees the
project's dependencies through a ``.pth`` line naming this environment's site-packages;
its commands run in a directory outside the clone, and the test asserts that the
installed wheel, not the clone, is what they import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import h5py
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The data folders and the package each one is installed as.
DATA = {"scenes": "twin/_scenes", "assets": "estimators/_assets"}
#: Variables that would let the venv's Python see the clone or another environment.
_UNSET = {"PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "VIRTUAL_ENV"}


def _source_files(folder: str) -> list[str]:
    """Files of a folder of the clone, relative to the clone (no byte-code)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def _run(args: list[str], cwd: Path, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env.setdefault("TWIN_MITSUBA_VARIANT", "llvm_ad_mono_polarized")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _build(hook: str, source: Path, out: Path) -> Path:
    """Run setuptools' PEP 517 ``hook`` (build_sdist, build_wheel) in ``source``."""
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"
    result = _run([sys.executable, "-c", code], cwd=source)
    return out / result.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Installed:
    sdist: Path
    wheel: Path
    venv: Path
    site: Path  # the venv's site-packages
    elsewhere: Path  # a working directory outside the clone


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    dist = tmp / "dist"
    dist.mkdir()
    sdist = _build("build_sdist", ROOT, dist)
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    wheel = _build("build_wheel", tmp / "unpacked" / sdist.name.removesuffix(".tar.gz"), dist)

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], cwd=tmp).stdout.strip())
    # The project's dependencies: this environment's site-packages, after the venv's own.
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: pip must not touch the editable install it sees through the .pth.
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          "--no-deps", "--no-index", "--ignore-installed", str(wheel)], cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return Installed(sdist, wheel, venv, site, elsewhere)


def test_sdist_carries_scenes_and_assets(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as tar:
        top = installed.sdist.name.removesuffix(".tar.gz")
        names = {name.removeprefix(top + "/") for name in tar.getnames()}
    for folder in DATA:
        files = _source_files(folder)
        assert files, folder
        assert set(files) <= names, sorted(set(files) - names)
    assert {"pyproject.toml", "README.md", "CHANGELOG.md"} <= names


def test_wheel_carries_scenes_assets_and_every_module(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for folder, package in DATA.items():
        expected = {package + name.removeprefix(folder) for name in _source_files(folder)}
        assert expected <= names, sorted(expected - names)
    assert "twin/_scenes/street/street.xml" in names
    assert "estimators/_assets/daun/street.pt" in names
    # Every module of the clone: a subpackage left out of pyproject.toml's list fails here.
    modules = {name for package in ("twin", "estimators") for name in _source_files(package)
               if name.endswith(".py")}
    assert modules <= names, sorted(modules - names)
    assert not [name for name in names if name.endswith(".pyc") or "__pycache__" in name]


def test_installed_wheel_is_what_runs(installed: Installed) -> None:
    probe = textwrap.dedent("""
        import json
        import estimators, twin
        from estimators.daun.checkpoint import CHECKPOINTS_DIR, load_checkpoint
        from twin.install import version
        from twin.scene import BUNDLED_DIR, bundled_scenes
        print(json.dumps({
            "twin": twin.__file__, "estimators": estimators.__file__,
            "scenes": str(BUNDLED_DIR), "checkpoints": str(CHECKPOINTS_DIR),
            "bundled": sorted(bundled_scenes()), "version": version(),
            "street": load_checkpoint("street")["format"]}))
    """)
    out = json.loads(_run([str(installed.venv / "bin" / "python"), "-c", probe],
                          cwd=installed.elsewhere).stdout)
    for key in ("twin", "estimators", "scenes", "checkpoints"):
        assert Path(out[key]).is_relative_to(installed.site), (key, out[key])
    assert out["bundled"] == ["office_floor", "street"]
    assert out["version"] == metadata.version("mmwave-twin")
    assert out["street"] == "daun-checkpoint/1"


def test_installed_cli_version_scenes_and_simulate(installed: Installed) -> None:
    twin = str(installed.venv / "bin" / "twin")
    cwd = installed.elsewhere
    version = _run([twin, "--version"], cwd=cwd).stdout.strip()
    assert version == f"mmwave-twin {metadata.version('mmwave-twin')}"

    listing = _run([twin, "scenes"], cwd=cwd).stdout
    assert "bundled:street" in listing and "bundled:office_floor" in listing

    config = {
        "seed": 3, "scene": {"file": "bundled:street"},
        "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 8},
        "base_stations": [{"name": "bs0", "position": [0.0, -8.0, 10.0],
                           "orientation": [1.5707963, 0.0, 0.0], "array": {"rows": 1,
                                                                            "cols": 2}}],
        "ue": {"array": {"rows": 1, "cols": 1}, "orientation": [0.0, 0.0, 0.0],
               "positions": [[-10.0, 4.0, 1.5], [10.0, 4.0, 1.5]]},
        "tracing": {"max_depth": 1, "samples_per_src": 10_000},
    }
    (cwd / "drive.yaml").write_text(yaml.safe_dump(config))
    _run([twin, "simulate", "drive.yaml", "-o", "run.h5", "--quiet"], cwd=cwd)
    with h5py.File(cwd / "run.h5", "r") as f:
        versions = json.loads(str(f["config"].attrs["versions"]))
        assert f["paths/valid"].shape[0] == 2
        assert f["paths/valid"][()].any()
        scene_source = str(f["config"].attrs["scene_source"])
    assert versions["mmwave-twin"] == metadata.version("mmwave-twin")
    assert "street" in scene_source
