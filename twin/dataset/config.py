"""The dataset config: a ``simulate`` config plus a ``dataset:`` section.

.. code-block:: yaml

    seed: 7
    scene: {file: street.xml}                  # not needed with source: uma
    radio: {frequency_hz: 28.0e9, bandwidth_hz: 100.0e6, num_subcarriers: 64}
    base_stations: [...]                       # as simulate's
    ue: {array: {rows: 1, cols: 1}}            # array and orientation; no trajectory
    tracing: {max_depth: 2}
    dataset:
      num_samples: 10000
      samples_per_shard: 500
      source: twin                             # twin (ray-traced) | uma (38.901)
      positions:                               # where the UE is drawn
        kind: uniform                          # uniform | grid | drives
        box: [[-40, -20], [40, 20]]            # or polygon: [[x, y], ...] (>= 3)
        height: 1.5
      sounding: {model: uplink-narrowband, snr_db: [0, 30]}
      keep: [observations, paths]              # observations | cfr | paths

Unknown keys are errors with a "did you mean" hint, as in :mod:`twin.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from twin.config import (
    ArrayConfig,
    BaseStationConfig,
    Float,
    Int,
    PositiveFloat,
    PositiveInt,
    RadioConfig,
    SceneConfig,
    TracingConfig,
    Vec3,
    _Strict,
    check_wavefront,
    parse_model,
    read_yaml,
)

#: The shard layout's version (``manifest.json`` and every shard carry it).
SCHEMA_VERSION = 1

Vec2 = tuple[Float, Float]
Keep = Literal["observations", "cfr", "paths"]
_DEFAULT_KEEP: tuple[Keep, ...] = ("observations", "paths")


class PositionsConfig(_Strict):
    """How UE positions are drawn, inside a ``box`` ``[[x_min, y_min], [x_max, y_max]]``
    or a ``polygon`` (>= 3 vertices) [m], at ``height`` [m] above z = 0.

    ``uniform``: independent uniform draws; ``grid``: the points of a square grid of
    ``spacing_m`` inside the region, in row order (``num_samples`` must not exceed their
    number); ``drives``: random drives of ``samples_per_drive`` samples ``step_m`` apart,
    each from a uniform start, turning at random where the next step would leave the
    region or enter a building. Positions inside a closed scene object are never drawn.
    """

    kind: Literal["uniform", "grid", "drives"] = "uniform"
    box: tuple[Vec2, Vec2] | None = None
    polygon: list[Vec2] | None = None
    height: Float = 1.5
    spacing_m: PositiveFloat | None = None
    step_m: PositiveFloat = 1.0
    samples_per_drive: PositiveInt = 20

    @model_validator(mode="after")
    def _region(self) -> PositionsConfig:
        if (self.box is None) == (self.polygon is None):
            raise ValueError("give exactly one of box, polygon")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError(f"polygon needs >= 3 vertices, got {len(self.polygon)}")
        if self.box is not None and not (self.box[0][0] < self.box[1][0]
                                         and self.box[0][1] < self.box[1][1]):
            raise ValueError(f"box: min {list(self.box[0])} must be below max "
                             f"{list(self.box[1])} in x and y")
        if self.kind == "grid" and self.spacing_m is None:
            raise ValueError("kind grid needs spacing_m")
        return self


class SoundingConfig(_Strict):
    """What the observations are.

    ``uplink-narrowband`` (DAUN, Fan et al. eq. 1): the single-antenna UE sends one
    unit pilot on the centre subcarrier; BS ``m`` receives ``y_m = h_m + n_m`` on its
    elements, ``n ~ CN(0, σ² I)`` with one ``σ²`` for all BSs of a sample, set by the
    sample's SNR: the mean of ``|h|²`` over the BSs' elements over ``σ²``, drawn uniformly
    in dB from ``snr_db`` (a ``[low, high]`` range or one value).
    """

    model: Literal["uplink-narrowband"] = "uplink-narrowband"
    snr_db: tuple[Float, Float] | Float = (0.0, 30.0)

    @property
    def snr_range_db(self) -> tuple[float, float]:
        if isinstance(self.snr_db, tuple):
            return self.snr_db
        return (float(self.snr_db), float(self.snr_db))

    @model_validator(mode="after")
    def _range(self) -> SoundingConfig:
        low, high = self.snr_range_db
        if low > high:
            raise ValueError(f"snr_db: low {low} above high {high}")
        return self


class DatasetSection(_Strict):
    """The ``dataset:`` section (module docstring)."""

    num_samples: PositiveInt
    samples_per_shard: PositiveInt = 500
    source: Literal["twin", "uma"] = "twin"
    positions: PositionsConfig
    sounding: SoundingConfig = Field(default_factory=SoundingConfig)
    keep: list[Keep] = Field(default_factory=lambda: list(_DEFAULT_KEEP), min_length=1)
    #: Paths per (sample, BS) kept in ``paths/`` (the strongest first; padded).
    max_paths: PositiveInt = 16

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.samples_per_shard)

    def shard_size(self, index: int) -> int:
        """Samples in shard ``index``."""
        return min(self.samples_per_shard, self.num_samples - index * self.samples_per_shard)


class DatasetUEConfig(_Strict):
    """The UE's array and orientation; its positions come from ``dataset.positions``."""

    array: ArrayConfig = Field(default_factory=ArrayConfig)
    orientation: Vec3 = (0.0, 0.0, 0.0)


class DatasetConfig(_Strict):
    """A dataset run. Paths in it are relative to the YAML file's directory."""

    seed: Annotated[Int, Field(ge=0, lt=2**32)]
    scene: SceneConfig | None = None
    radio: RadioConfig = Field(default_factory=RadioConfig)
    base_stations: list[BaseStationConfig] = Field(min_length=1)
    ue: DatasetUEConfig = Field(default_factory=DatasetUEConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    dataset: DatasetSection

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        names = [bs.name for bs in self.base_stations]
        if len(set(names)) != len(names):
            raise ValueError(f"base station names must be unique, got {names}")
        if len({bs.array for bs in self.base_stations}) > 1:
            raise ValueError("all base stations must use the same array")
        check_wavefront(self.tracing, len(self.base_stations))
        if self.dataset.source == "twin" and self.scene is None:
            raise ValueError("dataset.source twin needs a scene")
        if self.dataset.source == "uma":
            array = self.base_stations[0].array
            if array.rows != 1 or array.polarization not in ("V", "H"):
                raise ValueError("dataset.source uma needs 1 x N single-polarized BS arrays")
            if "cfr" in self.dataset.keep or "paths" in self.dataset.keep:
                raise ValueError("dataset.source uma keeps observations only (no CFR, "
                                 "no ray-traced paths)")
        if self.ue.array.rows * self.ue.array.cols != 1 or self.ue.array.polarization in (
                "VH", "cross"):
            raise ValueError(
                "dataset.sounding uplink-narrowband needs a single-antenna UE (1 x 1, V or H)")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The resolved config (defaults filled in), JSON-ready."""
        return self.model_dump(mode="json")


def parse_dataset_config(data: Any, source: str = "config") -> DatasetConfig:
    """Validate a mapping into a :class:`DatasetConfig` or raise a one-line TwinInputError."""
    return parse_model(DatasetConfig, data, source)


def load_dataset_config(path: str | Path) -> tuple[DatasetConfig, Path]:
    """Read and validate a dataset YAML config; returns it and its base directory."""
    p = Path(path)
    return parse_dataset_config(read_yaml(p), str(p)), p.resolve().parent


def write_derived_config(source: Path, target: Path, *, seed: int | None = None,
                         **dataset: Any) -> Path:
    """``source`` (a dataset YAML) with ``dataset:`` entries replaced (and ``seed``),
    its scene path made absolute so the copy works from anywhere, written to ``target``
    (benchmarks' cut-down and held-out variants of a config)."""
    import yaml

    data = read_yaml(source)
    if seed is not None:
        data["seed"] = seed
    data["dataset"].update(dataset)
    scene = data.get("scene")
    if scene is not None and not Path(scene["file"]).is_absolute():
        scene["file"] = str((source.parent / scene["file"]).resolve())
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target
