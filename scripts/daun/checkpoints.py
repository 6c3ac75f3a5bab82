"""DAUN's datasets and the checkpoints shipped in ``assets/daun/``, from scratch.

    .venv/bin/python -m scripts.daun.checkpoints [--data data/daun] [--layers 10]
        [--only street,paper,...]

Datasets (``twin dataset``, made once, kept in ``--data``):

* ``street-twin``: ``configs/datasets/street_daun.yaml`` (ray-traced street, 10 000);
* ``street-uma``: ``configs/datasets/street_uma.yaml`` (the street's BSs, UMa channels);
* ``paper-uma``: ``configs/datasets/daun_uma.yaml`` (the paper's setting, UMa);
* ``*-test``: 1000 held-out samples of each, the same config with ``seed + 1000``
  (the figures' test sets: ``scripts/daun/figures.py``).

Checkpoints (``twin train daun``, seed 0, the paper's recipe: 700 samples per new layer,
batches of 7, 200 validation samples):

* ``street`` (the estimators' default; twin, eq. 18's loss), ``street-position`` (twin,
  the supervised position loss), ``street-uma`` (UMa on the street's geometry);
* ``paper`` and ``paper-position`` (the paper's setting, UMa);
* ``paper-small``: for ``DaunScenario.small()`` (the conformance test's geometry: the
  paper's BSs with 8-element ULAs), trained on its eq. (1) batches, 5 layers, 140
  samples per new layer (small: a fixture, not a result).

Every checkpoint records the geometry it was trained for (``geometry``, what DAUN checks
a run against). ``--regeometry`` re-saves the shipped ones with their geometry completed
(the arrays' element positions, from their dataset configs), parameters unchanged.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import yaml

from twin.dataset.config import write_derived_config
from twin.dataset.engine import make_dataset
from twin.train import train_daun_on_dataset

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"street-twin": "street_daun.yaml", "street-uma": "street_uma.yaml",
           "paper-uma": "daun_uma.yaml"}
#: checkpoint name -> (dataset, loss)
CHECKPOINTS = {"street": ("street-twin", "residual"),
               "street-position": ("street-twin", "position"),
               "street-uma": ("street-uma", "residual"),
               "paper": ("paper-uma", "residual"),
               "paper-position": ("paper-uma", "position")}
TEST_SAMPLES, TEST_SEED_OFFSET = 1000, 1000


def ensure_dataset(name: str, data: Path) -> None:
    source = ROOT / "configs" / "datasets" / CONFIGS[name.removesuffix("-test")]
    out = data / name
    if (out / "manifest.json").is_file():
        manifest = yaml.safe_load((out / "manifest.json").read_text())
        if manifest["complete"]:
            return
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # Held out: seed + TEST_SEED_OFFSET, TEST_SAMPLES samples.
        config = write_derived_config(
            source, Path(tmp) / "test.yaml",
            seed=int(yaml.safe_load(source.read_text())["seed"]) + TEST_SEED_OFFSET,
            num_samples=TEST_SAMPLES, samples_per_shard=250) if name.endswith(
            "-test") else source
        make_dataset(config, out, engine="local", workers=1, resume=out.exists())
    print(f"{name}: made in {time.perf_counter() - start:.0f} s", flush=True)


def train_paper_small(output: Path) -> None:
    """``paper-small``: DAUN for ``DaunScenario.small()`` on its eq. (1) batches."""
    import numpy as np

    from estimators.daun.admm import train_daun
    from estimators.daun.checkpoint import observation_geometry
    from estimators.daun.scenario import small
    from twin.train import write_checkpoint

    scenario = small()
    rng = np.random.default_rng(0)
    snr = rng.uniform(-10.0, 30.0, 1000)
    y, p = scenario.batch(snr, rng)
    parameters, log = train_daun(scenario.problem(), (y[:-100], snr[:-100], p[:-100]),
                                 (y[-100:], snr[-100:], p[-100:]), num_layers=5,
                                 samples_per_layer=140, rng=np.random.default_rng(0))
    obs, _ = scenario.observation(1, np.random.default_rng(0), 10.0)
    setting = {"area": [list(c) for c in scenario.area],
               "grid_shape": list(scenario.grid_shape), "ue_height": scenario.height,
               "num_angles": scenario.num_angles}
    write_checkpoint(output, parameters, log, setting, observation_geometry(obs),
                     {"seed": 0, "num_train": 900, "num_validation": 100,
                      "samples_per_layer": 140, "dataset": "DaunScenario.small().batch"})
    print(f"paper-small: trained in {log.seconds:.0f} s, epochs {log.epochs}", flush=True)


def regeometry() -> None:
    """Add the arrays' element positions to the shipped checkpoints' ``geometry`` (from
    their dataset configs), parameters and everything else unchanged."""
    import io

    import torch

    from estimators.arrays import SPEED_OF_LIGHT
    from twin.dataset.config import parse_dataset_config
    from twin.outputs import write_bytes_atomic
    from twin.simulate import array_geometry

    for name, (dataset, _) in CHECKPOINTS.items():
        path = ROOT / "assets" / "daun" / f"{name}.pt"
        data = torch.load(path, map_location="cpu", weights_only=True)
        source = ROOT / "configs" / "datasets" / CONFIGS[dataset]
        config = parse_dataset_config(yaml.safe_load(source.read_text()), str(source))
        array = array_geometry(config.base_stations[0].array,
                               SPEED_OF_LIGHT / config.radio.frequency_hz)
        assert data["geometry"]["bs_array"] == [array.rows, array.cols], name
        data["geometry"]["element_positions"] = array.element_positions.tolist()
        buffer = io.BytesIO()
        torch.save(data, buffer)
        write_bytes_atomic(path, buffer.getvalue())
        print(f"{name}: geometry completed ({array.rows}x{array.cols})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "daun")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--only", default=",".join([*CHECKPOINTS, "paper-small"]))
    parser.add_argument("--regeometry", action="store_true",
                        help="only complete the shipped checkpoints' recorded geometry")
    args = parser.parse_args()
    if args.regeometry:
        regeometry()
        return
    wanted = args.only.split(",")
    if "paper-small" in wanted:
        wanted.remove("paper-small")
        train_paper_small(ROOT / "assets" / "daun" / "paper-small.pt")
    for name in sorted({CHECKPOINTS[c][0] for c in wanted}):
        ensure_dataset(name, args.data)
        ensure_dataset(name + "-test", args.data)
    for checkpoint in wanted:
        dataset, loss = CHECKPOINTS[checkpoint]
        output = ROOT / "assets" / "daun" / f"{checkpoint}.pt"
        def report(layer: int, epoch: int, value: float, name: str = checkpoint) -> None:
            print(f"  {name}: layer {layer} epoch {epoch}: validation {value:.4g}",
                  flush=True)

        result = train_daun_on_dataset(args.data / dataset, output, num_layers=args.layers,
                                       loss=loss, seed=0,  # type: ignore[arg-type]
                                       on_epoch=report)
        log = result["training"]
        print(f"{checkpoint}: {args.layers} layers on {dataset} ({loss}), epochs "
              f"{log['epochs']}, validation {log['validation_loss'][-1]:.4g}, "
              f"{log['seconds']:.0f} s -> {output.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
