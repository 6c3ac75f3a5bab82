"""``twin demo``: the whole suite on the bundled scenes, as ``make demo`` runs it.

Contract: four runs (twin.demo.DEMO_RUNS), every registered estimator on exactly one that
fits it, none skipped; the ones estimated on every snapshot also tracked (``twin
track``); per run an evaluation of raw and tracked (a report with the PNG and HTML maps,
a layer per algorithm); one summary ``report.md`` with every estimator; each file printed
(``label: path``) on stdout and present; the RIS walk is hidden from the AP.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from estimators import ESTIMATORS
from tests.twin.test_cli import run_twin, temp_leftovers
from twin.demo import DEMO_RUNS, DEMO_SUMMARY, check_demo_runs, demo_outputs
from twin.track import SUFFIX


def test_every_estimator_has_exactly_one_demo_run() -> None:
    check_demo_runs(sorted(ESTIMATORS))
    with pytest.raises(RuntimeError, match="without a run \\['new-one'\\]"):
        check_demo_runs([*ESTIMATORS, "new-one"])


def test_demo_runs_every_estimator_and_writes_every_file_it_prints(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_twin("demo", "-o", str(out), cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "skipped" not in result.stderr
    printed = {}
    for line in result.stdout.strip().splitlines():
        label, _, path = line.rpartition(": ")
        printed[label] = Path(path)
    for path in printed.values():
        assert path.is_file() and path.stat().st_size > 0, path
    written = {path for path, _ in demo_outputs(out)}
    assert {p for p in printed.values() if p.parent.name != "report"} <= written
    scored: set[str] = set()
    for run in DEMO_RUNS:
        metrics = json.loads((out / run.key / "report" / "metrics.json").read_text())
        tracked = {name + SUFFIX for name in run.tracked}
        assert set(metrics["algorithms"]) == set(run.algorithms) | tracked, run.key
        scored |= set(metrics["algorithms"]) - tracked
        html = (out / run.key / "report" / "map.html").read_text()
        assert all(name in html for name in [*run.algorithms, *tracked]), run.key
    assert scored == set(ESTIMATORS)
    summary = (out / "report.md").read_text()
    assert DEMO_SUMMARY.recognise(out / "report.md")
    assert all(f"| {name} |" in summary for name in ESTIMATORS)
    with Image.open(out / "office" / "report" / "map.png") as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert rgb.shape == (800, 1280, 3) and rgb.std() > 10.0
    check_ris_walk(out / "ris" / "run.h5")
    assert temp_leftovers(out) == []


def check_ris_walk(run_path: Path) -> None:
    """The RIS walk has its tile and is hidden from the AP (no LOS path at any snapshot)."""
    from twin.runfile import read_run

    run = read_run(run_path)
    assert run.ris is not None and run.fingerprints is not None
    assert not np.any(run.paths.valid[:, 0] & (run.paths.depth[:, 0] == 0))


def test_demo_refuses_to_replace_what_it_did_not_write(tmp_path: Path) -> None:
    """A file of the user's where the demo writes its summary: one line, nothing done."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report.md").write_text("my notes\n")
    result = run_twin("demo", "-o", str(out), cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "report.md" in result.stderr
    assert (out / "report.md").read_text() == "my notes\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
