"""Load a `twin export deepmimo` folder with the real `deepmimo` package and write what it
makes of it: its own channels and the arrays its loader returned.

Runs in deepmimo's own environment (scripts/setup.sh makes `.venv-deepmimo`: deepmimo
pins an older numpy than the project), not in the project's:

    .venv-deepmimo/bin/python scripts/twin/deepmimo_channels.py SCENARIO_DIR OUT.npz

Only deepmimo and numpy are imported. The channel parameters are the ones the export
stored in params.json["twin"]["channel"] (arrays, rotations, subcarriers). OUT.npz holds,
per BS b: `channel_{b}` [snapshot, ue_ant, bs_ant, subcarrier] (deepmimo's
`compute_channels`), the arrays as loaded (`inter_pos_{b}`, `inter_{b}`, `power_{b}`,
`phase_{b}`, `delay_{b}`, the angles, `rx_pos_{b}`, `tx_pos_{b}`), what deepmimo computes
from them (`los_{b}`, `num_paths_{b}`, `inter_obj_{b}`: its own object of each
interaction point, where the scene has one terrain object), and `deepmimo_version`.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np


def main(scenario: Path, out: Path) -> None:
    import deepmimo as dm

    params = json.loads((scenario / "params.json").read_text())
    twin = params["twin"]
    ch = twin["channel"]
    # DeepMIMO finds a scenario by name in its scenarios folder (the name lower-cased).
    dm.config.set("scenarios_folder", str(scenario.resolve().parent))
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines
        loaded = dm.load(scenario.name, max_paths=int(twin["max_paths"]))
    datasets = loaded.datasets if isinstance(loaded, dm.MacroDataset) else [loaded]
    arrays: dict[str, np.ndarray] = {"deepmimo_version": np.array(dm.__version__)}
    for b, ds in enumerate(datasets):
        channel_params = dm.ChannelParameters(
            freq_domain=ch["freq_domain"], num_paths=ch["num_paths"],
            ofdm={**ch["ofdm"],
                  "selected_subcarriers": np.asarray(ch["ofdm"]["selected_subcarriers"])},
            bs_antenna={**ch["bs_antenna"],
                        "rotation": np.asarray(twin["bs_rotation_deg"][b], dtype=float)},
            ue_antenna={**ch["ue_antenna"],
                        "rotation": np.asarray(ch["ue_antenna"]["rotation"], dtype=float)},
        )
        with contextlib.redirect_stdout(io.StringIO()):
            arrays[f"channel_{b}"] = np.asarray(ds.compute_channels(channel_params))
        for key in ("inter_pos", "inter", "power", "phase", "delay", "aod_az", "aod_el",
                    "aoa_az", "aoa_el", "rx_pos", "tx_pos", "los", "num_paths"):
            arrays[f"{key}_{b}"] = np.asarray(ds[key])
        # deepmimo's own object of each interaction point (nearest triangle of the scene's
        # mesh); it needs exactly one terrain object, which not every scene has.
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                arrays[f"inter_obj_{b}"] = np.asarray(ds["inter_obj"])
        except (IndexError, ValueError) as exc:
            print(f"deepmimo: no inter_obj for BS {b}: {exc}", file=sys.stderr)
        arrays[f"txrx_{b}"] = np.array(json.dumps({k: int(v) for k, v in ds["txrx"].items()}))
    np.savez(out, **arrays)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: deepmimo_channels.py SCENARIO_DIR OUT.npz")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
