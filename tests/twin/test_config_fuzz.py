"""Random config mutations thrown at ``twin simulate`` and ``twin dataset`` (hypothesis):
whatever a config holds — wrong types, non-finite or huge numbers, missing keys — the
command exits 0 with a complete output, or 2 with one ``error:`` line and nothing left
behind; never a traceback, and its memory stays under the budget it was given
(docs/GUARANTEES.md).
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import make_config, wall_y, write_obj
from tests.twin.test_cli import temp_leftovers
from tests.twin.test_guarantees import cli
from twin.dataset.store import verify
from twin.runfile import is_run_file

#: The budget the commands get (TWIN_MEMORY_LIMIT) and the growth of this process's
#: resident memory tolerated on top of it while one runs (the interpreter's own slack).
BUDGET = "3G"
MAX_GROWTH_BYTES = 3 * 2**30 + 2**30
HOSTILE: list[Any] = [0, -1, 10**12, 2**63, 1e300, -1e300, math.inf, -math.inf, math.nan,
                      True, False, "text", "", None, [], {}, [1.0, "x"], {"key": 1}]
EXAMPLES = 30
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of a config, containers and leaves."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate(config: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> None:
    node: Any = config
    for part in path[:-1]:
        node = node[part]
    key = path[-1]
    if action == "delete":
        del node[key]
    elif action == "scale" and isinstance(node[key], int | float) and not isinstance(
            node[key], bool):
        node[key] = type(node[key])(node[key] * 3 + 1)
    else:
        node[key] = value


def mutations(base: dict[str, Any]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    paths = sorted(_paths(base), key=str)
    one = st.tuples(st.sampled_from(paths), st.sampled_from(["replace", "delete", "scale"]),
                    st.sampled_from(HOSTILE))
    return st.lists(one, min_size=1, max_size=3)


def mutated(base: dict[str, Any], changes: list[tuple[Any, ...]]) -> dict[str, Any]:
    config = yaml.safe_load(yaml.safe_dump(base))
    for path, action, value in changes:
        try:
            _mutate(config, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or replaced this path
    return config


@contextmanager
def peak_growth() -> Iterator[list[int]]:
    """The largest growth [B] of this process's resident memory while the body runs,
    sampled every 10 ms (``[growth]`` once the body is done)."""
    page = 4096

    def resident() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * page

    start, peak, done = resident(), [0], threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], resident() - start)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], resident() - start)


def check_outcome(result: Any, output: Path, complete: bool, growth: int) -> None:
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how many ran through
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"raised {result.exception!r}")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code in (0, 2), result.stdout + result.stderr
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        assert not output.exists(), f"partial output left at {output}"
    else:
        assert complete, "exit 0 without a complete output"
    assert temp_leftovers(output.parent) == []
    assert growth < MAX_GROWTH_BYTES, f"resident memory grew by {growth / 2**30:.1f} GiB"


#: A small valid run config around a one-wall scene.obj (written by :func:`throw`).
RUN_BASE: dict[str, Any] = make_config(
    "scene.obj", ue_positions=[(4.0, 0.0, 1.5), (6.0, 1.0, 1.5)],
    radio={"frequency_hz": 28e9, "bandwidth_hz": 1e8, "num_subcarriers": 8},
    tracing={"samples_per_src": 10_000, "batch_size": 2})
#: The same scene and radio as a small dataset config with two BSs.
DATASET_BASE: dict[str, Any] = {
    **{key: value for key, value in RUN_BASE.items() if key != "ue"},
    "base_stations": [*RUN_BASE["base_stations"], {**RUN_BASE["base_stations"][0],
                                                    "name": "bs1", "position": [20.0, 0.0, 3.0]}],
    "dataset": {"num_samples": 4, "samples_per_shard": 2,
                "positions": {"kind": "uniform", "box": [[2.0, -5.0], [18.0, 5.0]],
                              "height": 1.5},
                "sounding": {"snr_db": [0.0, 20.0]}, "keep": ["observations", "cfr", "paths"],
                "max_paths": 4},
}


def throw(base: dict[str, Any], changes: list[tuple[Any, ...]], command: str,
          output: str) -> None:
    """``twin COMMAND cfg.yaml -o OUTPUT`` on ``base`` changed by ``changes``, in a fresh
    directory with the scene, and :func:`check_outcome`."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_obj(directory / "scene.obj", wall_y("wall_north", 10.0))
        (directory / "cfg.yaml").write_text(yaml.safe_dump(mutated(base, changes)))
        with peak_growth() as growth:
            result = cli(command, "cfg.yaml", "-o", output, "-q", cwd=directory,
                         env={"TWIN_MEMORY_LIMIT": BUDGET})
        out = directory / output
        complete = (is_run_file(out) if command == "simulate"
                    else (out / "manifest.json").is_file() and verify(out) == [])
        check_outcome(result, out, complete, growth[0])


@pytest.mark.slow
@FUZZ
@given(changes=mutations(RUN_BASE))
def test_simulate_on_random_configs(changes: list[tuple[Any, ...]]) -> None:
    throw(RUN_BASE, changes, "simulate", "run.h5")


@pytest.mark.slow
@FUZZ
@given(changes=mutations(DATASET_BASE))
def test_dataset_on_random_configs(changes: list[tuple[Any, ...]]) -> None:
    throw(DATASET_BASE, changes, "dataset", "data")
