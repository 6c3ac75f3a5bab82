"""Run configuration: YAML validated strictly with pydantic.

Unknown keys are errors with a "did you mean" hint; every value is checked at
the edge so that the simulator itself never sees a malformed config.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from twin.errors import TwinInputError
from twin.outputs import regular_file

# Chosen by measurement (docs/BENCHMARKS.md, tests/twin/test_sampling.py): on every
# bundled scene 1e5 samples find >= 99% of the paths that 1e7 find, ~10x faster than
# 1e6 and within CI memory in Sionna's deterministic mode (which grows with samples).
DEFAULT_SAMPLES_PER_SRC = 100_000

#: Sionna's wavefront is 32-bit: samples per source times sources stays below this.
MAX_WAVEFRONT = 2**32 - 1
#: [B] a YAML config at most (positions in bulk go in ``ue.positions_csv``).
MAX_CONFIG_BYTES = 64 * 2**20
#: Nodes of a YAML config once its aliases are expanded, at most.
MAX_CONFIG_NODES = 2_000_000


def _number(value: Any) -> Any:
    # YAML's true/false would otherwise be read as 1/0 where a number belongs.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


def _integer(value: Any) -> Any:
    value = _number(value)
    if isinstance(value, str):  # YAML 1.1 reads 1e6 (no dot) as text
        try:
            number = float(value)
        except ValueError:
            return value
        if number.is_integer():
            return int(number)
    return value


#: The config's number types: finite (every model sets ``allow_inf_nan=False``), never a
#: boolean; an integer may be written ``1e6``.
Float = Annotated[float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_integer)]
Vec3 = tuple[Float, Float, Float]
PositiveFloat = Annotated[Float, Field(gt=0)]
PositiveInt = Annotated[Int, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MaterialsConfig(_Strict):
    """Radio materials: ``default`` for meshes without one, ``overrides`` by name glob."""

    default: str = "itu_concrete"
    overrides: dict[str, str] = Field(default_factory=dict)


class SceneConfig(_Strict):
    """Scene source: ``builtin:NAME``, a Mitsuba XML, or any mesh trimesh reads."""

    file: str
    unit_scale: PositiveFloat = 1.0
    up_axis: Literal["z", "y"] = "z"
    materials: MaterialsConfig = Field(default_factory=MaterialsConfig)


class RadioConfig(_Strict):
    frequency_hz: PositiveFloat = 28.0e9
    bandwidth_hz: PositiveFloat = 100.0e6
    num_subcarriers: PositiveInt = 64


class ArrayConfig(_Strict):
    """Planar array: ``rows`` along local z, ``cols`` along local y, boresight +x."""

    rows: PositiveInt = 1
    cols: PositiveInt = 1
    spacing_wavelengths: PositiveFloat = 0.5
    pattern: Literal["iso", "dipole", "hw_dipole", "tr38901"] = "iso"
    polarization: Literal["V", "H", "VH", "cross"] = "V"


class BaseStationConfig(_Strict):
    name: str
    position: Vec3
    orientation: Vec3 = (0.0, 0.0, 0.0)
    array: ArrayConfig = Field(default_factory=ArrayConfig)


class TrajectoryConfig(_Strict):
    """Piecewise-linear drive through ``waypoints`` at constant speed."""

    waypoints: list[Vec3] = Field(min_length=2)
    speed_mps: PositiveFloat
    sample_period_s: PositiveFloat


class UEConfig(_Strict):
    """The UE: one of ``trajectory``, ``positions``, ``positions_latlon`` (latitude [°],
    longitude [°], height above the ground [m]; a scene of ``twin scene osm``) or
    ``positions_csv``."""

    array: ArrayConfig = Field(default_factory=ArrayConfig)
    orientation: Vec3 = (0.0, 0.0, 0.0)
    trajectory: TrajectoryConfig | None = None
    positions: list[Vec3] | None = Field(default=None, min_length=1)
    positions_latlon: list[Vec3] | None = Field(default=None, min_length=1)
    positions_csv: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> UEConfig:
        sources = ("trajectory", "positions", "positions_csv", "positions_latlon")
        given = [k for k in sources if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(sources)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class TracingConfig(_Strict):
    """Sionna RT ``PathSolver`` settings; ``batch_size`` receivers are traced per call."""

    max_depth: Annotated[Int, Field(ge=0, le=10)] = 3
    samples_per_src: Annotated[Int, Field(gt=0, le=MAX_WAVEFRONT)] = DEFAULT_SAMPLES_PER_SRC
    max_num_paths_per_src: Annotated[Int, Field(gt=0, le=MAX_WAVEFRONT)] = 1_000_000
    los: bool = True
    specular_reflection: bool = True
    diffuse_reflection: bool = False
    refraction: bool = True
    diffraction: bool = False
    batch_size: PositiveInt = 64
    # Sionna's deterministic candidate generator: bit-identical runs, but its memory
    # grows with samples_per_src x batch_size (~8 GB at 1e6 x 64); False uses ~0.5 GB
    # and finds the same paths, whose float values may differ in the last bits.
    deterministic: bool = True


class OutputsConfig(_Strict):
    """Optional outputs: ``cir`` writes sinc-sampled taps next to the CFR.
    ``ris_paths_range_db``: ``/paths`` leaves out the cascaded path pairs of RIS tiles more
    than this below the strongest path of their snapshot and BS (``null``: every pair;
    ``/channel/cfr`` always has them all)."""

    cir: bool = False
    cir_num_taps: PositiveInt | None = None
    ris_paths_range_db: PositiveFloat | None = 60.0


class RisProfileConfig(_Strict):
    """A tile's phase profile (docs/RIS.md): ``uniform``; ``reflect`` the wave of BS
    ``source`` (default: the first BS) towards ``azimuth``/``zenith`` [rad]; ``focus``
    it on ``target`` [m]; or ``file``, a ``.npy`` of complex values or phases [rad]."""

    kind: Literal["uniform", "reflect", "focus", "file"] = "uniform"
    source: str | None = None
    azimuth: Float | None = None
    zenith: Float = 1.5707963267948966
    target: Vec3 | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> RisProfileConfig:
        needs = {"reflect": ("azimuth", self.azimuth), "focus": ("target", self.target),
                 "file": ("file", self.file)}
        if self.kind in needs and needs[self.kind][1] is None:
            raise ValueError(f"profile kind {self.kind} needs {needs[self.kind][0]}")
        return self


class RisConfig(_Strict):
    """A RIS tile: ``elements`` ``[rows, cols]`` passive elements ``spacing_wavelengths``
    apart, centred at ``position`` [m], normal = local +x after ``orientation`` (yaw,
    pitch, roll) [rad]; reflection amplitude ``amplitude`` (Tang et al.'s A).
    ``near_field: true`` traces the tile as ``sub_tiles`` ``[rows, cols]`` sub-tiles (they
    must divide ``elements``; ``elements`` itself traces every element; default: the
    largest divisors up to 4)."""

    name: str
    position: Vec3
    orientation: Vec3 = (0.0, 0.0, 0.0)
    elements: tuple[PositiveInt, PositiveInt]
    spacing_wavelengths: PositiveFloat = 0.5
    amplitude: Annotated[Float, Field(gt=0, le=1)] = 1.0
    profile: RisProfileConfig = Field(default_factory=RisProfileConfig)
    near_field: bool = False
    sub_tiles: tuple[PositiveInt, PositiveInt] | None = None

    @model_validator(mode="after")
    def _sub_tiles(self) -> RisConfig:
        if self.sub_tiles is not None:
            if not self.near_field:
                raise ValueError("sub_tiles needs near_field: true")
            if any(e % s for e, s in zip(self.elements, self.sub_tiles, strict=True)):
                raise ValueError(f"sub_tiles {list(self.sub_tiles)} must divide elements "
                                 f"{list(self.elements)}")
        return self

    @property
    def traced_sub_tiles(self) -> tuple[int, int]:
        """The sub-tiles the hops are traced for: ``(1, 1)`` in the far field."""
        if not self.near_field:
            return (1, 1)
        if self.sub_tiles is not None:
            return self.sub_tiles
        rows, cols = (max(d for d in range(1, 5) if n % d == 0) for n in self.elements)
        return (rows, cols)


class FingerprintsConfig(_Strict):
    """A radio map for fingerprint positioning (docs/RIS.md): the channel at the centre of
    every ``block_size`` [m] square block of ``area`` ``[[x0, y0], [x1, y1]]`` [m], at
    ``height`` [m], traced with the run (the same scene, BSs, tiles and settings)."""

    area: tuple[tuple[Float, Float], tuple[Float, Float]]
    block_size: PositiveFloat = 0.5
    height: Float = 1.2

    @model_validator(mode="after")
    def _ordered(self) -> FingerprintsConfig:
        (x0, y0), (x1, y1) = self.area
        if not (x1 - x0 >= self.block_size and y1 - y0 >= self.block_size):
            raise ValueError(f"area {[list(c) for c in self.area]} must be [[x0, y0], [x1, "
                             f"y1]] with room for a {self.block_size} m block")
        return self

    def block_positions(self) -> Any:
        """``[block, 3]`` [m] the blocks' centres, x fastest."""
        from estimators.arrays import block_grid

        return block_grid(self.area, self.block_size, self.height)


class TwinConfig(_Strict):
    """A whole run. Paths in it are relative to the YAML file's directory."""

    seed: Annotated[Int, Field(ge=0, lt=2**32)]
    scene: SceneConfig
    radio: RadioConfig = Field(default_factory=RadioConfig)
    base_stations: list[BaseStationConfig] = Field(min_length=1)
    ue: UEConfig
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    ris: list[RisConfig] = Field(default_factory=list)
    fingerprints: FingerprintsConfig | None = None

    @model_validator(mode="after")
    def _bs_consistent(self) -> TwinConfig:
        names = [bs.name for bs in self.base_stations]
        if len(set(names)) != len(names):
            raise ValueError(f"base station names must be unique, got {names}")
        tiles = [tile.name for tile in self.ris]
        if len(set(tiles)) != len(tiles):
            raise ValueError(f"ris names must be unique, got {tiles}")
        for tile in self.ris:
            source = tile.profile.source
            if source is not None and source not in names:
                raise ValueError(f"ris '{tile.name}': profile source '{source}' is not a "
                                 f"base station ({', '.join(names)})")
        arrays = {bs.array for bs in self.base_stations}
        if len(arrays) > 1:
            # Sionna RT has a single transmit array shared by every transmitter.
            raise ValueError("all base stations must use the same array")
        check_wavefront(self.tracing, max(len(self.base_stations), 4 if self.ris else 1))
        return self

    def to_yaml(self) -> str:
        """The fully resolved config (defaults filled in) as YAML text."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def check_wavefront(tracing: TracingConfig, sources: int) -> None:
    """Sionna traces ``samples_per_src`` and keeps ``max_num_paths_per_src`` per source in
    32-bit wavefronts: both times ``sources`` (the BSs; RIS sub-tiles, 4 per call) must
    stay below 2³² − 1."""
    for key in ("samples_per_src", "max_num_paths_per_src"):
        value = getattr(tracing, key)
        if value * sources >= MAX_WAVEFRONT:
            raise ValueError(f"tracing.{key}: {value} per source times {sources} source(s) "
                             "exceeds Sionna's 32-bit wavefront (2^32 - 1)")


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model class reached by following ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field_info = current.model_fields.get(str(part))
        if field_info is None:
            return None
        current = _unwrap_model(field_info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` / ``list[X]`` annotations, else ``annotation``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _unwrap_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(error: ValidationError, source: str,
                            model: type[BaseModel] | None = None) -> str:
    """One line describing the first problem of a pydantic error, with a hint
    (``model``: the validated class, :class:`TwinConfig` by default)."""
    errors = error.errors()
    # A misspelt required key shows up twice: "missing" and "extra". The extra one names
    # what the user typed, so it goes first.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p))
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    if first["type"] == "extra_forbidden":
        parent = _model_at(model or TwinConfig, loc[:-1])
        key = str(loc[-1])
        hint = ""
        if parent is not None:
            close = difflib.get_close_matches(key, list(parent.model_fields), n=1, cutoff=0.6)
            hint = (
                f" (did you mean '{close[0]}'?)"
                if close
                else f" (valid keys: {', '.join(parent.model_fields)})"
            )
        return f"{source}: unknown key '{_dotted(loc)}'{hint}{suffix}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if not loc:  # a whole-config check names its keys itself
        return f"{source}: {message}{suffix}"
    return f"{source}: {_dotted(loc)}: {message}{suffix}"


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, source: str = "config") -> M:
    """Validate a mapping into ``model`` or raise a one-line TwinInputError."""
    if not isinstance(data, dict):
        raise TwinInputError(f"{source}: expected a YAML mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise TwinInputError(format_validation_error(exc, source, model)) from None


def parse_config(data: Any, source: str = "config") -> TwinConfig:
    """Validate a mapping into a :class:`TwinConfig` or raise a one-line TwinInputError."""
    return parse_model(TwinConfig, data, source)


def load_config(path: str | Path) -> tuple[TwinConfig, Path]:
    """Read and validate a YAML config.

    Returns
    -------
    config, base_dir : the validated config and the directory relative paths in it
        resolve against.
    """
    p = Path(path)
    return parse_config(read_yaml(p), str(p)), p.resolve().parent


def read_yaml(path: Path) -> Any:
    """A config file's YAML, or a one-line TwinInputError (missing, not a regular file,
    larger than :data:`MAX_CONFIG_BYTES`, unreadable, invalid, more than
    :data:`MAX_CONFIG_NODES` values once its aliases are expanded)."""
    if not path.exists():
        raise TwinInputError(f"{path}: config file not found")
    regular_file(path, "config", MAX_CONFIG_BYTES)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TwinInputError(f"{path}: invalid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TwinInputError(f"{path}: cannot read config ({exc.__class__.__name__})") from None
    _check_node_count(data, path)
    return data


def _check_node_count(data: Any, path: Path) -> None:
    # Aliases share nodes, so a small file can expand to billions ("billion laughs").
    stack, count = [data], 0
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise TwinInputError(f"{path}: more than {MAX_CONFIG_NODES} values once its YAML "
                                 "aliases are expanded")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
