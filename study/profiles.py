"""Profiles: the size at which a study asks its question (`python -m study.run SPEC --profile paper`).

A profile is a YAML file in `search_spaces/profiles/` (beside the specs) holding trial-config
overrides (`base`) and per-trial `resources`. `laptop` (the default) keeps the spec's sizes (the
shipped specs are sized for a 2-core laptop) and scores the test sets Set5 and Set14 only. `paper` sets the paper's sizes (G 64 channels
x 16 blocks, D 64 / 1024, 9000+ patches an epoch, 15 MSE pretraining epochs, batch 64,
bf16, one GPU per trial).

Precedence, lowest first: trial-config defaults < the spec's `base` < the profile < the
searched values < `--set`. The profile wins over the spec's base because a spec states a
question (what is compared, what is held fixed) and a profile states its size; a spec's
size keys are its laptop size. A profile key that the spec searches is left to the search
(the plan says so). A spec file may name its own default with `profile: NAME`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from study.sections import Resources, flat_base, section
from study.space import StudySpecError, check_keys, fail
from trainables.config import ConfigError, load_config
from trainables.yamlio import read_yaml as config_read_yaml

DEFAULT_PROFILE = "laptop"
PROFILE_KEYS = ("description", "base", "resources")
SHIPPED = Path(__file__).resolve().parents[1] / "search_spaces" / "profiles"


def profile_path(name: str, spec_path: str | Path | None = None) -> Path:
    """A profile by name (profiles/NAME.yaml beside the spec, else the shipped ones) or by path."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            fail("profile", f"no profile file {path}")
        return path
    folders = ([Path(spec_path).resolve().parent / "profiles"] if spec_path is not None else []) + [SHIPPED]
    for folder in folders:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted({p.stem for f in folders if f.is_dir() for p in f.glob("*.yaml")})
    fail("profile", f"got {name!r}, expected one of {', '.join(known) or 'none (no profiles folder)'} "
                    "or a path to a profile YAML")


def read_profile(path: Path) -> dict[str, Any]:
    """A profile file, validated: known keys, a valid trial config, sane resources."""
    raw = config_read_yaml(path, what="profile file", error=StudySpecError) or {}
    where = f"profile {path.stem}"
    check_keys(raw, where, PROFILE_KEYS, "a profile")
    flat = flat_base(raw.get("base"), f"{where}.base")
    try:
        load_config(overrides=flat)
    except ConfigError as exc:
        raise StudySpecError(f"{where}.base.{exc}") from None
    resources = dataclasses.asdict(section(Resources, raw.get("resources"), f"{where}.resources"))
    given = set(raw.get("resources") or {})
    return {"description": str(raw.get("description") or ""), "base": flat,
            "resources": {k: v for k, v in resources.items() if k in given}}


def apply_profile(raw: dict[str, Any], name: str, spec_path: str | Path | None = None) -> dict[str, Any]:
    """The spec mapping with the profile folded in (profile base over the spec's base, but not
    over searched keys; profile resources over the spec's) and `profile` set to its name."""
    profile = read_profile(profile_path(name, spec_path))
    searched = set((raw.get("space") or {}).keys()) if isinstance(raw.get("space"), Mapping) else set()
    out = dict(raw)
    out["base"] = {**flat_base(raw.get("base")),
                   **{k: v for k, v in profile["base"].items() if k not in searched}}
    if profile["resources"]:
        spec_res = raw.get("resources") or {}
        if not isinstance(spec_res, Mapping):
            fail("resources", f"got {spec_res!r}, expected a mapping")
        out["resources"] = {**spec_res, **profile["resources"]}
    out["profile"] = name
    return out


def profile_notes(raw_space: Any, name: str, spec_path: str | Path | None = None) -> list[str]:
    """Plan lines: which profile, and which of its keys the search space overrides."""
    try:
        profile = read_profile(profile_path(name, spec_path))
    except StudySpecError:
        return [f"profile: {name}"]
    searched = set(raw_space or {})
    lines = [f"profile: {name}" + (f" ({profile['description']})" if profile["description"] else "")]
    skipped = [k for k in profile["base"] if k in searched]
    if skipped:
        lines.append(f"  left to the search space: {', '.join(skipped)}")
    return lines
