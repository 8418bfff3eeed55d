"""Credentials as the aliyun CLI finds them: a profile of `~/.aliyun/config.json` (AK mode), or the environment.

Order (the aliyun CLI's: flags, then the config file, then the environment):

1. `--profile NAME`, else `ALIBABA_CLOUD_PROFILE` / `ALIBABACLOUD_PROFILE` / `ALICLOUD_PROFILE`: that profile of
   the config file, which must exist;
2. else the file's `current` profile, when the file exists and names one;
3. else the AccessKey pair in `ALIBABA_CLOUD_ACCESS_KEY_ID` / `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (or the older
   `ALIBABACLOUD_…` and `ALICLOUD_…` names).

The region: `--region`, else the profile's `region_id`, else `ALIBABA_CLOUD_REGION_ID` (`ALIBABACLOUD_REGION_ID`,
`ALICLOUD_REGION_ID`), else `cn-hangzhou`. The endpoint: `--endpoint`, else `CLOUDASSIST_ENDPOINT`, else the
profile's `cloudassist_endpoint` (a key the aliyun CLI ignores), else `127.0.0.1:8080` (what `cloudassist up`
serves). Only `AK` profiles can be used; any other mode is refused by name. No secret is ever printed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudassist.cli.client import Credentials, Endpoint

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_REGION", "ProfileError", "Target", "config_path", "resolve"]

DEFAULT_REGION = "cn-hangzhou"
DEFAULT_ENDPOINT = "127.0.0.1:8080"
ENDPOINT_ENV = "CLOUDASSIST_ENDPOINT"
_PREFIXES = ("ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_")


class ProfileError(Exception):
    """Credentials that cannot be used, with what to do about it."""


@dataclass(frozen=True)
class Target:
    """Where to call and as whom."""

    endpoint: Endpoint
    credentials: Credentials


def config_path(env: Mapping[str, str]) -> Path:
    """The aliyun CLI's config file in the user's home (`HOME` decides, as for the aliyun CLI)."""
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".aliyun" / "config.json"


def _env(env: Mapping[str, str], suffix: str) -> str:
    for prefix in _PREFIXES:
        value = env.get(prefix + suffix, "").strip()
        if value:
            return value
    return ""


def _read_config(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("profiles", []), list):
        raise ProfileError(f"{path} is not an aliyun CLI config file (no `profiles` list)")
    return doc


def _profile(doc: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    profiles = [p for p in doc.get("profiles", []) if isinstance(p, dict)]
    for profile in profiles:
        if profile.get("name") == name:
            return profile
    names = ", ".join(str(p.get("name")) for p in profiles) or "none"
    raise ProfileError(f"no profile {name!r} in {path} (profiles: {names}); `aliyun configure --profile {name}`")


def _from_profile(profile: Mapping[str, Any], path: Path) -> Credentials:
    name = str(profile.get("name", ""))
    mode = str(profile.get("mode") or "AK")
    if mode != "AK":
        raise ProfileError(
            f"profile {name!r} in {path} uses mode {mode!r}; cloudassist supports only AK profiles "
            "(an AccessKey pair): choose another with --profile, or set ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET"
        )
    key_id = str(profile.get("access_key_id") or "")
    secret = str(profile.get("access_key_secret") or "")
    if not key_id or not secret:
        raise ProfileError(f"profile {name!r} in {path} has no access_key_id/access_key_secret")
    region = str(profile.get("region_id") or "")
    return Credentials(key_id, secret, region, f"profile {name!r} of {path}")


def resolve(
    env: Mapping[str, str],
    *,
    profile: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
) -> Target:
    """The endpoint and credentials to use, from the flags given, the config file and `env` (see the module)."""
    path = config_path(env)
    chosen = profile or _env(env, "PROFILE")
    found: Credentials | None = None
    profile_endpoint = ""
    if chosen or path.is_file():
        doc = _read_config(path) if path.is_file() else {}
        if chosen and not doc:
            raise ProfileError(f"profile {chosen!r} asked for, but there is no {path}")
        name = chosen or str(doc.get("current") or "")
        if name:
            entry = _profile(doc, name, path)
            found = _from_profile(entry, path)
            profile_endpoint = str(entry.get("cloudassist_endpoint") or "")
    if found is None:
        key_id, secret = _env(env, "ACCESS_KEY_ID"), _env(env, "ACCESS_KEY_SECRET")
        if not (key_id and secret):
            raise ProfileError(
                f"no credentials: no profile in {path} and no ALIBABA_CLOUD_ACCESS_KEY_ID/"
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET in the environment (`cloudassist keys create` makes a key)"
            )
        found = Credentials(key_id, secret, "", "the environment")
    region_id = region or found.region_id or _env(env, "REGION_ID") or DEFAULT_REGION
    credentials = Credentials(found.access_key_id, found.access_key_secret, region_id, found.source)
    where = endpoint or env.get(ENDPOINT_ENV, "").strip() or profile_endpoint or DEFAULT_ENDPOINT
    try:
        return Target(Endpoint.parse(where), credentials)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None
