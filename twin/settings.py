"""Which estimators ``twin estimate`` runs and with which hyper-parameters.

Algorithms are named on the command line (``-a a,b``) and their keyword-only
hyper-parameters set with ``--set key=value`` / ``--set algo.key=value``. A value is
YAML, validated by pydantic against the annotation of that parameter in the
estimator's ``__init__`` (:func:`parameter_adapters`): strictly, as JSON would be (an
``int`` is no ``bool``, a list fits a tuple, a float must be finite), except that an
``int`` or a number YAML 1.1 reads as text (``1e6``) fits a ``float``, and a text
parameter takes the text as written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

# Importing the package (not only estimators.base) registers every estimator.
from estimators import ESTIMATORS, Estimator
from twin.errors import TwinInputError
from twin.estimatefile import split_names

_STRICT_FINITE = ConfigDict(allow_inf_nan=False)


def _registered() -> str:
    return ", ".join(sorted(ESTIMATORS)) or "(none)"


def resolve_algorithms(algorithms: str | Iterable[str]) -> list[str]:
    """Registered algorithm names from ``"a,b"`` or ``["a", "b,c"]``, in the order given.

    Raises
    ------
    TwinInputError
        No name, an unknown name (the message lists the registered ones, sorted), or a
        name given twice.
    """
    names = split_names(algorithms)
    if not names:
        raise TwinInputError(f"--algorithms: no algorithm given (registered: {_registered()})")
    for name in names:
        if name not in ESTIMATORS:
            raise TwinInputError(
                f"--algorithms: unknown algorithm '{name}' (registered: {_registered()})"
            )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TwinInputError(f"--algorithms: {', '.join(twice)} given more than once")
    return names


def parameter_adapters(cls: type[Estimator]) -> dict[str, tuple[Any, TypeAdapter[Any]]]:
    """Per keyword-only hyper-parameter of ``cls.__init__``: its annotation and a
    pydantic :class:`~pydantic.TypeAdapter` validating values against it (``Any`` for
    an unannotated one)."""
    return {
        name: (hint, TypeAdapter(hint, config=_STRICT_FINITE))
        for name, (_, hint) in cls.hyper_parameters().items()
    }


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _candidates(value: Any, raw: str) -> list[Any]:
    """``value`` (the YAML of ``raw``), then the readings YAML 1.1 misses: a number
    written as text (``1e6``), and the text as written (for a text parameter)."""
    readings = [value]
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            readings.append(number)
    text = raw.strip()
    if value != text:
        readings.append(text)
    return readings


def _conform(adapter: TypeAdapter[Any], value: Any, raw: str) -> Any:
    """The first reading of ``value`` (:func:`_candidates`) the adapter accepts, or
    :class:`ValueError`."""
    for reading in _candidates(value, raw):
        if isinstance(reading, float) and not math.isfinite(reading):
            continue  # JSON has no NaN: say so here rather than in pydantic's words
        try:
            return adapter.validate_json(json.dumps(reading), strict=True)
        except (ValidationError, TypeError, ValueError):
            continue
    raise ValueError(raw)


def parse_settings(
    settings: Iterable[str], classes: Mapping[str, type[Estimator]]
) -> dict[str, dict[str, Any]]:
    """Hyper-parameter overrides per algorithm from ``--set`` items.

    ``key=value`` sets ``key`` on every selected algorithm that has it (an error if none
    has); ``algo.key=value`` on ``algo`` only (an error if it is not selected or lacks
    ``key``). A scoped setting wins over a global one. Values are YAML (``3``, ``0.5``,
    ``true``, ``null``, ``[1, 2]``), validated against the parameter's annotation (see
    the module docstring).

    Returns
    -------
    ``{algorithm: {parameter: value}}`` for every algorithm of ``classes``.

    Raises
    ------
    TwinInputError
        One line: a malformed item, a key no selected algorithm has, an unselected
        algorithm, a value that is not YAML or does not fit the annotation, a key set
        twice.
    """
    adapters = {name: parameter_adapters(cls) for name, cls in classes.items()}
    global_: dict[str, dict[str, Any]] = {name: {} for name in classes}
    scoped: dict[str, dict[str, Any]] = {name: {} for name in classes}
    seen: set[tuple[str | None, str]] = set()

    def convert(item: str, algo: str, key: str, raw: str, value: Any) -> Any:
        hint, adapter = adapters[algo][key]
        try:
            return _conform(adapter, value, raw)
        except ValueError:
            raise TwinInputError(
                f"--set {item}: {algo}.{key} expects {_type_name(hint)}, got {raw.strip()!r}"
            ) from None

    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TwinInputError(f"--set {item}: expected key=value or algorithm.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = str(getattr(exc, "problem", "") or "invalid YAML")
            raise TwinInputError(f"--set {item}: value is not valid YAML ({problem})") from None
        algo: str | None
        algo, _, param = key.rpartition(".")
        algo = algo or None
        if (algo, param) in seen:
            raise TwinInputError(f"--set {item}: '{key}' is set more than once")
        seen.add((algo, param))
        if algo is None:
            targets = [name for name in classes if param in adapters[name]]
            if not targets:
                known = sorted({k for a in adapters.values() for k in a})
                raise TwinInputError(
                    f"--set {item}: no selected algorithm has a parameter '{param}' "
                    f"(known: {', '.join(known) or 'none'})"
                )
            for name in targets:
                global_[name][param] = convert(item, name, param, raw, value)
        else:
            if algo not in classes:
                raise TwinInputError(
                    f"--set {item}: algorithm '{algo}' is not selected "
                    f"(selected: {', '.join(classes)})"
                )
            if param not in adapters[algo]:
                raise TwinInputError(
                    f"--set {item}: {algo} has no parameter '{param}' "
                    f"(known: {', '.join(sorted(adapters[algo])) or 'none'})"
                )
            scoped[algo][param] = convert(item, algo, param, raw, value)
    return {name: {**global_[name], **scoped[name]} for name in classes}


__all__ = ["parameter_adapters", "parse_settings", "resolve_algorithms"]
