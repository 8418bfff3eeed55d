"""The rule every text value from a request must pass before it is stored or compared in a database.

The request reader refuses a NUL in a raw parameter and UTF-8 decoding refuses surrogates, but a
value decoded once more (a JSON string's `\\u0000` or `\\ud800`, a Python repr's `\\x00`, a NextToken's
Base64) can carry either: SQLite cannot encode a lone surrogate and PostgreSQL refuses a NUL in text.
"""

from __future__ import annotations

import re
from typing import Any

_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """True when `text` has no NUL character and no lone UTF-16 surrogate."""
    return _FORBIDDEN.search(text) is None


def storable_value(value: Any) -> bool:
    """True when every string in a decoded JSON value (keys, items, nested to any depth) is `storable`."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not storable(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
    return True
