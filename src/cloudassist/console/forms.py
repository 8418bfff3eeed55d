"""HTML form fields into the services' own types, with the same checks (and `ApiError`s) as the API's."""

from __future__ import annotations

import json
from typing import Any, Final

from cloudassist.console.visit import Visit
from cloudassist.domain.commands import DEFAULT_TIMEOUT, CommandType, parse_type
from cloudassist.domain.invocations import RepeatMode, parse_repeat_mode, parse_termination_mode
from cloudassist.domain.tags import Tag, check_tags
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandSpec
from cloudassist.services.invocations import RunOptions, Targets

COMMAND_TYPES: Final = [t.value for t in CommandType]
REPEAT_MODES: Final = [m.value for m in RepeatMode]


def number(visit: Visit, name: str) -> int | None:
    text = visit.value(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError.invalid(name, f"{name} must be a whole number.") from None


def pairs(text: str, name: str) -> list[tuple[str, str]]:
    """`key=value` lines (a line without `=` is a key with an empty value)."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition("=")
        if not key.strip():
            raise ApiError.invalid(name, f"Each line of {name} is key=value.")
        found.append((key.strip(), value.strip()))
    return found


def tags(visit: Visit, name: str, *, resource: bool = False, limit: int = 20) -> tuple[Tag, ...]:
    objects = [{"Key": k, "Value": v} for k, v in pairs(visit.value(name), name)]
    return check_tags(objects, resource=resource, limit=limit)


def parameters(visit: Visit) -> dict[str, Any]:
    """Parameters as a JSON object or as `name=value` lines."""
    text = visit.value("parameters")
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            raise ApiError.invalid("Parameters", "Parameters is not a JSON object.") from None
        if not isinstance(value, dict):
            raise ApiError.invalid("Parameters", "Parameters is not a JSON object.")
        return value
    return dict(pairs(text, "Parameters"))


def options(visit: Visit) -> RunOptions:
    frequency = visit.value("frequency")
    mode = parse_repeat_mode(visit.value("repeat_mode") or None, frequency)
    if mode is RepeatMode.PERIOD and not frequency:
        raise ApiError.of("MissingParam.Frequency")
    return RunOptions(
        repeat_mode=mode,
        frequency=frequency,
        parameters=parameters(visit),
        timeout=number(visit, "timeout"),
        working_dir=visit.value("working_dir") or None,
        username=visit.value("username"),
        windows_password_name=visit.value("windows_password_name"),
        termination_mode=parse_termination_mode(visit.value("termination_mode") or None),
        launcher=visit.value("launcher") or None,
        container_id=visit.value("container_id"),
        container_name=visit.value("container_name"),
        resource_group_id=visit.value("resource_group_id"),
    )


def targets(visit: Visit) -> Targets:
    """Instances picked by id (ticked, or typed one per line or comma-separated), or by resource tags."""
    typed = [i.strip() for line in visit.values("instance_ids") for i in line.replace(",", "\n").splitlines()]
    ids = [*visit.values("instance"), *[i for i in typed if i]]
    if visit.value("target") == "tags":
        return Targets((), tags(visit, "resource_tags", resource=True))
    return Targets(ids, ())


def command_spec(visit: Visit) -> CommandSpec:
    content = visit.value("content")
    if not content:
        raise ApiError.missing("CommandContent")
    timeout = number(visit, "timeout")
    return CommandSpec(
        name=visit.value("name"),
        description=visit.value("description"),
        type=parse_type(visit.value("type") or "RunShellScript"),
        content=content.replace("\r\n", "\n").encode("utf-8"),
        working_dir=visit.value("working_dir"),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        enable_parameter=visit.value("enable_parameter") == "on",
        launcher=visit.value("launcher"),
        resource_group_id=visit.value("resource_group_id"),
    )
