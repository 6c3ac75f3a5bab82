"""The RIS walk on the office floor: where the power comes from, along the walk.

    .venv/bin/python -m scripts.twin.ris_office

Simulates ``scenes/office_floor/ris_drive.yaml`` (the AP in the corridor, the UE walking
along it, through a door and behind the corridor wall; a 96 x 96 tile on the room's west
partition focused on the walk's end point; docs/RIS.md) and writes to ``docs/figures/``:

* ``ris_office_power.png``: per snapshot, the received power (mean ``|H|²`` over the
  subcarriers and BS antennas) of the direct channel (``cfr_direct``), of the cascade
  through the tile (``cfr − cfr_direct``) and of the total, with the snapshots that have
  a LOS path marked; plus, dashed, the total for the tile re-focused on each position
  (:func:`twin.ris.recompute_cfr`, no re-tracing) — what a tile tracking the UE gives;
* ``ris_office_scene.png``: the render of the walk's last position (Sionna's paths, the
  tile and the paths through it, :func:`twin.scene_render.render_scene_png`);
* ``ris_office.csv``: the numbers behind the power plot.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import csv
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[2]

from estimators.arrays import SPEED_OF_LIGHT  # noqa: E402
from twin.config import load_config  # noqa: E402
from twin.ris import RisTile, focus_profile, recompute_cfr  # noqa: E402
from twin.scene import BUNDLED_DIR, TwinWarning  # noqa: E402
from twin.scene_render import render_scene_png  # noqa: E402
from twin.simulate import simulate  # noqa: E402

FIGURES = ROOT / "docs" / "figures"


def power_db(cfr: np.ndarray) -> np.ndarray:
    """``[snapshot]`` mean ``|H|²`` [dB] of ``cfr [snapshot, 1, Nr, Nt, K]``."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.mean(np.abs(cfr[:, 0]) ** 2, axis=(1, 2, 3)))


def main() -> None:
    config, base = load_config(BUNDLED_DIR / "office_floor" / "ris_drive.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        sim = simulate(config, base)
    run = sim.run
    ris = run.ris
    assert ris is not None
    wavelength = SPEED_OF_LIGHT / run.carrier_frequency
    spec = config.ris[0]
    tile = RisTile.checked(spec.name, spec.position, spec.orientation, spec.elements,
                           spec.spacing_wavelengths, wavelength)
    direct = power_db(ris.cfr_direct)
    through = power_db(run.cfr - ris.cfr_direct)
    total = power_db(run.cfr)
    tracking = np.array([
        power_db(recompute_cfr(ris, focus_profile(tile, run.bs_position[0], ue,
                                                  wavelength)[None])[t:t + 1])[0]
        for t, ue in enumerate(run.drive.position)])
    los = np.any(run.paths.valid[:, 0] & (run.paths.depth[:, 0] == 0), axis=1)
    walked = np.concatenate([[0.0], np.cumsum(np.linalg.norm(
        np.diff(run.drive.position, axis=0), axis=1))])

    FIGURES.mkdir(parents=True, exist_ok=True)
    with (FIGURES / "ris_office.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["snapshot", "walked_m", "x_m", "y_m", "los", "direct_db",
                         "through_tile_db", "total_db", "total_tile_tracking_db"])
        for t in range(run.drive.num_snapshots):
            writer.writerow([t, f"{walked[t]:.2f}", *(f"{v:.2f}" for v in
                                                      run.drive.position[t, :2]),
                             int(los[t]), f"{direct[t]:.2f}", f"{through[t]:.2f}",
                             f"{total[t]:.2f}", f"{tracking[t]:.2f}"])
            print(f"{t:3d} {walked[t]:5.1f} m {'LOS ' if los[t] else 'NLOS'} direct "
                  f"{direct[t]:6.1f} dB  tile {through[t]:6.1f} dB  total {total[t]:6.1f} "
                  f"dB  tracking {tracking[t]:6.1f} dB")

    fig, ax = plt.subplots(figsize=(8, 4.2))
    hidden = ~los
    if hidden.any():
        ax.axvspan(walked[np.argmax(hidden)] - 0.35, walked[-1] + 0.35, color="0.92",
                   label="no LOS to the AP")
    ax.plot(walked, direct, "o-", color="tab:blue", label="direct paths (cfr_direct)")
    ax.plot(walked, through, "s-", color="tab:pink", label="through the tile")
    ax.plot(walked, total, "k-", lw=2, label="total (cfr)")
    ax.plot(walked, tracking, "k--", lw=1, label="total, tile re-focused on each position")
    ax.set_xlabel("distance walked [m]")
    ax.set_ylabel("received power |H|² [dB]")
    ax.set_ylim(max(-140.0, float(np.min(through)) - 5), float(np.max(total)) + 5)
    ax.set_title("RIS walk, office floor: 96×96 tile focused on the last position")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURES / "ris_office_power.png", dpi=120)
    render_scene_png(sim, FIGURES / "ris_office_scene.png",
                     snapshots=[run.drive.num_snapshots - 1])
    print(f"wrote {FIGURES / 'ris_office_power.png'}, {FIGURES / 'ris_office_scene.png'}, "
          f"{FIGURES / 'ris_office.csv'}")


if __name__ == "__main__":
    main()
