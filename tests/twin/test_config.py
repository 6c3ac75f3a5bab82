"""Config validation: strict keys with hints, value checks, resolved YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from twin.config import DEFAULT_SAMPLES_PER_SRC, load_config, parse_config
from twin.errors import TwinInputError

ISSUE_EXAMPLE = """
seed: 7
scene: {file: builtin:simple_street_canyon, unit_scale: 1.0, up_axis: z,
        materials: {default: itu_concrete, overrides: {"glass*": itu_glass}}}
radio: {frequency_hz: 28.0e9, bandwidth_hz: 100.0e6, num_subcarriers: 64}
base_stations:
  - {name: bs0, position: [0, 0, 10], orientation: [0, 0, 0],
     array: {rows: 1, cols: 16, spacing_wavelengths: 0.5, pattern: iso, polarization: V}}
ue:
  array: {rows: 1, cols: 1, spacing_wavelengths: 0.5, pattern: iso, polarization: V}
  orientation: [0, 0, 0]
  trajectory: {waypoints: [[-20, 5, 1.5], [20, 5, 1.5]], speed_mps: 10, sample_period_s: 0.1}
tracing: {max_depth: 3, samples_per_src: 1000000, los: true, specular_reflection: true,
          diffuse_reflection: false, refraction: true, diffraction: false, batch_size: 64}
"""


def example() -> dict[str, Any]:
    data = yaml.safe_load(ISSUE_EXAMPLE)
    assert isinstance(data, dict)
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(TwinInputError) as info:
        parse_config(data, "cfg.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_issue_example_is_valid_and_round_trips() -> None:
    config = parse_config(example())
    assert config.radio.num_subcarriers == 64
    assert config.scene.materials.overrides == {"glass*": "itu_glass"}
    again = parse_config(yaml.safe_load(config.to_yaml()))
    assert again == config


def test_defaults_fill_in() -> None:
    data = example()
    del data["tracing"], data["radio"]
    config = parse_config(data)
    assert config.tracing.samples_per_src == DEFAULT_SAMPLES_PER_SRC
    assert config.tracing.max_depth == 3
    assert config.radio.frequency_hz == 28.0e9


@pytest.mark.parametrize(
    "path, bad_key, hint",
    [
        ((), "sede", "did you mean 'seed'"),
        (("radio",), "frequncy_hz", "did you mean 'frequency_hz'"),
        (("tracing",), "max_dept", "did you mean 'max_depth'"),
        (("ue", "trajectory"), "speed", "did you mean 'speed_mps'"),
        (("base_stations", 0), "positon", "did you mean 'position'"),
        (("scene", "materials"), "overide", "did you mean 'overrides'"),
        (("radio",), "zzz", "valid keys: frequency_hz, bandwidth_hz, num_subcarriers"),
    ],
)
def test_unknown_key_names_it_and_hints(path: tuple[Any, ...], bad_key: str, hint: str) -> None:
    data = example()
    node: Any = data
    for part in path:
        node = node[part]
    node[bad_key] = 1
    message = error_of(data)
    assert bad_key in message
    assert hint in message


@pytest.mark.parametrize("key", ["frequency_hz", "bandwidth_hz", "num_subcarriers"])
@pytest.mark.parametrize("value", [0, -5])
def test_non_positive_radio_values(key: str, value: int) -> None:
    data = example()
    data["radio"][key] = value
    message = error_of(data)
    assert f"radio.{key}" in message and "greater than 0" in message


def test_ue_needs_exactly_one_position_source() -> None:
    data = example()
    data["ue"]["positions"] = [[0, 0, 1]]
    assert "exactly one of trajectory, positions, positions_csv" in error_of(data)
    del data["ue"]["positions"], data["ue"]["trajectory"]
    assert "exactly one" in error_of(data)


def test_base_stations_unique_names_and_shared_array() -> None:
    data = example()
    data["base_stations"].append(dict(data["base_stations"][0]))
    assert "unique" in error_of(data)
    data["base_stations"][1] = {**data["base_stations"][0], "name": "bs1",
                                "array": {"rows": 2, "cols": 2}}
    assert "same array" in error_of(data)


def test_wrong_types_and_shapes() -> None:
    data = example()
    data["base_stations"][0]["position"] = [0, 0]
    assert "base_stations[0].position" in error_of(data)
    data = example()
    data["ue"]["array"]["polarization"] = "Q"
    assert "ue.array.polarization" in error_of(data)


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TwinInputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 7\nradio: {frequency_hz: [\n")
    with pytest.raises(TwinInputError, match="invalid YAML at line"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(TwinInputError, match="mapping"):
        load_config(listing)
    good = tmp_path / "good.yaml"
    good.write_text(ISSUE_EXAMPLE)
    config, base = load_config(good)
    assert base == tmp_path.resolve() and config.seed == 7
