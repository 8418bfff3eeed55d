"""Identifiers in the shapes the ECS API uses: c-… commands, t-… invocations, mi-… managed instances."""

from __future__ import annotations

import secrets
import uuid

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _with_region(prefix: str, region_id: str) -> str:
    """`c-hz0jdfwcsr…`: the real ids carry a two-letter region hint after the prefix."""
    hint = "".join(ch for ch in region_id.split("-")[-1] if ch.isalnum())[:2].lower() or "xx"
    return f"{prefix}-{hint.ljust(2, 'x')}{_token(20)}"


def command_id(region_id: str) -> str:
    """A new CommandId, `c-` plus 22 characters."""
    return _with_region("c", region_id)


def invoke_id(region_id: str) -> str:
    """A new InvokeId of a command task, `t-` plus 22 characters."""
    return _with_region("t", region_id)


def file_invoke_id(region_id: str) -> str:
    """A new InvokeId of a SendFile task, `f-` plus 22 characters."""
    return _with_region("f", region_id)


def managed_instance_id(region_id: str) -> str:
    """A new managed InstanceId, `mi-` plus 22 characters."""
    return _with_region("mi", region_id)


def activation_id() -> str:
    """A new ActivationId: an upper-case UUID, as the service returns."""
    return str(uuid.uuid4()).upper()


def activation_code(region_id: str) -> str:
    """A new ActivationCode: `a-` plus a region hint and 40 url-safe random characters (the secret)."""
    hint = _with_region("a", region_id)[2:4]
    return f"a-{hint}{secrets.token_urlsafe(30)}"


def request_id() -> str:
    """A RequestId: an upper-case UUID."""
    return str(uuid.uuid4()).upper()


def access_key_id() -> str:
    """An AccessKey id in the console's shape: `LTAI` plus 20 characters."""
    return "LTAI" + "".join(
        secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20)
    )


def access_key_secret() -> str:
    """An AccessKey secret: 30 random url-safe characters."""
    return secrets.token_urlsafe(23)[:30]
