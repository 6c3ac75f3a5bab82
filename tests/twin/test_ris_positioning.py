"""Twin radio maps for RIS-aided fingerprint positioning (issue 10): block centres traced
with the run, written and read back, turned into the estimators' radio map for the
tiles' profiles; ``twin estimate -a ris-cd,ris-rss`` on a drive in the office with a
tile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import assert_stored_bound
from tests.tolerances import FLOAT32_REL, FLOAT64_ABS, STORED_BOUND_RIS_CD_M
from twin.errors import TwinInputError
from twin.scene import BUNDLED_DIR


def office_config(**fingerprints: Any) -> dict[str, Any]:
    """The RIS walk's AP and tile position (a 16 x 16 far-field tile), a 2 x 2 m radio
    map of 1 m blocks behind the corridor wall, two UEs on block centres; depth 1."""
    config: dict[str, Any] = yaml.safe_load(
        (BUNDLED_DIR / "office_floor" / "ris_positioning.yaml").read_text())
    config["scene"]["file"] = str(BUNDLED_DIR / "office_floor" / "office_floor.xml")
    config["radio"]["num_subcarriers"] = 8
    config["tracing"] = {"max_depth": 1}
    config["ris"][0].update(elements=[16, 16], near_field=False)
    del config["ris"][0]["sub_tiles"]
    config["ue"].pop("trajectory")
    config["ue"]["positions"] = [[13.5, 2.5, 1.2], [14.5, 3.5, 1.2]]
    config["fingerprints"] = {"area": [[13.0, 2.0], [15.0, 4.0]], "block_size": 1.0,
                              "height": 1.2, **fingerprints}
    return config


def test_radio_map_is_traced_with_the_run(tmp_path: Path) -> None:
    """The map's blocks are traced like the drive: a UE standing on a block centre has
    that block's channel; the map for the configured profile is the direct channel plus
    the cascade; it round-trips through the run file."""
    from tests.conftest import run_config
    from twin.ris_positioning import fingerprint_map, mrt_precoder
    from twin.runfile import read_run, write_run

    run = run_config(office_config(), tmp_path).run
    fp = run.fingerprints
    assert fp is not None and run.ris is not None
    np.testing.assert_allclose(fp.block_positions[:, :2],
                               [[13.5, 2.5], [14.5, 2.5], [13.5, 3.5], [14.5, 3.5]],
                               atol=FLOAT64_ABS)
    radio_map = fingerprint_map(run)
    assert radio_map is not None
    scale = np.abs(run.cfr).max()
    np.testing.assert_allclose(radio_map.cfr[[0, 3]], run.cfr, atol=10 * FLOAT32_REL * scale)
    assert np.abs(radio_map.cfr - fp.cfr_direct).max() > 0  # the tile adds to the map
    f = mrt_precoder(run)  # towards the tile: no unit-norm beam puts more power on it
    assert np.linalg.norm(f) == pytest.approx(1.0, abs=FLOAT64_ABS)
    hop = run.ris.bs_to_ris[0, 0].astype(np.complex128)  # [element, bs_ant, subcarrier]
    draws = np.random.default_rng(0).standard_normal((100, f.size, 2)) @ [1, 1j]
    draws /= np.linalg.norm(draws, axis=1, keepdims=True)
    on_tile = np.sum(np.abs(np.einsum("esk,ds->dek", hop, np.vstack([f, draws]))) ** 2,
                     axis=(1, 2))
    assert on_tile[0] >= on_tile[1:].max()
    write_run(tmp_path / "run.h5", run)
    back = read_run(tmp_path / "run.h5")
    assert back.fingerprints is not None and back.fingerprints.ris_to_ue is not None
    np.testing.assert_array_equal(back.fingerprints.cfr_direct, fp.cfr_direct)
    np.testing.assert_array_equal(back.fingerprints.block_size, [1.0, 1.0])


def test_twin_estimate_ris_cd_and_ris_rss_on_an_office_drive(tmp_path: Path) -> None:
    """The CLI end to end: at a high SNR, UEs on block centres are found on their blocks
    by ``ris-cd``; ``ris-rss`` runs beside it; a run without a radio map is one line."""
    from tests.twin.test_cli import run_twin
    from twin.estimatefile import read_estimates

    config_path = tmp_path / "positioning.yaml"
    config_path.write_text(yaml.safe_dump(office_config()))
    sim = run_twin("simulate", str(config_path), "-o", str(tmp_path / "run.h5"), cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr[-2000:]
    est = run_twin("estimate", str(tmp_path / "run.h5"), "-a", "ris-cd,ris-rss", "-o",
                   str(tmp_path / "est.h5"), "--snr-db", "40", cwd=tmp_path)
    assert est.returncode == 0, est.stderr[-2000:]
    estimates = read_estimates(tmp_path / "est.h5").estimates
    assert set(estimates) == {"ris-cd", "ris-rss"}
    assert all(e.converged.all() for e in estimates.values())
    np.testing.assert_allclose(estimates["ris-cd"].ue_position[:, :2],
                               [[13.5, 2.5], [14.5, 3.5]], atol=FLOAT64_ABS)
    est_file = read_estimates(tmp_path / "est.h5")
    for name in estimates:  # the map's bounds at 40 dB, both users
        bound = assert_stored_bound(est_file, name, [True, True])
        assert np.all(bound.position_m < STORED_BOUND_RIS_CD_M), bound.position_m

    plain = office_config()
    del plain["fingerprints"]
    config_path.write_text(yaml.safe_dump(plain))
    assert run_twin("simulate", str(config_path), "-o", str(tmp_path / "plain.h5"),
                    cwd=tmp_path).returncode == 0
    refused = run_twin("estimate", str(tmp_path / "plain.h5"), "-a", "ris-cd", "-o",
                       str(tmp_path / "none.h5"), "--snr-db", "40", cwd=tmp_path)
    assert refused.returncode != 0 and "radio map" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none.h5").exists()


def test_bad_radio_map_config_is_one_line() -> None:
    from twin.config import parse_config

    config = office_config(area=[[15.0, 2.0], [13.0, 4.0]])
    with pytest.raises(TwinInputError, match="area") as info:
        parse_config(config, "test")
    assert "\n" not in str(info.value)


def test_design_matrices_are_the_map_for_any_group_phases(tmp_path: Path) -> None:
    """Sang et al.'s ``h_i = A_i [φ; 1]`` on twin fingerprints: for random group phases,
    ``A`` times them is the radio map of the re-phased tile after the fixed precoder; the
    groups are the tile's equal rectangles."""
    import dataclasses

    from tests.conftest import run_config
    from twin.ris import element_groups
    from twin.ris_positioning import design_matrices, fingerprint_map, grouped_profile, mrt_precoder

    group = element_groups(4, 6, (2, 3))
    rows, cols = np.arange(24) % 4, np.arange(24) // 4  # column by column
    np.testing.assert_array_equal(group, (rows // 2) + 2 * (cols // 2))
    run = run_config(office_config(), tmp_path).run
    base = fingerprint_map(run)
    assert base is not None and run.ris is not None
    f = mrt_precoder(run)
    A, groups = design_matrices(run, f, groups=(2, 2))
    assert A.shape == (4, 8, 5) and np.bincount(groups).tolist() == [64] * 4
    phases = np.exp(2j * np.pi * np.random.default_rng(3).random(4))
    profile = grouped_profile(run, phases, groups=(2, 2))
    np.testing.assert_allclose(np.abs(profile), np.abs(run.ris.profile), atol=FLOAT64_ABS)
    variant = fingerprint_map(dataclasses.replace(
        run, ris=dataclasses.replace(run.ris, profile=profile)))
    assert variant is not None
    expected = np.einsum("isk,s->ik", variant.cfr[:, 0, 0], f)
    np.testing.assert_allclose(A @ np.append(phases, 1.0), expected,
                               atol=10 * FLOAT32_REL * np.abs(expected).max())
    assert np.abs(A[..., :4]).max() > 0 and np.abs(expected).max() > 0
