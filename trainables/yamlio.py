"""Reading trial YAML, applying dotted overrides (`--set loss.beta=0.01`, Tune's sampled values) and
checking values against the config dataclasses' annotations.

The loader reads `1e-4` as a float and refuses duplicate keys; errors are one line
(`ConfigError` unless the caller names another `UserError`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from trainables.errors import ConfigError, UserError


class DuplicateKeyError(yaml.YAMLError):
    """A mapping sets the same key twice (plain YAML keeps the last one silently)."""

    def __init__(self, key: Any, line: int):
        super().__init__(f"key {key!r} set twice (line {line})")
        self.key, self.line = key, line


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float (YAML 1.1 wants `1.0e-4`; people don't) and refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key) if isinstance(key, typing.Hashable) else None
        return super().construct_mapping(node, deep=deep)


# copy the resolver lists: add_implicit_resolver would otherwise append to SafeLoader's own
YamlLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse_value(text: str) -> Any:
    """A `--set` value as a YAML scalar: `4` -> int, `1e-4` -> float, `true` -> bool, `null` -> None."""
    try:
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError:
        return text


def apply_overrides(tree: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`loss.beta`) in a nested dict; returns a new dict.

    This is the one path from sampled values (Tune trials) and `--set key=value`
    (CLIs) to a configuration. Unknown keys are caught when the tree is built.
    """
    out = deep_copy(tree)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: is a value, not a section; cannot set {dotted}")
            node = nxt
        node[parts[-1]] = value
    return out


def deep_copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a nested dict whose sections are new dicts (values are shared)."""
    return {k: deep_copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def parse_set_args(pairs: list[str]) -> dict[str, Any]:
    """`["loss.beta=0.01", ...]` -> `{"loss.beta": 0.01}`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. loss.beta=0.01")
        if any(not part.strip() for part in key.strip().split(".")):
            raise ConfigError(f"--set {pair!r}: key {key.strip()!r} has an empty part; give a dotted key "
                              "such as loss.beta=0.01")
        out[key.strip()] = parse_value(text)
    return out


def read_yaml(path: str | Path, what: str = "config file", error: type[UserError] | None = None) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; one-line `error` (ConfigError) otherwise."""
    error = error or ConfigError
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no such {what}")
    try:
        tree = yaml.load(p.read_text(encoding="utf-8"), Loader=YamlLoader) or {}
    except UnicodeDecodeError:
        raise error(f"{p}: not UTF-8 text (a binary file, or another encoding such as UTF-16); "
                    f"save the {what} as UTF-8 YAML") from None
    except DuplicateKeyError as exc:
        raise error(f"{p}: {exc}; each key may appear once") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise error(f"{p}: not valid YAML{at}") from None
    if not isinstance(tree, dict):
        raise error(f"{p}: expected a mapping at the top level of the {what}")
    return tree


def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """`b` over `a`, section by section; returns a new dict."""
    out = deep_copy(a)
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def describe_type(tp: Any) -> str:
    """A person's reading of a type annotation: `'bce' | 'lsgan'`, `int or null`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {describe_type(typing.get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce_value(value: Any, tp: Any, where: str, error: type[UserError] | None = None) -> Any:
    """Check `value` against the annotation `tp`; accept int for float, nothing looser.

    Raises `error` (ConfigError by default) with one line naming `where`.
    """
    error = error or ConfigError
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return coerce_value(value, option, where, error)
            except error:
                continue
        raise error(f"{where}: got {value!r}, expected {describe_type(tp)}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            return [coerce_value(v, item, f"{where}[{i}]", error) for i, v in enumerate(value)]
        raise error(f"{where}: got {value!r}, expected a list of {describe_type(item)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        # an int-valued float such as 2.0 from a sampler still means scale 2
        if isinstance(value, float) and value.is_integer() and int(value) in allowed:
            value = int(value)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return value
        raise error(f"{where}: got {value!r}, expected one of {describe_type(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise error(f"{where}: got {value!r}, expected null")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, Mapping):
            return build_dataclass(tp, value, where + ".")
        raise error(f"{where}: got {value!r}, expected a mapping of {tp.__name__} fields")
    raise error(f"{where}: got {value!r} ({type(value).__name__}), expected {describe_type(tp)}")


def build_dataclass(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of the dataclass `cls` from a mapping: unknown keys and wrong types fail in one line."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in hints:
            raise ConfigError(f"{prefix}{key}: unknown key; {prefix.rstrip('.') or 'top level'} "
                              f"accepts {', '.join(names)}")
    kwargs = {k: coerce_value(v, hints[k], f"{prefix}{k}") for k, v in values.items()}
    return cls(**kwargs)
