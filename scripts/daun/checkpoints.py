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
* ``paper`` and ``paper-position`` (the paper's setting, UMa).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "daun")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--only", default=",".join(CHECKPOINTS))
    args = parser.parse_args()
    wanted = args.only.split(",")
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
