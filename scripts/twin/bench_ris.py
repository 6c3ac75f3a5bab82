"""RIS cascade assembly vs the two hop traces, side by side in one run; near-field
(per-sub-tile) tracing vs far-field tracing; the path pairs for ``/paths``.

    .venv/bin/python -m scripts.twin.bench_ris [--rows 32] [--cols 32] [--ues 256]
        [--subcarriers 64] [--depth 2] [--sub-tiles 4]

The bundled street, one BS, one ``rows × cols`` tile on a building's wall, ``--ues`` UE
positions along the street, ``--subcarriers`` subcarriers. Times (1) both hops traced
(:func:`twin.ris.trace_tile_hops`: BS → tile, tile → UEs, CFRs included) and (2) the
cascade for one phase profile (:func:`twin.ris.cascade_cfr`), and prints the ratio (the
issue's target: the cascade adds ≤ 1× the hop-trace time). The cascade is timed again
for 10 random profiles (what an optimiser re-evaluating profiles pays per profile). Then
(3) the hops traced as ``--sub-tiles`` × ``--sub-tiles`` sub-tiles (``near_field``), and
(4) the cascade split into path pairs (:func:`twin.ris.tile_pairs`), both against (1).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT, subcarrier_frequencies
from twin.config import ArrayConfig, SceneConfig, TracingConfig
from twin.drive import Drive
from twin.ris import (
    RisTile,
    TileHops,
    cascade_cfr,
    focus_profile,
    reradiation_amplitude,
    tile_pairs,
    trace_tile_hops,
)
from twin.scene import BUNDLED_DIR, load_twin_scene
from twin.trace import BaseStation

FC = 28e9


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--cols", type=int, default=32)
    parser.add_argument("--ues", type=int, default=256)
    parser.add_argument("--subcarriers", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--sub-tiles", type=int, default=4)
    args = parser.parse_args()
    wavelength = SPEED_OF_LIGHT / FC
    scene = load_twin_scene(SceneConfig(file=str(BUNDLED_DIR / "street" / "street.xml")),
                            BUNDLED_DIR / "street", FC)
    # On the north buildings' street face (y = 10), facing -y, 6 m up.
    tile = RisTile.checked("ris0", (-12.0, 9.99, 6.0), (-np.pi / 2, 0.0, 0.0),
                           (args.rows, args.cols), 0.5, wavelength)
    bs = [BaseStation("bs0", np.array([-30.0, -8.0, 10.0]), np.array([0.0, 0.0, 0.0]))]
    x = np.linspace(-35.0, 35.0, args.ues)
    position = np.stack([x, np.full_like(x, 4.0), np.full_like(x, 1.5)], axis=-1)
    drive = Drive(time=np.arange(args.ues) * 0.1, position=position,
                  velocity=np.zeros_like(position), orientation=np.zeros_like(position))
    frequencies = subcarrier_frequencies(args.subcarriers, 100e6)
    tracing = TracingConfig(max_depth=args.depth, batch_size=64)
    def traced(sub_tiles: int) -> tuple[float, TileHops, np.ndarray, np.ndarray]:
        start = time.perf_counter()
        hops = trace_tile_hops(scene, tile, bs, ArrayConfig(), drive, ArrayConfig(),
                               frequency_hz=FC, tracing=tracing, seed=1,
                               sub_tiles=(sub_tiles, sub_tiles))
        inbound, outbound = hops.channels(frequencies, tile.num_elements)
        return time.perf_counter() - start, hops, inbound[:, None], outbound[:, None]

    hops, far_hops, bs_to_ris, ris_to_ue = traced(1)
    kappa = [reradiation_amplitude(tile, wavelength)]
    direct = np.zeros((args.ues, 1, 1, 1, args.subcarriers), dtype=np.complex128)
    profile = focus_profile(tile, bs[0].position, position[args.ues // 2], wavelength)[None]
    start = time.perf_counter()
    total = cascade_cfr(direct, bs_to_ris, ris_to_ue, profile, kappa)
    cascade = time.perf_counter() - start
    reached = np.mean(np.any(np.abs(total) > 0, axis=(1, 2, 3, 4)))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(10):
        random = np.exp(1j * rng.uniform(0, 2 * np.pi, (1, tile.num_elements)))
        cascade_cfr(direct, bs_to_ris, ris_to_ue, random, kappa)
    per_profile = (time.perf_counter() - start) / 10
    print(f"{args.rows}x{args.cols} tile ({tile.num_elements} elements), {args.ues} UEs, "
          f"{args.subcarriers} subcarriers, depth {args.depth}, {os.cpu_count()} cores; "
          f"BS-tile links with a path: {int(np.sum(np.any(bs_to_ris != 0, axis=(2, 3, 4))))}, UEs "
          f"reached through the tile: {reached:.0%}")
    print(f"  hop traces (BS -> tile, tile -> UEs, CFRs): {hops:8.2f} s")
    print(f"  cascade, one profile:                       {cascade:8.3f} s "
          f"({cascade / hops:.3f}x the hop traces)")
    print(f"  cascade, per profile over 10 random ones:   {per_profile:8.3f} s")
    near, near_hops, near_in, near_out = traced(args.sub_tiles)
    near_total = cascade_cfr(direct, near_in, near_out, profile, kappa)
    gap = np.linalg.norm(near_total - total) / np.linalg.norm(total)
    print(f"  hop traces as {args.sub_tiles}x{args.sub_tiles} sub-tiles (near field):   "
          f"{near:8.2f} s ({near / hops:.2f}x the far-field traces; cascade differs by "
          f"{gap:.1e} relative)")
    split = f"{args.sub_tiles}x{args.sub_tiles} sub-tiles"
    for label, h in (("far field", far_hops), (split, near_hops)):
        start = time.perf_counter()
        pairs = tile_pairs(h, kappa[0] * profile[0])
        took = time.perf_counter() - start
        print(f"  path pairs, {label + ':':<24}        {took:8.3f} s "
              f"({took / hops:.3f}x the far-field traces; {pairs.gain.shape[0]} pairs)")


if __name__ == "__main__":
    main()
