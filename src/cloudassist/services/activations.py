"""CreateActivation, DescribeActivations, DisableActivation and DeleteActivation.

An activation code is a secret shown once: only its SHA-256 is stored. A CreateActivation retried with
the same ClientToken answers the same ActivationId with a *new* code (the stored hash is replaced), since
the first code cannot be recovered; the caller that retried never received it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from cloudassist import ids
from cloudassist.domain.activations import (
    DEFAULT_INSTANCE_COUNT,
    DEFAULT_TTL_HOURS,
    Activation,
    check_activation,
)
from cloudassist.domain.paging import Page, offset_slice
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.activations import ActivationFilter
from cloudassist.store.store import Tx

#: Activation codes an account may keep per region (reference §5.6).
MAX_ACTIVATIONS_PER_REGION: Final = 5000
#: Longest IpAddressRange kept (the column's width).
MAX_ADDRESS_RANGE: Final = 1024
MAX_RESOURCE_GROUP_ID: Final = 64
TAG_TYPE: Final = "activation"


def hash_code(code: str) -> str:
    """The stored form of an activation code."""
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ActivationSpec:
    """What CreateActivation asks for; None means the documented default."""

    description: str | None = None
    instance_name: str | None = None
    instance_count: int | None = None
    ttl_hours: int | None = None
    ip_address_range: str | None = None
    resource_group_id: str | None = None


@dataclass(frozen=True)
class NewActivation:
    activation: Activation
    code: str

    def __repr__(self) -> str:  # the code is a secret: never in a log line or a traceback
        return f"NewActivation({self.activation.activation_id!r})"


@dataclass(frozen=True)
class ActivationPage:
    activations: list[Activation]
    total: int
    next_offset: int | None


class ActivationService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def check(self, spec: ActivationSpec) -> None:
        """Every documented limit of CreateActivation, plus the widths of the stored columns."""
        check_activation(
            instance_name=spec.instance_name,
            description=spec.description,
            instance_count=_or(spec.instance_count, DEFAULT_INSTANCE_COUNT),
            ttl_hours=_or(spec.ttl_hours, DEFAULT_TTL_HOURS),
            ip_address_range=spec.ip_address_range,
        )
        if spec.instance_name is not None and "\n" in spec.instance_name:
            raise ApiError.of("InstanceName.InvalidPattern")  # `$` of the domain pattern allows one final newline
        if spec.ip_address_range is not None and len(spec.ip_address_range) > MAX_ADDRESS_RANGE:
            raise ApiError.of("AddressRange.InvalidPattern")
        if spec.resource_group_id is not None and len(spec.resource_group_id) > MAX_RESOURCE_GROUP_ID:
            raise ApiError.invalid("ResourceGroupId")

    async def create_activation(
        self, scope: Scope, spec: ActivationSpec, tags: Sequence[Tag] = (), *, idempotency: Idempotency | None = None
    ) -> NewActivation:
        """A new activation code. The returned code is the only copy: the store keeps its hash."""
        self.check(spec)
        code = ids.activation_code(scope.region_id)
        async with self.ctx.store.write() as tx:
            if idempotency is not None:
                earlier = await self._replay(tx, scope, idempotency)
                if earlier is not None:
                    await tx.activations.update(earlier.activation_id, code_hash=hash_code(code))
                    tagged = (await tx.tags.of(TAG_TYPE, [earlier.activation_id]))[earlier.activation_id]
                    return NewActivation(replace(earlier, code_hash=hash_code(code), tags=tagged), code)
            if await tx.activations.count_all(scope.account_id, scope.region_id) >= MAX_ACTIVATIONS_PER_REGION:
                raise ApiError.of("ActivationCount.ExceedLimit")
            activation = Activation(
                activation_id=ids.activation_id(),
                account_id=scope.account_id,
                region_id=scope.region_id,
                code_hash=hash_code(code),
                description=spec.description or "",
                instance_name=spec.instance_name or "",
                instance_count=_or(spec.instance_count, DEFAULT_INSTANCE_COUNT),
                registered_count=0,
                deregistered_count=0,
                ip_address_range=spec.ip_address_range or "",
                time_to_live_in_hours=_or(spec.ttl_hours, DEFAULT_TTL_HOURS),
                resource_group_id=spec.resource_group_id or "",
                creation_time=self.ctx.clock.now(),
                disabled=False,
                tags=tuple(sorted(tags)),
            )
            await tx.activations.insert(activation)
            await tx.tags.add(scope.account_id, TAG_TYPE, activation.activation_id, tags)
            if idempotency is not None:
                await idempotency.record(tx, scope.account_id, {"ActivationId": activation.activation_id})
        return NewActivation(activation, code)

    async def _replay(self, tx: Tx, scope: Scope, idem: Idempotency) -> Activation | None:
        """The activation an earlier request with this ClientToken created, or None to create one now."""
        earlier = await idem.claim(tx, scope.account_id, self.ctx.clock.now())
        if earlier is None or "ActivationId" not in earlier:
            return None
        # deleted since: the token's answer is gone, so this request creates a new code (and re-records)
        return await tx.activations.get(earlier["ActivationId"], scope.account_id, scope.region_id, lock=True)

    async def describe_activations(self, f: ActivationFilter, page: Page) -> ActivationPage:
        """A page of an account's activation codes in a region, newest first, with their tags."""
        async with self.ctx.store.read() as tx:
            got = await offset_slice(
                page, lambda start, n: tx.activations.list(f, start, n), lambda: tx.activations.count(f)
            )
            tags = await tx.tags.of(TAG_TYPE, [a.activation_id for a in got.rows])
        return ActivationPage([replace(a, tags=tags[a.activation_id]) for a in got.rows], got.total, got.next_start)

    async def disable_activation(self, scope: Scope, activation_id: str) -> Activation:
        """Stop a code from registering more instances; instances registered with it are unaffected."""
        async with self.ctx.store.write() as tx:
            activation = await self._get(tx, scope, activation_id)
            if not activation.disabled:
                await tx.activations.update(activation_id, disabled=True)
        return replace(activation, disabled=True)

    async def delete_activation(self, scope: Scope, activation_id: str) -> Activation:
        """Delete a code that no registered (not deregistered) instance was registered with."""
        async with self.ctx.store.write() as tx:
            activation = await self._get(tx, scope, activation_id)
            if activation.registered_count - activation.deregistered_count > 0:
                raise ApiError.of("InvalidOperation.ActivationInUse")
            await tx.tags.remove_all(TAG_TYPE, activation_id)
            await tx.activations.delete(activation_id)
        return activation

    @staticmethod
    async def _get(tx: Tx, scope: Scope, activation_id: str) -> Activation:
        activation = await tx.activations.get(activation_id, scope.account_id, scope.region_id, lock=True)
        if activation is None:
            raise ApiError.of("InvalidActivationId.NotFound")
        return activation


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
