"""CFR/CIR synthesis: closed forms on hand-made paths, and solver vs solver (Sionna)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from estimators.arrays import subcarrier_frequencies
from tests.conftest import make_config, run_config, wall_y, write_obj
from tests.tolerances import (
    FLOAT32_ABS,
    FLOAT32_REL,
    FLOAT64_REL,
)
from twin.channel import cfr, cir_taps
from twin.paths import PathSet


def hand_made_paths(gains: list[complex], taus: list[float]) -> PathSet:
    """One snapshot, one BS, single antennas, LOS-like paths with given gains/delays."""
    P = len(gains)
    nan = np.full((1, 1, P), np.nan)
    return PathSet(
        valid=np.ones((1, 1, P), bool), tau=np.array(taus, float).reshape(1, 1, P),
        gain=np.array(gains, np.complex64).reshape(1, 1, P, 1, 1),
        aod=np.stack([nan, nan], -1), aoa=np.stack([nan, nan], -1), doppler=nan,
        depth=np.zeros((1, 1, P), np.int16), interaction_types=np.zeros((1, 1, P, 1), np.uint8),
        interaction_points=np.full((1, 1, P, 1, 3), np.nan),
        object_ids=-np.ones((1, 1, P, 1), np.int32), primitive_ids=-np.ones((1, 1, P, 1), np.int64),
        virtual_anchor=np.full((1, 1, P, 3), np.nan), object_names=(),
    )


def test_subcarrier_grid_follows_sionna() -> None:
    from twin.backend import sionna_rt

    rt = sionna_rt()
    for K in (64, 65, 12):
        ours = subcarrier_frequencies(K, K * 30e3)
        theirs = np.asarray(rt.subcarrier_frequencies(K, 30e3))
        np.testing.assert_allclose(ours, theirs, atol=FLOAT32_ABS)


def test_cfr_closed_form_two_paths() -> None:
    gains, taus = [0.5 - 0.2j, 0.1j], [33e-9, 71.5e-9]
    f = subcarrier_frequencies(64, 100e6)
    h = cfr(hand_made_paths(gains, taus), f)[0, 0, 0, 0]
    expected = sum(g * np.exp(-2j * np.pi * f * t) for g, t in zip(gains, taus, strict=True))
    np.testing.assert_allclose(h, expected, rtol=FLOAT32_REL)  # gains are complex64


def test_cir_taps_on_sample_grid_are_deltas() -> None:
    bandwidth = 100e6
    h = cir_taps(hand_made_paths([1.0, -0.5j], [7 / bandwidth, 20 / bandwidth]), bandwidth, 32)
    taps = h[0, 0, 0, 0]
    expected = np.zeros(32, complex)
    expected[7], expected[20] = 1.0, -0.5j
    np.testing.assert_allclose(taps, expected, atol=FLOAT32_ABS)


def test_invalid_paths_contribute_nothing() -> None:
    paths = hand_made_paths([1.0, 2.0], [10e-9, 20e-9])
    paths.valid[0, 0, 1] = False
    paths.tau[0, 0, 1] = np.nan
    f = subcarrier_frequencies(8, 100e6)
    np.testing.assert_allclose(cfr(paths, f)[0, 0, 0, 0], np.exp(-2j * np.pi * f * 10e-9),
                               rtol=FLOAT32_REL)
    assert np.all(np.isfinite(cir_taps(paths, 100e6, 8)))


def test_twin_cfr_matches_sionna_cfr(tmp_path: Path) -> None:
    """Solver vs solver: the twin's CFR equals Sionna's own Paths.cfr (absolute delays)."""
    scene = write_obj(tmp_path / "walls.obj", {**wall_y("north", 10.0), **wall_y("south", -10.0)})
    ue = [[20.0, 2.0, 1.5], [-15.0, 5.0, 2.0]]
    config = make_config(scene, ue_positions=ue, bs_array={"rows": 1, "cols": 8},
                         ue_array={"rows": 1, "cols": 2}, tracing={"max_depth": 2})
    sim = run_config(config, tmp_path)
    drive = sim.run.drive
    raw = sim.tracer.solve(drive.position, drive.velocity, drive.orientation)
    h = raw.cfr(sim.run.frequencies, normalize_delays=False, out_type="numpy")
    assert h.shape == (2, 2, 1, 8, 1, 32)  # [rx, Nr, tx, Nt, time, K]
    sionna = h[:, :, :, :, 0, :].transpose(0, 2, 1, 3, 4)  # [rx, tx, Nr, Nt, K]
    ours = sim.run.cfr
    # Sionna evaluates the carrier phase 2π f_c τ in float32: its error bounds the match.
    tau_max = np.nanmax(sim.run.paths.tau)
    phase_tol = 8 * 2 * np.pi * sim.run.carrier_frequency * tau_max * np.finfo(np.float32).eps
    rel = np.linalg.norm(ours - sionna) / np.linalg.norm(sionna)
    assert rel < phase_tol, f"relative difference {rel:.2e} (float32 bound {phase_tol:.2e})"
    assert np.linalg.norm(ours) > 0


@pytest.mark.parametrize("num_subcarriers", [1, 2, 63])
def test_subcarrier_spacing(num_subcarriers: int) -> None:
    f = subcarrier_frequencies(num_subcarriers, 120e6)
    assert len(f) == num_subcarriers
    if num_subcarriers > 1:
        np.testing.assert_allclose(np.diff(f), 120e6 / num_subcarriers, rtol=FLOAT64_REL)
