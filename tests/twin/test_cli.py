"""The ``twin`` CLI as users run it: a real subprocess of the console script.

Contract (twin/cli.py, twin/errors.py): an error a user can cause prints ONE line
``error: ...`` naming the offending input, exits with code 2, shows no traceback and
leaves no partial output file (nor a temp file) behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import pytest
import yaml

from tests.conftest import make_config, wall_y, write_obj
from twin.outputs import atomic_file as atomic_path
from twin.runfile import SCHEMA_VERSION

TWIN = Path(sys.executable).with_name("twin")
UE_POSITIONS = [(4.0, 0.0, 1.5), (6.0, 1.0, 1.5), (8.0, -1.0, 1.5), (12.0, 2.0, 1.5)]
# Variables that change how rich lays out or colours its output; a pipe gets the defaults.
_LAYOUT_VARS = {"COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}


# --------------------------------------------------------------------- helpers


#: Runs a command as root without the capabilities that write and read through file
#: permissions, so that a read-only directory is one for root too (util-linux).
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def run_twin(
    *args: str, cwd: Path, env: dict[str, str] | None = None, unprivileged: bool = False,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``twin`` console script in ``cwd`` (``unprivileged``: as root,
    bound by file permissions as any user is; ``timeout`` [s] against a hang, generous:
    the machine may be shared)."""
    if not TWIN.exists():
        pytest.skip(f"console script not installed at {TWIN}")
    full_env = {k: v for k, v in os.environ.items() if k not in _LAYOUT_VARS}
    full_env.setdefault("TWIN_MITSUBA_VARIANT", "llvm_ad_mono_polarized")
    full_env.update(env or {})
    prefix = UNPRIVILEGED if unprivileged and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, str(TWIN), *args], capture_output=True, text=True, cwd=cwd, env=full_env,
        timeout=timeout, check=False,
    )


def base_config(tmp: Path, **kwargs: Any) -> dict[str, Any]:
    """A small valid config (one wall, a few UE positions) with its scene next to it."""
    write_obj(tmp / "scene.obj", wall_y("wall_north", 10.0))
    kwargs.setdefault("ue_positions", UE_POSITIONS)
    return make_config("scene.obj", **kwargs)


def write_yaml(tmp: Path, data: Any, name: str = "run.yaml") -> str:
    (tmp / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def temp_leftovers(directory: Path) -> list[str]:
    """Temp files a writer may leave next to its output (atomic write, writability probe)."""
    return sorted(
        p.name for pattern in (".*.tmp", ".twin-probe-*") for p in directory.glob(pattern)
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], needles: tuple[str, ...]):
    """Exit code 2, one ``error:`` line on stderr naming the input, nothing else."""
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both
    assert result.returncode == 2, both
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("error:"), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert result.stdout == "", result.stdout


def assert_no_output(output: Path) -> None:
    assert not output.exists(), f"partial output left at {output}"
    assert temp_leftovers(output.parent) == []


# --------------------------------------------------------------------- bad inputs


@dataclass(frozen=True)
class Case:
    """A prepared bad input: the config argument, what the error must name, the output."""

    config: str
    needles: tuple[str, ...]
    output: str = "run.h5"


Builder = Callable[[Path], Case]
Edit = Callable[[dict[str, Any]], None]


def _node(cfg: dict[str, Any], dotted: str) -> tuple[Any, str]:
    *head, last = dotted.split(".")
    node: Any = cfg
    for part in head:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, last


def set_key(dotted: str, value: Any) -> Edit:
    def edit(cfg: dict[str, Any]) -> None:
        node, key = _node(cfg, dotted)
        node[key] = value

    return edit


def rename_key(dotted: str, new: str) -> Edit:
    def edit(cfg: dict[str, Any]) -> None:
        node, key = _node(cfg, dotted)
        node[new] = node.pop(key)

    return edit


def config_case(edit: Edit, *needles: str, **make_kwargs: Any) -> Builder:
    """A valid config changed by ``edit``."""

    def build(tmp: Path) -> Case:
        cfg = base_config(tmp, **make_kwargs)
        edit(cfg)
        return Case(write_yaml(tmp, cfg), needles)

    return build


def scene_case(content: bytes, *needles: str) -> Builder:
    """A valid config whose scene.obj holds ``content``."""

    def build(tmp: Path) -> Case:
        name = write_yaml(tmp, base_config(tmp))
        (tmp / "scene.obj").write_bytes(content)
        return Case(name, ("scene.obj", *needles))

    return build


def text_case(text: str, *needles: str) -> Builder:
    """A config file with raw ``text``."""

    def build(tmp: Path) -> Case:
        (tmp / "run.yaml").write_text(text)
        return Case("run.yaml", ("run.yaml", *needles))

    return build


def missing_config(name: str) -> Builder:
    return lambda tmp: Case(name, (name,))


def parent_is_file(tmp: Path) -> Case:
    (tmp / "afile").write_text("not a directory\n")
    return Case(write_yaml(tmp, base_config(tmp)), ("afile",), output="afile/run.h5")


def _noop(cfg: dict[str, Any]) -> None:
    return None


GARBAGE = bytes(range(256)) * 8 + b"\x00\xff\xfe garbage \x00"
FACELESS_OBJ = b"o lonely\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
NAN_OBJ = b"o wall\nv nan 0 0\nv 1 0 0\nv 1 0 1\nv 0 0 1\nf 1 2 3\nf 1 3 4\n"
STILL = {"waypoints": [[5.0, 0.0, 1.5], [5.0, 0.0, 1.5]], "speed_mps": 1.4,
         "sample_period_s": 0.1}

CASES: dict[str, Builder] = {
    "missing_scene": config_case(set_key("scene.file", "nowhere.obj"), "nowhere.obj"),
    "unreadable_mesh": scene_case(GARBAGE),
    "empty_mesh": scene_case(FACELESS_OBJ, "empty mesh"),
    "nan_vertices": scene_case(NAN_OBJ, "NaN"),
    "unknown_material": config_case(
        set_key("scene.materials", {"default": "itu_unobtainium"}),
        "scene.materials.default", "itu_unobtainium", "itu_concrete",
    ),
    "unknown_top_key": config_case(set_key("sede", 7), "sede", "did you mean 'seed'"),
    "mistyped_nested_key": config_case(
        rename_key("radio.frequency_hz", "frequncy_hz"),
        "frequncy_hz", "did you mean 'frequency_hz'",
    ),
    "unknown_key_in_list_item": config_case(
        set_key("base_stations.0.positon", [0.0, 0.0, 3.0]),
        "positon", "did you mean 'position'",
    ),
    "frequency_zero": config_case(set_key("radio.frequency_hz", 0), "frequency_hz"),
    "frequency_negative": config_case(set_key("radio.frequency_hz", -28.0e9), "frequency_hz"),
    "bandwidth_zero": config_case(set_key("radio.bandwidth_hz", 0), "bandwidth_hz"),
    "bandwidth_negative": config_case(set_key("radio.bandwidth_hz", -1.0e8), "bandwidth_hz"),
    "subcarriers_zero": config_case(set_key("radio.num_subcarriers", 0), "num_subcarriers"),
    "subcarriers_negative": config_case(
        set_key("radio.num_subcarriers", -64), "num_subcarriers"
    ),
    "zero_length_trajectory": config_case(_noop, "waypoints", "zero-length", trajectory=STILL),
    "invalid_yaml": text_case("seed: 1\nscene:\n\tfile: scene.obj\n", "line 3"),
    "config_not_found": missing_config("absent.yaml"),
    "top_level_list": text_case("- seed: 1\n- scene: scene.obj\n", "mapping"),
    "output_parent_is_file": parent_is_file,
}

# Regression cases: user text with rich-markup brackets; misspelt *required* keys.
CASES.update({
    "config_name_with_brackets": missing_config("cfg[v2].yaml"),
    "config_name_with_closing_tag": missing_config("[/oops].yaml"),
    "misspelled_required_top_key": config_case(
        rename_key("seed", "sede"), "sede", "did you mean 'seed'"
    ),
    "misspelled_required_key_in_list_item": config_case(
        rename_key("base_stations.0.position", "positon"), "positon", "did you mean 'position'"
    ),
})

PARAMS = [pytest.param(build, id=name) for name, build in CASES.items()]


@pytest.mark.parametrize("build", PARAMS)
def test_bad_input_is_one_line_exit_2_no_output(tmp_path: Path, build: Builder) -> None:
    """A bad input gives one 'error:' line naming it, exit 2, no traceback, no output."""
    case = build(tmp_path)
    output = tmp_path / case.output
    result = run_twin("simulate", case.config, "-o", case.output, "--quiet", cwd=tmp_path)
    assert_one_line_error(result, case.needles)
    assert_no_output(output)


@pytest.mark.parametrize("name", ["mistyped_nested_key", "missing_scene", "config_not_found"])
def test_bad_input_without_quiet_is_one_line(tmp_path: Path, name: str) -> None:
    """Without --quiet (the default) the error is still exactly one line."""
    case = CASES[name](tmp_path)
    result = run_twin("simulate", case.config, "-o", case.output, cwd=tmp_path)
    assert_one_line_error(result, case.needles)
    assert_no_output(tmp_path / case.output)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="root writes through chmod unless setpriv drops the capability")
def test_unwritable_output_directory(tmp_path: Path) -> None:
    """An output directory without write permission is refused with one line."""
    config = write_yaml(tmp_path, base_config(tmp_path))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_twin("simulate", config, "-o", "locked/run.h5", "-q", cwd=tmp_path,
                          unprivileged=True)
        assert_one_line_error(result, ("locked",))
        assert_no_output(locked / "run.h5")
    finally:
        locked.chmod(0o755)


def test_existing_output_refused_without_overwrite(tmp_path: Path) -> None:
    """An existing output is refused without --overwrite and its bytes stay as they were."""
    config = write_yaml(tmp_path, base_config(tmp_path))
    output = tmp_path / "run.h5"
    output.write_bytes(b"precious bytes from an earlier run\x00\x01")
    result = run_twin("simulate", config, "-o", "run.h5", "-q", cwd=tmp_path)
    assert_one_line_error(result, ("run.h5", "--overwrite"))
    assert output.read_bytes() == b"precious bytes from an earlier run\x00\x01"
    assert temp_leftovers(tmp_path) == []


def test_failed_overwrite_keeps_existing_output(tmp_path: Path) -> None:
    """A run that fails with --overwrite leaves the existing output (an earlier run)
    untouched."""
    config = write_yaml(tmp_path, base_config(tmp_path))
    first = run_twin("simulate", config, "-o", "run.h5", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "scene.obj").write_bytes(NAN_OBJ)
    output = tmp_path / "run.h5"
    before = output.read_bytes()
    result = run_twin("simulate", config, "-o", "run.h5", "--overwrite", "-q", cwd=tmp_path)
    assert_one_line_error(result, ("scene.obj",))
    assert output.read_bytes() == before
    assert temp_leftovers(tmp_path) == []


# --------------------------------------------------------------------- success paths


def test_overwrite_replaces_with_valid_run_file(tmp_path: Path) -> None:
    """--overwrite replaces an existing file with a complete, self-describing run file."""
    cfg = base_config(
        tmp_path, ue_positions=[*UE_POSITIONS, (14.0, 0.0, 1.5)],
        bs_array={"rows": 1, "cols": 4}, ue_array={"rows": 1, "cols": 3},
        radio={"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 16},
        seed=1234,
    )
    cfg["base_stations"].append({**cfg["base_stations"][0], "name": "bs1",
                                 "position": [20.0, 0.0, 3.0]})
    config = write_yaml(tmp_path, cfg)
    output = tmp_path / "run.h5"
    output.touch()  # an empty file holds nothing: --overwrite may replace it
    result = run_twin("simulate", config, "-o", "run.h5", "--overwrite", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert temp_leftovers(tmp_path) == []
    assert h5py.is_hdf5(output)
    with h5py.File(output, "r") as f:
        attrs = f["config"].attrs
        assert {"schema_version", "seed", "scene_sha256", "yaml", "versions"} <= set(attrs)
        assert str(attrs["schema_version"]) == SCHEMA_VERSION
        assert int(attrs["seed"]) == 1234
        sha = hashlib.sha256((tmp_path / "scene.obj").read_bytes()).hexdigest()
        assert str(attrs["scene_sha256"]) == sha
        assert yaml.safe_load(str(attrs["yaml"]))["seed"] == 1234
        assert "sionna-rt" in json.loads(str(attrs["versions"]))
        for group in ("bs", "ue", "channel", "paths"):
            assert isinstance(f[group], h5py.Group), group
        # [T, B, Nr, Nt, K]: 5 snapshots, 2 BSs, 1x3 UE array, 1x4 BS array, 16 subcarriers.
        assert f["channel/cfr"].shape == (5, 2, 3, 4, 16)
        assert f["channel/frequencies"].shape == (16,)
        assert f["ue/position"].shape == (5, 3)
        assert f["bs/position"].shape == (2, 3)


def test_simulate_quiet_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """A successful `twin simulate --quiet` writes the file and prints nothing on stdout."""
    config = write_yaml(tmp_path, base_config(tmp_path))
    result = run_twin("simulate", config, "-o", "out/run.h5", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "tracing snapshots" not in result.stderr
    assert h5py.is_hdf5(tmp_path / "out" / "run.h5")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run.h5"]


def test_simulate_reports_written_file(tmp_path: Path) -> None:
    """Without --quiet, `twin simulate` reports the file it wrote."""
    config = write_yaml(tmp_path, base_config(tmp_path))
    result = run_twin("simulate", config, "-o", "run.h5", cwd=tmp_path)
    both = result.stdout + result.stderr
    assert result.returncode == 0, both
    assert "Traceback" not in both
    assert "wrote run.h5" in both
    assert f"{len(UE_POSITIONS)} snapshots" in both
    assert h5py.is_hdf5(tmp_path / "run.h5")


# --------------------------------------------------------------------- scenes, help


@pytest.fixture(scope="module")
def scenes_wide(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`twin scenes` on a terminal wide enough for every cell."""
    return run_twin("scenes", cwd=tmp_path_factory.mktemp("scenes"), env={"COLUMNS": "400"})


def test_scenes_lists_bundled_and_builtin(scenes_wide: subprocess.CompletedProcess[str]) -> None:
    """`twin scenes` exits 0 and lists the bundled and built-in scenes."""
    assert scenes_wide.returncode == 0, scenes_wide.stdout + scenes_wide.stderr
    for name in ("bundled:office_floor", "bundled:street", "builtin:simple_street_canyon"):
        assert name in scenes_wide.stdout, name


def test_scenes_header_shows_units(scenes_wide: subprocess.CompletedProcess[str]) -> None:
    """The bounding-box columns of `twin scenes` carry their unit [m]."""
    assert "min [m]" in scenes_wide.stdout
    assert "max [m]" in scenes_wide.stdout


def test_scenes_full_names_when_piped(tmp_path: Path) -> None:
    """Piped output (no terminal, default width) still shows full, usable scene names."""
    result = run_twin("scenes", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "…" not in result.stdout
    assert "builtin:simple_street_canyon " in result.stdout


def test_help_lists_commands(tmp_path: Path) -> None:
    """`twin --help` lists the commands scenes, simulate and demo."""
    result = run_twin("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for command in ("scenes", "simulate", "demo"):
        assert command in result.stdout, command


def test_help_shows_units(tmp_path: Path) -> None:
    """`twin --help` keeps the unit in the scenes command's summary."""
    result = run_twin("--help", cwd=tmp_path, env={"COLUMNS": "400"})
    assert "bounding boxes [m]" in result.stdout


# --------------------------------------------------------------------- atomic writes


def test_atomic_path_failure_leaves_nothing(tmp_path: Path) -> None:
    """An exception inside atomic_path leaves neither the target nor a temp file."""
    target = tmp_path / "run.h5"

    class BoomError(RuntimeError):
        pass

    with pytest.raises(BoomError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"half a run file")
        raise BoomError
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_keeps_existing_target(tmp_path: Path) -> None:
    """A failed atomic write leaves an existing target byte for byte."""
    target = tmp_path / "run.h5"
    target.write_bytes(b"old")
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_bytes(b"new but incomplete")
        raise ValueError("mid-run failure")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]


def test_atomic_path_success_leaves_exactly_target(tmp_path: Path) -> None:
    """A successful block leaves exactly the target, with the block's bytes and umask mode."""
    target = tmp_path / "run.h5"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"complete run file")
        assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]
    assert target.read_bytes() == b"complete run file"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
