"""Statistical TR 38.901 UMa channels (twin.uma): shapes, determinism, array convention,
path loss, LOS states, agreement with Sionna's own channel coefficients, input errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import twin.uma as uma
from estimators.arrays import (
    SPEED_OF_LIGHT,
    planar_array_positions,
    rotation_matrix,
    steering_vector,
)
from tests.tolerances import FLOAT64_ABS, NOISE_SIGMAS
from twin.uma import UmaChannels, los_probability, uma_channels

FC = 30e9
LAM = SPEED_OF_LIGHT / FC
H_BS = 25.0
H_UT = 1.5

# Local tolerances (statistical checks; each with its reason).
BEAM_PEAK_RAD = np.radians(3.0)  # LOS peak of a 16-element λ/2 ULA (beamwidth ~7°)
BEAM_PEAK_FRACTION = 0.9  # LOS (K ~ 9 dB) dominates the beam scan in most samples
PATH_LOSS_MEAN_DB = 1.5  # mean of SF + small-scale fading in dB over 300 links: SF σ 4 dB
PATH_LOSS_SLOPE_DB = 4.0  # residual slope [dB/decade] vs the formula's 22 dB/decade
SIONNA_REL = 1e-9  # float64 Sionna vs numpy, same rays and phases (measured 3e-11: 2πd/λ ~ 1e5 rad)


def ring(
    num: int, distance: np.ndarray, azimuth: np.ndarray, centre: np.ndarray | None = None
) -> np.ndarray:
    """UE positions at horizontal ``distance`` and world ``azimuth`` around ``centre``."""
    c = np.zeros(3) if centre is None else centre
    return np.stack(
        [
            c[0] + distance * np.cos(azimuth),
            c[1] + distance * np.sin(azimuth),
            np.full(num, H_UT),
        ],
        axis=-1,
    )


def call(**overrides: Any) -> UmaChannels:
    rng = np.random.default_rng(0)
    kwargs: dict[str, Any] = {
        "ue_position": ring(6, rng.uniform(30, 300, 6), rng.uniform(-np.pi, np.pi, 6)),
        "bs_position": np.array([[0.0, 0.0, H_BS], [500.0, 0.0, H_BS], [0.0, 500.0, 30.0]]),
        "bs_yaw": np.array([0.0, np.pi, -np.pi / 2]),
        "num_bs_antennas": 8,
        "carrier_frequency": FC,
        "seed": 1,
    }
    kwargs.update(overrides)
    return uma_channels(**kwargs)


def pl_los_db(distance_3d: np.ndarray) -> np.ndarray:
    """UMa LOS PL1 (Table 7.4.1-1); d_BP = 4 h'_BS h'_UT fc/c = 4.8 km at 30 GHz, h_E = 1 m."""
    return 28.0 + 22.0 * np.log10(distance_3d) + 20.0 * np.log10(FC / 1e9)


def pl_nlos_db(distance_3d: np.ndarray) -> np.ndarray:
    """UMa NLOS PL (Table 7.4.1-1): max(PL_LOS, PL'_NLOS)."""
    pl3 = 13.54 + 39.08 * np.log10(distance_3d) + 20.0 * np.log10(FC / 1e9) - 0.6 * (H_UT - 1.5)
    return np.maximum(pl_los_db(distance_3d), pl3)


def normalized_power(res: UmaChannels) -> np.ndarray:
    """|h|² / (10^(-PL/10) 10^(SF/10)) averaged over antennas, ``[sample, bs]``."""
    gain_db = -res.path_loss_db + res.shadow_fading_db
    return np.mean(np.abs(res.h) ** 2, axis=-1) / 10.0 ** (gain_db / 10.0)


def test_shapes_and_dtypes() -> None:
    res = call()
    assert res.h.shape == (6, 3, 8) and res.h.dtype == np.complex128
    for field in (res.los_aoa, res.path_loss_db, res.shadow_fading_db):
        assert field.shape == (6, 3) and field.dtype == np.float64
    assert res.los.shape == (6, 3) and res.los.dtype == np.bool_
    assert np.all(np.isfinite(res.h)) and np.all(np.abs(res.h) > 0)
    assert np.all((res.los_aoa > -np.pi) & (res.los_aoa <= np.pi))
    assert np.all(res.path_loss_db > 60.0)
    with pytest.raises(AttributeError):
        res.h = res.h  # type: ignore[misc]  # frozen


def test_los_aoa_is_local_geometric_azimuth() -> None:
    bs = np.array([[10.0, -20.0, H_BS]])
    yaw = 0.7
    local = np.radians([-50.0, 0.0, 35.0])
    ue = ring(3, np.array([50.0, 100.0, 200.0]), local + yaw, centre=bs[0])
    res = call(ue_position=ue, bs_position=bs, bs_yaw=np.array([yaw]))
    np.testing.assert_allclose(res.los_aoa[:, 0], local, atol=FLOAT64_ABS)


def test_deterministic_and_independent_of_global_rng() -> None:
    import torch
    from sionna.phy import config

    first = call(seed=5)
    sionna_state = config.torch_rng("cpu").get_state().clone()
    torch_state = torch.random.get_rng_state().clone()
    second = call(seed=5)
    # the call reads and changes neither Sionna's nor torch's global generator ...
    assert torch.equal(config.torch_rng("cpu").get_state(), sionna_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    # ... and what other callers leave there does not matter
    torch.rand(17, generator=config.torch_rng("cpu"))
    torch.manual_seed(1234)
    third = call(seed=5)
    for a in (second, third):
        assert np.array_equal(first.h, a.h)
        assert np.array_equal(first.los, a.los)
        assert np.array_equal(first.path_loss_db, a.path_loss_db)
        assert np.array_equal(first.shadow_fading_db, a.shadow_fading_db)
        assert np.array_equal(first.los_aoa, a.los_aoa)
    other = call(seed=6)
    assert not np.allclose(first.h, other.h)
    assert not np.array_equal(first.shadow_fading_db, other.shadow_fading_db)


def test_chunks_are_deterministic_and_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uma, "_CHUNK", 4)
    same = ring(10, np.full(10, 120.0), np.full(10, 0.3))  # 10 UEs at one spot: 3 chunks
    kwargs: dict[str, Any] = {
        "ue_position": same,
        "bs_position": np.array([[0.0, 0.0, H_BS]]),
        "bs_yaw": np.zeros(1),
        "los": "nlos",
    }
    a, b = call(**kwargs), call(**kwargs)
    assert np.array_equal(a.h, b.h)
    # identical positions in different chunks (and within a chunk) get independent draws
    assert len(np.unique(np.round(a.shadow_fading_db[:, 0], 9))) == 10


def test_beam_scan_peaks_at_los_aoa() -> None:
    """Pins the array convention: the LOS ray is where the project's steering vector says."""
    rng = np.random.default_rng(3)
    num, n_ant = 100, 16
    bs = np.array([[0.0, 0.0, H_BS], [600.0, 200.0, H_BS]])
    yaw = np.array([0.3, 2.5])
    b = rng.integers(0, 2, num)
    local = rng.uniform(np.radians(-60), np.radians(60), num)
    ue = ring(num, rng.uniform(50, 300, num), local + yaw[b], centre=np.zeros(3))
    ue[:, :2] += bs[b, :2]
    res = call(
        ue_position=ue, bs_position=bs, bs_yaw=yaw, num_bs_antennas=n_ant, los="los", seed=11
    )
    np.testing.assert_allclose(res.los_aoa[np.arange(num), b], local, atol=FLOAT64_ABS)
    assert res.los.all()

    positions = planar_array_positions(
        1, n_ant, vertical_spacing_m=LAM / 2, horizontal_spacing_m=LAM / 2
    )
    grid = np.radians(np.arange(-90.0, 90.0, 0.25))
    delta = ue - bs[b]
    zenith = np.arctan2(np.hypot(delta[:, 0], delta[:, 1]), delta[:, 2])
    errors = []
    for i in range(num):
        a = steering_vector(positions, grid, zenith[i], LAM)  # local frame, [grid, ant]
        peak = grid[np.argmax(np.abs(a.conj() @ res.h[i, b[i]]))]
        errors.append(abs(peak - local[i]))
    assert np.mean(np.array(errors) < BEAM_PEAK_RAD) >= BEAM_PEAK_FRACTION


def test_power_follows_uma_los_path_loss() -> None:
    rng = np.random.default_rng(4)
    num = 300
    distance = 10.0 ** rng.uniform(np.log10(20.0), np.log10(1000.0), num)
    ue = ring(num, distance, rng.uniform(-np.pi, np.pi, num))
    res = call(
        ue_position=ue, bs_position=np.array([[0.0, 0.0, H_BS]]), bs_yaw=np.zeros(1), los="los"
    )
    d3 = np.hypot(distance, H_BS - H_UT)
    np.testing.assert_allclose(res.path_loss_db[:, 0], pl_los_db(d3), atol=1e-9)
    residual = 10.0 * np.log10(np.mean(np.abs(res.h[:, 0]) ** 2, axis=-1)) + pl_los_db(d3)
    assert abs(np.mean(residual)) < PATH_LOSS_MEAN_DB
    slope = np.polyfit(np.log10(d3), residual, 1)[0]
    assert abs(slope) < PATH_LOSS_SLOPE_DB
    # small-scale fading carries unit mean power: |h|² = 10^((SF - PL)/10) on average
    p = normalized_power(res)
    assert abs(np.mean(p) - 1.0) < NOISE_SIGMAS * np.std(p) / np.sqrt(p.size)


def test_nlos_has_no_los() -> None:
    rng = np.random.default_rng(5)
    num = 200
    distance = rng.uniform(20.0, 400.0, num)
    ue = ring(num, distance, rng.uniform(-np.pi, np.pi, num))
    res = call(
        ue_position=ue, bs_position=np.array([[0.0, 0.0, H_BS]]), bs_yaw=np.zeros(1), los="nlos"
    )
    assert not res.los.any()
    np.testing.assert_allclose(
        res.path_loss_db[:, 0], pl_nlos_db(np.hypot(distance, H_BS - H_UT)), atol=1e-9
    )
    p = normalized_power(res)
    assert abs(np.mean(p) - 1.0) < NOISE_SIGMAS * np.std(p) / np.sqrt(p.size)


def test_auto_los_follows_los_probability() -> None:
    num, distance = 400, 100.0
    ue = ring(num, np.full(num, distance), np.linspace(-np.pi, np.pi, num, endpoint=False))
    res = call(ue_position=ue, bs_position=np.array([[0.0, 0.0, H_BS]]), bs_yaw=np.zeros(1))
    p = float(los_probability(distance, H_UT))
    assert abs(res.los.mean() - p) < NOISE_SIGMAS * np.sqrt(p * (1 - p) / num)


def test_los_probability_matches_sionna() -> None:
    import torch

    from twin.uma import _sionna_classes

    d = np.array([5.0, 18.0, 30.0, 100.0, 400.0, 1500.0])
    h_ut = np.array([1.5, 10.0, 14.0, 18.0, 22.5, 13.0])
    classes = _sionna_classes()
    array = classes["panel"](
        num_rows_per_panel=1, num_cols_per_panel=1, polarization="single",
        polarization_type="V", antenna_pattern="omni", carrier_frequency=FC,
        precision="double", device="cpu",
    )  # fmt: skip
    scenario = classes["scenario"](
        FC, "low", array, array, "uplink", precision="double", device="cpu",
        spec_version=uma.SPEC_VERSION,
    )  # fmt: skip
    scenario._local_rng = torch.Generator().manual_seed(0)
    n = d.size
    ue = np.stack([d, np.zeros(n), h_ut], axis=-1)[:, None, :]
    scenario.set_topology(
        ut_loc=torch.from_numpy(ue),
        bs_loc=torch.tensor([[[0.0, 0.0, H_BS]]], dtype=torch.float64).expand(n, 1, 3),
        ut_orientations=torch.zeros(n, 1, 3, dtype=torch.float64),
        bs_orientations=torch.zeros(n, 1, 3, dtype=torch.float64),
        ut_velocities=torch.zeros(n, 1, 3, dtype=torch.float64),
        in_state=torch.zeros(n, 1, dtype=torch.bool),
        los=True,
    )
    expected = scenario.los_probability.numpy()[:, 0, 0]
    np.testing.assert_allclose(los_probability(d, h_ut), expected, rtol=1e-12)


def test_matches_sionna_channel_coefficients() -> None:
    """Same rays and phases through Sionna's ChannelCoefficientsGenerator with a 1 x N omni
    PanelArray (downlink, summed over paths) = the module's narrowband sum."""
    import torch
    from sionna.phy.channel.tr38901 import ChannelCoefficientsGenerator, Topology

    from twin.uma import _narrowband_channel, _sionna_classes

    num, n_ant = 4, 6
    bs = np.array([[0.0, 0.0, H_BS], [300.0, 100.0, 28.0]])
    yaw = np.array([0.4, -2.0])
    rng = np.random.default_rng(8)
    ue = ring(num, rng.uniform(40, 200, num), rng.uniform(-np.pi, np.pi, num))
    los = torch.from_numpy(np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool)[..., None])
    generator = torch.Generator().manual_seed(2)
    classes = _sionna_classes()

    def panel(cols: int) -> Any:
        return classes["panel"](
            num_rows_per_panel=1, num_cols_per_panel=cols, polarization="single",
            polarization_type="V", antenna_pattern="omni", carrier_frequency=FC,
            precision="double", device="cpu",
        )  # fmt: skip

    bs_array, ut_array = panel(n_ant), panel(1)
    scenario = classes["scenario"](
        FC, "low", ut_array, bs_array, "downlink", precision="double", device="cpu",
        spec_version=uma.SPEC_VERSION,
    )  # fmt: skip
    scenario._local_rng = generator
    lsp_gen, rays_gen = classes["lsp"](scenario), classes["rays"](scenario)
    lsp_gen._local_rng = rays_gen._local_rng = generator
    orient = np.stack([yaw, np.zeros(2), np.zeros(2)], axis=-1)
    scenario.set_topology(
        ut_loc=torch.from_numpy(ue[:, None, :].copy()),
        bs_loc=torch.from_numpy(np.broadcast_to(bs, (num, 2, 3)).copy()),
        ut_orientations=torch.zeros(num, 1, 3, dtype=torch.float64),
        bs_orientations=torch.from_numpy(np.broadcast_to(orient, (num, 2, 3)).copy()),
        ut_velocities=torch.zeros(num, 1, 3, dtype=torch.float64),
        in_state=torch.zeros(num, 1, dtype=torch.bool),
        los=los,
    )
    lsp_gen.topology_updated_callback()
    rays_gen.topology_updated_callback()
    lsp = lsp_gen()
    rays = rays_gen(lsp)
    rays.phases = (torch.rand((*rays.aod.shape, 4), generator=generator, dtype=torch.float64)
                   * 2 - 1) * np.pi  # fmt: skip
    topology = Topology(
        velocities=scenario.ut_velocities,
        moving_end="rx",
        los_aoa=torch.deg2rad(scenario.los_aoa),
        los_aod=torch.deg2rad(scenario.los_aod),
        los_zoa=torch.deg2rad(scenario.los_zoa),
        los_zod=torch.deg2rad(scenario.los_zod),
        los=scenario.los,
        distance_3d=scenario.distance_3d,
        tx_orientations=scenario.bs_orientations,
        rx_orientations=scenario.ut_orientations,
    )
    cir = ChannelCoefficientsGenerator(
        FC, tx_array=bs_array, rx_array=ut_array, subclustering=True,
        precision="double", device="cpu",
    )  # fmt: skip
    h_paths, _ = cir(1, 1.0, lsp.k_factor, rays, topology, scenario.get_param("cDS") * 1e-9)
    gain = 10.0 ** (-lsp.pathloss / 20.0) * torch.sqrt(lsp.sf)  # [sample, bs, 1]
    expected = (h_paths[:, :, 0, :, 0, :, 0].sum(dim=2) * gain).numpy()  # [sample, bs, ant]

    def np0(t: Any) -> np.ndarray:
        return np.asarray(t.numpy()[:, :, 0])

    positions = planar_array_positions(
        1, n_ant, vertical_spacing_m=LAM / 2, horizontal_spacing_m=LAM / 2
    )
    delta = ue[:, None, :] - bs[None]
    ours = _narrowband_channel(
        element_positions=np.einsum("bij,aj->bai", rotation_matrix(orient), positions),
        wavelength=LAM,
        ray_azimuth=np0(rays.aod),
        ray_zenith=np0(rays.zod),
        cluster_power=np0(rays.powers),
        ray_phase=np0(rays.phases[..., 0]),
        los=np0(scenario.los),
        k_factor=np0(lsp.k_factor),
        los_azimuth=np.arctan2(delta[..., 1], delta[..., 0]),
        los_zenith=np.arctan2(np.hypot(delta[..., 0], delta[..., 1]), delta[..., 2]),
        distance_3d=np.linalg.norm(delta, axis=-1),
        amplitude=np0(gain),
    )
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(ours / scale, expected / scale, atol=SIONNA_REL)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"ue_position": np.zeros((4, 2))}, "ue_position"),
        ({"ue_position": np.zeros((0, 3))}, "ue_position"),
        ({"ue_position": np.array([[100.0, 0.0, np.nan]])}, "ue_position"),
        ({"ue_position": np.array([[100.0, 0.0, 0.5]])}, "ue_position"),  # below 1.5 m
        ({"ue_position": np.array([[3.0, 0.0, 1.5]])}, "ue_position"),  # 3 m from BS 0
        ({"ue_position": "here"}, "ue_position"),
        ({"bs_position": np.zeros(3)}, "bs_position"),
        ({"bs_position": np.array([[0.0, 0.0, 1.0]]), "bs_yaw": np.zeros(1)}, "bs_position"),
        ({"bs_yaw": np.zeros(2)}, "bs_yaw"),
        ({"bs_yaw": np.array([0.0, np.inf, 0.0])}, "bs_yaw"),
        ({"num_bs_antennas": 0}, "num_bs_antennas"),
        ({"num_bs_antennas": 4.0}, "num_bs_antennas"),
        ({"num_bs_antennas": True}, "num_bs_antennas"),
        ({"carrier_frequency": 200e9}, "carrier_frequency"),
        ({"carrier_frequency": -1.0}, "carrier_frequency"),
        ({"carrier_frequency": float("nan")}, "carrier_frequency"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"los": "LOS"}, "los"),
    ],
)
def test_bad_input_raises(overrides: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: "):
        call(**overrides)
