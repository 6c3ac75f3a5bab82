"""RIS tiles (issue 9): Tang et al.'s closed form, focusing gain, anomalous reflection,
the cascade's composition, with free-space and with ray-traced hops; near-field sub-tiles;
the cascaded paths in ``/paths``; bad input."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from estimators.arrays import SPEED_OF_LIGHT, direction_angles
from tests.tolerances import (
    ANGLE_FLOAT32_ABS,
    DELAY_ABS_S,
    FLOAT32_REL,
    FLOAT64_ABS,
    RIS_CLOSED_FORM_DB,
    RIS_NEAR_FIELD_DB,
    RIS_TRACED_DB,
)
from twin.errors import TwinInputError
from twin.ris import (
    MOUNT_OFFSET_M,
    RisTile,
    cascade_cfr,
    element_gain,
    file_profile,
    focus_profile,
    free_space_tile_hops,
    reflect_profile,
    reradiation_amplitude,
    sub_tile_layout,
    uniform_profile,
)
from twin.scene import TwinWarning

FC = 28e9
WAVELENGTH = SPEED_OF_LIGHT / FC


def tile(rows: int, cols: int, **kwargs: object) -> RisTile:
    return RisTile.checked("ris0", kwargs.get("position", (0.0, 0.0, 0.0)),
                           kwargs.get("orientation", (0.0, 0.0, 0.0)), (rows, cols), 0.5,
                           WAVELENGTH)


def received_power_db(t: RisTile, bs: np.ndarray, ue: np.ndarray,
                      profile: np.ndarray) -> np.ndarray:
    """|H|² [dB] through the tile alone (P_t = 1, isotropic BS and UE), per UE."""
    bs_to_ris, ris_to_ue = free_space_tile_hops(t, bs, ue, FC, np.zeros(1))
    direct = np.zeros((len(ue), 1, 1, 1, 1), dtype=np.complex128)
    h = cascade_cfr(direct, bs_to_ris, ris_to_ue, profile[None],
                    [reradiation_amplitude(t, WAVELENGTH)])
    return 10 * np.log10(np.abs(h[:, 0, 0, 0, 0]) ** 2)


def test_far_field_normal_incidence_matches_tang_closed_form() -> None:
    """Tang et al. eq. (7) in the far field, normal incidence and reflection, uniform
    phases: P_r / P_t = G M² N² d_x d_y λ² A² / (64 π³ d1² d2²)."""
    t = tile(8, 8)
    d1, d2 = 50.0, 30.0
    bs, ue = np.array([[d1, 0.0, 0.0]]), np.array([[d2, 0.0, 0.0]])
    found = received_power_db(t, bs, ue, uniform_profile(t))[0]
    closed = (element_gain() * t.num_elements**2 * t.spacing**2 * WAVELENGTH**2
              / (64 * np.pi**3 * d1**2 * d2**2))
    assert found == pytest.approx(10 * np.log10(closed), abs=RIS_CLOSED_FORM_DB)
    assert element_gain() == 8.0  # Tang's cos³ element: G = 2(q + 1)


def test_focusing_gain_grows_as_the_number_of_elements_squared() -> None:
    bs, ue = np.array([[20.0, 8.0, 3.0]]), np.array([[15.0, -6.0, 1.5]])
    powers = []
    for n in (4, 8, 16):  # 16, 64, 256 elements
        t = tile(n, n)
        powers.append(received_power_db(t, bs, ue, focus_profile(t, bs[0], ue[0],
                                                                 WAVELENGTH))[0])
    gains = np.array(powers) - powers[0]
    np.testing.assert_allclose(gains, 20 * np.log10([1.0, 4.0, 16.0]), atol=RIS_CLOSED_FORM_DB)


def test_anomalous_reflection_peaks_at_the_designed_direction() -> None:
    """A 4 x 16 tile lit from 30° azimuth, designed to send the wave to −10° (the
    specular direction is −30°): over a far-field arc the peak lies within the main
    lobe's measured 3-dB width of −10°."""
    t = tile(4, 16)
    radius = 200.0
    bs = radius * np.array([[np.cos(np.radians(30)), np.sin(np.radians(30)), 0.0]])
    design = np.radians(-10.0)
    profile = reflect_profile(t, bs[0], [np.cos(design), np.sin(design), 0.0], WAVELENGTH)
    azimuth = np.radians(np.arange(-80.0, 80.0, 0.1))
    ue = radius * np.stack([np.cos(azimuth), np.sin(azimuth), np.zeros_like(azimuth)], -1)
    power = received_power_db(t, bs, ue, profile)
    peak = int(np.argmax(power))
    lobe = power >= power[peak] - 3.0
    low, high = peak, peak
    while low > 0 and lobe[low - 1]:
        low -= 1
    while high < len(lobe) - 1 and lobe[high + 1]:
        high += 1
    width = azimuth[high] - azimuth[low]
    assert abs(azimuth[peak] - design) <= width
    specular = int(np.argmin(np.abs(azimuth - np.radians(-30.0))))
    assert power[peak] - power[specular] > 10.0  # the designed beam, not the mirror's


def test_cascade_equals_direct_plus_the_explicit_sum() -> None:
    rng = np.random.default_rng(0)
    T, B, U, S, K, R, E = 3, 2, 2, 3, 4, 2, 5

    def draw(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)

    direct, bs_to_ris, ris_to_ue = draw(T, B, U, S, K), draw(B, R, E, S, K), draw(T, R, U, E, K)
    theta = np.exp(1j * rng.uniform(0, 2 * np.pi, (R, E)))
    kappa = rng.uniform(0.5, 2.0, R)
    expected = direct.copy()
    for t in range(T):
        for b in range(B):
            for r in range(R):
                for e in range(E):
                    expected[t, b] += (kappa[r] * theta[r, e] * ris_to_ue[t, r, :, e, None, :]
                                       * bs_to_ris[b, r, e, None, :, :])
    found = cascade_cfr(direct, bs_to_ris, ris_to_ue, theta, kappa)
    assert np.linalg.norm(found - expected) <= 1e-5 * np.linalg.norm(expected)


def test_bad_tiles_and_profiles(tmp_path: Path) -> None:
    with pytest.raises(TwinInputError, match="ris 'ris0': elements"):
        RisTile.checked("ris0", (0, 0, 0), (0, 0, 0), (0, 16), 0.5, WAVELENGTH)
    with pytest.raises(TwinInputError, match="finite"):
        RisTile.checked("ris0", (0, np.nan, 0), (0, 0, 0), (4, 4), 0.5, WAVELENGTH)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RisTile.checked("ris0", (0, 0, 0), (0, 0, 0), (4, 4), 1.5, WAVELENGTH)
    assert any(issubclass(w.category, TwinWarning) and "grating" in str(w.message)
               for w in caught)
    t = tile(4, 4)
    np.save(tmp_path / "short.npy", np.zeros(15))
    with pytest.raises(TwinInputError, match="15 values, the tile has 16 elements"):
        file_profile(t, tmp_path / "short.npy")
    phases = np.linspace(0, 1, 16)
    np.save(tmp_path / "phases.npy", phases)
    np.testing.assert_allclose(file_profile(t, tmp_path / "phases.npy"), np.exp(1j * phases))
    np.save(tmp_path / "complex.npy", 3 * np.exp(1j * phases))
    np.testing.assert_allclose(file_profile(t, tmp_path / "complex.npy"), np.exp(1j * phases))


def test_tile_geometry_follows_its_pose() -> None:
    t = tile(2, 3, position=(1.0, 2.0, 3.0), orientation=(np.pi / 2, 0.0, 0.0))
    np.testing.assert_allclose(t.normal, [0.0, 1.0, 0.0], atol=1e-12)
    r = t.element_positions()
    assert r.shape == (6, 3)
    np.testing.assert_allclose(r.mean(axis=0), [1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(r[:, 1], 2.0, atol=1e-12)  # in the tile's plane


# ------------------------------------------------------------------ ray-traced hops


def traced_power_db(tmp_path: Path, quads: dict, bs: list[float], ue: list[float],
                    t: RisTile, profile: np.ndarray | None = None,
                    sub_tiles: tuple[int, int] = (1, 1)) -> np.ndarray:
    """|H|² [dB] through the tile alone with both hops ray traced (LOS only, depth 0)
    in a scene of ``quads`` (single-antenna BS; UEs ``ue [3]`` or ``[n, 3]``; uniform
    phases by default; the tile traced as ``sub_tiles``)."""
    from tests.conftest import make_config, write_obj
    from twin.config import ArrayConfig, TracingConfig, parse_config
    from twin.drive import Drive
    from twin.ris import trace_tile_hops
    from twin.scene import load_twin_scene
    from twin.trace import BaseStation

    scene_file = write_obj(tmp_path / "scene.obj", quads)
    config = parse_config(make_config(scene_file), "test")
    scene = load_twin_scene(config.scene, tmp_path, FC)
    position = np.atleast_2d(np.asarray(ue, dtype=np.float64))
    n = len(position)
    drive = Drive(time=np.zeros(n), position=position, velocity=np.zeros((n, 3)),
                  orientation=np.zeros((n, 3)))
    hops = trace_tile_hops(
        scene, t, [BaseStation("bs0", np.array(bs), np.zeros(3))], ArrayConfig(), drive,
        ArrayConfig(), frequency_hz=FC, tracing=TracingConfig(max_depth=0), seed=1,
        sub_tiles=sub_tiles)
    bs_to_ris, ris_to_ue = hops.channels(np.zeros(1), t.num_elements)
    bs_to_ris, ris_to_ue = bs_to_ris[:, None], ris_to_ue[:, None]
    direct = np.zeros((n, 1, 1, 1, 1), dtype=np.complex128)
    theta = uniform_profile(t) if profile is None else profile
    h = cascade_cfr(direct, bs_to_ris, ris_to_ue, theta[None],
                    [reradiation_amplitude(t, WAVELENGTH)])
    power = np.abs(h[:, 0, 0, 0, 0]) ** 2
    with np.errstate(divide="ignore"):
        return 10 * np.log10(power)


FAR_WALL = {"far": ((-300.0, 300.0, -300.0), (600.0, 0.0, 0.0), (0.0, 0.0, 600.0))}


def test_traced_hops_match_tang_closed_form(tmp_path: Path) -> None:
    """The issue's check: a tile in the far field, normal incidence, uniform phases,
    both hops traced by Sionna RT: the closed form within 0.5 dB."""
    t = tile(8, 8)
    d1, d2 = 50.0, 30.0
    found = traced_power_db(tmp_path, FAR_WALL, [d1, 0.0, 0.0], [d2, 0.0, 0.0], t)[0]
    closed = (element_gain() * t.num_elements**2 * t.spacing**2 * WAVELENGTH**2
              / (64 * np.pi**3 * d1**2 * d2**2))
    assert found == pytest.approx(10 * np.log10(closed), abs=RIS_TRACED_DB)


@pytest.mark.parametrize("blocked", ["bs-tile", "tile-ue"])
def test_a_wall_on_either_hop_removes_the_cascade(tmp_path: Path, blocked: str) -> None:
    """BS at 30° and UE at −30° azimuth from a tile facing +x; a wall across one hop
    (LOS only) leaves nothing through the tile; without it the cascade is there."""
    t = tile(4, 4)
    bs = [26.0, 15.0, 0.0]
    ue = [26.0, -15.0, 0.0]
    y = 5.0 if blocked == "bs-tile" else -5.0
    wall = {"wall": ((10.0, y - 4.0, -5.0), (0.0, 8.0, 0.0), (0.0, 0.0, 10.0))}
    clear = traced_power_db(tmp_path, FAR_WALL, bs, ue, t)[0]
    assert np.isfinite(clear)
    assert traced_power_db(tmp_path, {**FAR_WALL, **wall}, bs, ue, t)[0] == -np.inf


def test_traced_focusing_gain_and_anomalous_reflection(tmp_path: Path) -> None:
    """The free-space checks above, with both hops ray traced."""
    bs, ue = [20.0, 8.0, 3.0], [15.0, -6.0, 1.5]
    powers = [traced_power_db(tmp_path, FAR_WALL, bs, ue, tile(n, n),
                              focus_profile(tile(n, n), bs, ue, WAVELENGTH))[0]
              for n in (4, 8, 16)]
    np.testing.assert_allclose(np.array(powers) - powers[0], 20 * np.log10([1.0, 4.0, 16.0]),
                               atol=RIS_TRACED_DB)
    t = tile(4, 16)
    radius = 200.0
    source = radius * np.array([np.cos(np.radians(30)), np.sin(np.radians(30)), 0.0])
    design = np.radians(-10.0)
    profile = reflect_profile(t, source, [np.cos(design), np.sin(design), 0.0], WAVELENGTH)
    azimuth = np.radians(np.arange(-40.0, 20.0, 0.25))
    arc = radius * np.stack([np.cos(azimuth), np.sin(azimuth), np.zeros_like(azimuth)], -1)
    power = traced_power_db(tmp_path, FAR_WALL, list(source), arc, t, profile)
    peak = int(np.argmax(power))
    lobe = np.flatnonzero(power >= power[peak] - 3.0)
    assert abs(azimuth[peak] - design) <= azimuth[lobe.max()] - azimuth[lobe.min()]


def test_sub_tiles_partition_the_tile() -> None:
    """Each sub-tile's elements, in sub-array order, sit where a sub-tile-sized planar
    array centred on the sub-tile puts them; together they are every element once."""
    from estimators.arrays import planar_array_positions, rotation_matrix

    t = tile(4, 6, position=(1.0, 2.0, 3.0), orientation=(0.3, -0.2, 0.1))
    elements, centres = sub_tile_layout(t, (2, 3))
    assert sorted(elements.ravel().tolist()) == list(range(t.num_elements))
    local = planar_array_positions(2, 2, vertical_spacing_m=t.spacing,
                                   horizontal_spacing_m=t.spacing)
    rotated = local @ rotation_matrix(t.orientation).T
    np.testing.assert_allclose(t.element_positions()[elements],
                               centres[:, None, :] + rotated[None], atol=FLOAT64_ABS)
    every, _ = sub_tile_layout(t, (4, 6))
    np.testing.assert_array_equal(every.ravel(), np.arange(t.num_elements))
    with pytest.raises(TwinInputError, match="must divide"):
        sub_tile_layout(t, (3, 3))


def test_near_field_sub_tiles_follow_the_spherical_closed_form(tmp_path: Path) -> None:
    """A 32 x 32 tile (17 cm; far-field distance 11 m) focused on a UE 1 m away. The
    exact per-element (spherical) closed form is what per-sub-tile tracing gives; one
    plane-wave synthetic array for the whole tile misses it by dB."""
    t = tile(32, 32)
    bs, ue = [20.0, 3.0, 1.0], [1.0, -0.3, 0.2]
    profile = focus_profile(t, bs, ue, WAVELENGTH)
    closed = received_power_db(t, np.array(bs), np.array([ue]), profile)[0]
    far = traced_power_db(tmp_path, FAR_WALL, bs, ue, t, profile)[0]
    near = traced_power_db(tmp_path, FAR_WALL, bs, ue, t, profile, sub_tiles=(4, 4))[0]
    assert near == pytest.approx(closed, abs=RIS_NEAR_FIELD_DB)
    assert far < closed - 2.0


# ---------------------------------------------------------------- config and run file


def corner_config(tmp_path: Path, **tile: object) -> dict:
    """BS and UEs on either side of a wall (no direct path, LOS-only tracing); a tile off
    to the side, facing them, focused on the first UE."""
    from tests.conftest import make_config, write_obj

    wall = {"wall": ((-5.0, 0.0, -5.0), (10.0, 0.0, 0.0), (0.0, 0.0, 15.0))}
    scene = write_obj(tmp_path / "corner.obj", {**FAR_WALL, **wall})
    config = make_config(scene, bs_position=(0.0, 10.0, 2.0),
                         ue_positions=[(0.0, -10.0, 1.5), (8.0, -12.0, 1.5)],
                         tracing={"max_depth": 0},
                         radio={"frequency_hz": FC, "bandwidth_hz": 100e6,
                                "num_subcarriers": 4})
    config["ris"] = [{"name": "ris0", "position": [20.0, 0.0, 2.0],
                      "orientation": [float(np.pi), 0.0, 0.0], "elements": [8, 8],
                      "profile": {"kind": "focus", "target": [0.0, -10.0, 1.5]}, **tile}]
    return config


def test_simulate_with_a_tile_writes_the_cascade(tmp_path: Path) -> None:
    """A UE behind a wall gets its power from the tile; /channel/cfr = cfr_direct + the
    cascade; the run file round-trips; another profile is recomputed without tracing."""
    from tests.conftest import run_config
    from twin.ris import recompute_cfr
    from twin.runfile import SCHEMA_VERSION, read_run, write_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)  # "no path to any BS": by design
        run = run_config(corner_config(tmp_path), tmp_path).run
    ris = run.ris
    assert ris is not None and ris.name == ("ris0",)
    assert ris.bs_to_ris.shape == (1, 1, 64, 1, 4) and ris.ris_to_ue.shape == (2, 1, 1, 64, 4)
    assert not np.any(ris.cfr_direct)  # the wall blocks the direct path
    assert np.all(np.abs(run.cfr) > 0)  # the tile reaches both UEs
    np.testing.assert_allclose(run.cfr, recompute_cfr(ris, ris.profile), rtol=1e-5)
    # Focused on UE 0: more power there than at UE 1 through the same tile.
    power = np.mean(np.abs(run.cfr[:, 0, 0, 0]) ** 2, axis=-1)
    assert power[0] > 4 * power[1]
    write_run(tmp_path / "run.h5", run)
    back = read_run(tmp_path / "run.h5")
    assert back.ris is not None
    np.testing.assert_array_equal(back.ris.ris_to_ue, ris.ris_to_ue)
    np.testing.assert_array_equal(back.cfr, run.cfr)
    other = np.exp(1j * np.random.default_rng(0).uniform(0, 2 * np.pi, (1, 64)))
    expected = cascade_cfr(ris.cfr_direct, ris.bs_to_ris, ris.ris_to_ue, other, ris.amplitude)
    np.testing.assert_allclose(recompute_cfr(back.ris, other), expected, rtol=1e-12)
    # The tile's element grid travels with the run (nothing re-reads the config for it).
    assert back.ris.element_grid.tolist() == [[8, 8]]
    old = tmp_path / "old.h5"
    old.write_bytes((tmp_path / "run.h5").read_bytes())
    with h5py.File(old, "r+") as f:
        del f["ris/element_grid"]
        f["config"].attrs["schema_version"] = "1.0"
    current = re.escape(f"schema {SCHEMA_VERSION}")
    with pytest.raises(TwinInputError, match=rf"^[^\n]*schema 1\.0[^\n]*{current}") as info:
        read_run(old)
    assert str(old) in str(info.value)


def test_cascaded_paths_are_in_the_path_truth(tmp_path: Path) -> None:
    """``/paths`` lists every BS → tile → UE pair of traced hop paths: its delay is the
    image method's over both hops, its vertices those of both hops around the tile centre
    (type RIS, object ``ris0``), its AoD the inbound and its AoA the outbound direction;
    and the CFR of all the paths is the run's total CFR (``cfr_direct`` + cascade). By
    default pairs 60 dB below the strongest path are left out of ``/paths`` only."""
    from tests.conftest import run_config, write_obj
    from twin.channel import cfr
    from twin.paths import InteractionType
    from twin.runfile import read_run, write_run
    from twin.scoring import truth_sets

    config = corner_config(tmp_path)
    floor = {"floor": ((-50.0, -50.0, 0.0), (100.0, 0.0, 0.0), (0.0, 100.0, 0.0))}
    wall = {"wall": ((-5.0, 0.0, -5.0), (10.0, 0.0, 0.0), (0.0, 0.0, 15.0))}
    config["scene"]["file"] = str(write_obj(tmp_path / "floor.obj",
                                            {**FAR_WALL, **wall, **floor}))
    config["tracing"]["max_depth"] = 1
    config["base_stations"][0]["array"] = {"rows": 1, "cols": 4}
    pruned = run_config(config, tmp_path).run  # pairs 60 dB below the strongest left out
    config["outputs"] = {"ris_paths_range_db": None}
    run = run_config(config, tmp_path).run
    paths, ris = run.paths, run.ris
    assert ris is not None and paths.object_names[-1] == "ris0"
    np.testing.assert_allclose(cfr(paths, run.frequencies), run.cfr,
                               atol=10 * FLOAT32_REL * np.abs(run.cfr).max())
    assert pruned.paths.valid.sum() < paths.valid.sum()
    np.testing.assert_array_equal(pruned.cfr, run.cfr)
    # Each left-out pair has a mean power under 1e-6 of the strongest path's: its gain on
    # any antenna pair is under 1e-3 sqrt(Nr Nt) times that path's RMS gain.
    strongest = np.sqrt(np.max(np.where(paths.valid, np.mean(np.abs(paths.gain) ** 2,
                                                             axis=(3, 4)), 0.0)))
    dropped = int(paths.valid.sum() - pruned.paths.valid.sum())
    np.testing.assert_allclose(
        cfr(pruned.paths, run.frequencies), run.cfr,
        atol=dropped * 1e-3 * np.sqrt(paths.gain.shape[3] * paths.gain.shape[4]) * strongest
        + 10 * FLOAT32_REL * np.abs(run.cfr).max())

    bs, centre = run.bs_position[0], ris.position[0]
    mounted = centre + MOUNT_OFFSET_M * np.array([-1.0, 0.0, 0.0])  # facing -x
    image = np.array([1.0, 1.0, -1.0])  # through the floor, z = 0
    through = paths.interaction_types == InteractionType.RIS
    on_tile = through.any(axis=-1) & paths.valid
    names = paths.interaction_object_names()
    assert np.all(names[through] == "ris0")
    np.testing.assert_allclose(paths.interaction_points[through],
                               np.broadcast_to(centre, (int(through.sum()), 3)), atol=FLOAT64_ABS)
    for t, ue in enumerate(run.drive.position):
        tau = paths.tau[t, 0][on_tile[t, 0]]
        for source, target in ((bs, ue), (bs * image, ue), (bs, ue * image),
                               (bs * image, ue * image)):
            length = np.linalg.norm(centre - source) + np.linalg.norm(target - centre)
            assert np.min(np.abs(tau - length / SPEED_OF_LIGHT)) < DELAY_ABS_S
        los = np.flatnonzero(on_tile[t, 0] & (paths.depth[t, 0] == 1))
        assert los.size == 1  # LOS on both hops: one vertex, the tile
        p = int(los[0])
        # The angles are those of the traced point, MOUNT_OFFSET_M in front of the tile.
        np.testing.assert_allclose(paths.aod[t, 0, p], direction_angles(mounted - bs),
                                   atol=ANGLE_FLOAT32_ABS)
        np.testing.assert_allclose(paths.aoa[t, 0, p], direction_angles(mounted - ue),
                                   atol=ANGLE_FLOAT32_ABS)
        assert np.all(np.isnan(paths.virtual_anchor[t, 0, p]))
    # The tile is a single-bounce truth point of the maps, its landmark the tile itself.
    assert "ris0" in truth_sets(run)["single_bounce"][0].landmarks
    write_run(tmp_path / "run.h5", run)
    back = read_run(tmp_path / "run.h5")
    assert back.paths.object_names == paths.object_names
    np.testing.assert_array_equal(back.paths.interaction_types, paths.interaction_types)


def test_near_field_tile_in_a_run(tmp_path: Path) -> None:
    """A 64 x 64 tile (far-field distance 44 m) 20 m from the UEs: as one plane-wave array
    it warns; ``near_field: true`` traces 4 x 4 sub-tiles (far-field distance 2.7 m, no
    warning), lists one cascaded path per sub-tile, and still sums to the run's CFR."""
    from tests.conftest import run_config
    from twin.channel import cfr
    from twin.paths import InteractionType

    with pytest.warns(TwinWarning, match="ris 'ris0': 3 BS/UE position.*far-field distance"):
        run_config(corner_config(tmp_path, elements=[64, 64]), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        run = run_config(corner_config(tmp_path, elements=[64, 64], near_field=True),
                         tmp_path).run
    paths = run.paths
    through = paths.interaction_types == InteractionType.RIS
    assert np.all(through.sum(axis=(2, 3)) == 16)  # LOS hops: one path per sub-tile
    assert sorted(set(paths.primitive_ids[through].tolist())) == list(range(16))
    np.testing.assert_allclose(cfr(paths, run.frequencies), run.cfr,
                               atol=10 * FLOAT32_REL * np.abs(run.cfr).max())


@pytest.mark.parametrize("change, needle", [
    ({"elements": [0, 16]}, "elements"),
    ({"sub_tiles": [2, 2]}, "sub_tiles needs near_field"),
    ({"near_field": True, "sub_tiles": [3, 2]}, r"sub_tiles \[3, 2\] must divide elements"),
    ({"profile": {"kind": "focus"}}, "needs target"),
    ({"profile": {"kind": "uniform", "source": "bs9"}}, "bs9"),
    ({"position": [0.0, float("nan"), 0.0]}, "finite"),
])
def test_bad_tile_config_is_one_line(tmp_path: Path, change: dict, needle: str) -> None:
    from twin.config import parse_config

    with pytest.raises(TwinInputError, match=needle) as info:
        parse_config(corner_config(tmp_path, **change), "test")
    assert "\n" not in str(info.value)


def test_a_tile_inside_a_building_warns(tmp_path: Path) -> None:
    from tests.conftest import make_config, run_config
    from twin.scene import BUNDLED_DIR

    config = make_config(BUNDLED_DIR / "street" / "street.xml", bs_position=(0.0, -8.0, 10.0),
                         ue_positions=[(0.0, 4.0, 1.5)], tracing={"max_depth": 0},
                         radio={"frequency_hz": FC, "bandwidth_hz": 100e6,
                                "num_subcarriers": 1})
    config["ris"] = [{"name": "buried", "position": [-12.0, 15.0, 6.0], "elements": [2, 2]}]
    with pytest.warns(TwinWarning, match="ris 'buried'.*inside the closed object"):
        run_config(config, tmp_path)
