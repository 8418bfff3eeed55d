"""Declared request parameters and how flattened RPC parameters are read into them.

An action declares its parameters as a tuple of `Param`; `read` turns the merged query/form
mapping into typed values, answering malformed input with the API's own errors. Lists arrive
flattened 1-based (`InstanceId.1`, `Tag.2.Key`); gaps in the numbering are tolerated and the
items are taken in numeric order.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cloudassist.domain.text import storable, storable_value
from cloudassist.errors import ApiError

Kind = Literal["str", "int", "bool", "list", "objects", "json"]
INT64 = 2**63

#: Parameters every action accepts and ignores (reference Appendix A preamble).
IGNORED = ("OwnerId", "OwnerAccount", "ResourceOwnerId", "ResourceOwnerAccount")


@dataclass(frozen=True)
class Param:
    """One request parameter of an action.

    `error` replaces the generic InvalidParameter.<Name> for a value of the wrong type (the seed's
    InvalidParam.PageSize, say); `fields` names the keys of each object in an `objects` list, and
    `list_fields` those of its keys that are lists themselves (`TagFilter.N.TagValues.M`).
    """

    name: str
    kind: Kind = "str"
    required: bool = False
    error: str | None = None
    fields: tuple[str, ...] = ("Key", "Value")
    max_items: int | None = None
    list_fields: tuple[str, ...] = ()

    def invalid(self) -> ApiError:
        return ApiError.of(self.error) if self.error else ApiError.invalid(self.name)


#: `Name.N`, `Name.N.Field` and `Name.N.Field.M` (a list inside an object, e.g. `TagFilter.1.TagValues.2`).
_INDEXED = re.compile(r"^(?P<name>[A-Za-z]+)\.(?P<index>\d{1,6})(?:\.(?P<field>[A-Za-z]+(?:\.\d{1,6})?))?$")


def read(params: tuple[Param, ...], raw: Mapping[str, str]) -> dict[str, Any]:
    """Typed values for `params`, keyed by parameter name; absent optional parameters are None."""
    lists = _collect_lists(raw)
    values: dict[str, Any] = {}
    for param in params:
        if param.kind in ("list", "objects"):
            value: Any = _read_list(param, lists.get(param.name, {}), raw)
            present = bool(value)
        else:
            text = raw.get(param.name)
            present = text is not None and text != ""
            value = _read_scalar(param, text) if present and text is not None else None
        if param.required and not present:
            raise ApiError.missing(param.name)
        values[param.name] = value
    return values


def _collect_lists(raw: Mapping[str, str]) -> dict[str, dict[int, dict[str, str]]]:
    found: dict[str, dict[int, dict[str, str]]] = {}
    for key, value in raw.items():
        match = _INDEXED.match(key)
        if match:
            items = found.setdefault(match["name"], {})
            items.setdefault(int(match["index"]), {})[match["field"] or ""] = value
    return found


def _read_list(param: Param, items: dict[int, dict[str, str]], raw: Mapping[str, str]) -> list[Any]:
    if param.name in raw and raw[param.name] and not items:
        # a JSON array in the bare parameter ("InstanceIds=["i-1"]"), as some older SDK builds send
        try:
            decoded = json.loads(raw[param.name])
        except (ValueError, RecursionError):
            raise param.invalid() from None
        if not isinstance(decoded, list):
            raise param.invalid()
        items = {
            i + 1: ({"": _text(param, v)} if not isinstance(v, dict) else {k: _text(param, x) for k, x in v.items()})
            for i, v in enumerate(decoded)
        }
        if not all(storable(field) for item in items.values() for field in item):
            raise param.invalid()
    if param.max_items is not None and len(items) > param.max_items:
        raise param.invalid()
    ordered = [items[i] for i in sorted(items) if i >= 1]
    if param.kind == "list":
        return [item[""] for item in ordered if "" in item and item[""] != ""]
    unknown = {f for item in ordered for f in item if "." not in f} - set(param.fields)
    unknown |= {f.split(".")[0] for item in ordered for f in item if "." in f} - set(param.list_fields)
    if unknown:
        raise ApiError.invalid(param.name, f"Unknown field {sorted(unknown)[0]!r}.")
    return [_nested(item) for item in ordered]


def _text(param: Param, value: Any) -> str:
    """A JSON item's value as the flattened form would carry it: `null` is absent (""), and the text must be
    storable (no NUL, no lone surrogate) like every raw parameter."""
    text = "" if value is None else str(value)
    if not storable(text):
        raise param.invalid()
    return text


def _nested(item: dict[str, str]) -> dict[str, Any]:
    """An object's fields, a `Field.M` list among them gathered as `Field` (in the order of M, empty values
    dropped)."""
    result: dict[str, Any] = {k: v for k, v in item.items() if "." not in k}
    lists: dict[str, dict[int, str]] = {}
    for key, value in item.items():
        if "." in key:
            name, _, index = key.partition(".")
            lists.setdefault(name, {})[int(index)] = value
    for name, values in lists.items():
        result[name] = [values[i] for i in sorted(values) if values[i] != ""]
    return result


def _read_scalar(param: Param, text: str) -> Any:
    if param.kind == "str":
        return text
    if param.kind == "int":
        try:
            number = int(text.strip())
        except ValueError:
            raise param.invalid() from None
        if not -INT64 <= number < INT64:
            raise param.invalid()
        return number
    if param.kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise param.invalid()
        return lowered == "true"
    return _read_json(param, text)


def _read_json(param: Param, text: str) -> dict[str, Any]:
    """A JSON object parameter; a Python dict repr (aliyunsdkcore given a dict) is read too."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            raise param.invalid() from None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value) or not storable_value(value):
        raise param.invalid()
    return value
