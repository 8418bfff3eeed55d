"""Managed instances: registration and heart-beats (agent side), and the API's instance actions.

`register` and `heartbeat` serve the agent protocol (`/luban/api/instance/register`, heart-beats);
the rest serve DescribeManagedInstances, ModifyManagedInstance, DeregisterManagedInstance,
DescribeCloudAssistantStatus and InstallCloudAssistant. An instance belongs to the account and region of its
activation code.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from cloudassist import ids
from cloudassist.domain.instances import ONLINE_WINDOW, ManagedInstance
from cloudassist.domain.paging import Page, offset_slice
from cloudassist.domain.tags import Tag, check_tags
from cloudassist.errors import ApiError
from cloudassist.services.activations import hash_code
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.instances import InstanceFilter
from cloudassist.store.store import Tx

TAG_TYPE: Final = "managedinstance"
#: Instances one DescribeCloudAssistantStatus may name (reference §5.6).
MAX_STATUS_INSTANCES: Final = 100
#: InstanceId.N of InstallCloudAssistant: 1 to 50 (reference A.14).
MAX_INSTALL_INSTANCES: Final = 50
#: InstanceName of ModifyManagedInstance: 2-128 characters, starting with a letter (reference A.27).
INSTANCE_NAME: Final = re.compile(r"[A-Za-z\u4e00-\u9fa5][A-Za-z0-9_.:\-\u4e00-\u9fa5]{1,127}")
#: OsType values as DescribeManagedInstances documents them, keyed by their lower-case form.
OS_TYPES: Final = {"linux": "linux", "windows": "windows", "freebsd": "FreeBSD"}
#: What DescribeCloudAssistantStatus reports as OSType, keyed the same way.
OS_FAMILIES: Final = {"linux": "Linux", "windows": "Windows", "freebsd": "FreeBSD"}
MIN_KEY_BITS: Final = 2048
MAX_KEY_BITS: Final = 8192
MAX_KEY_TEXT: Final = 16 * 1024


def check_instance_name(name: str) -> str:
    """A managed instance's name per ModifyManagedInstance's rule, or InvalidInstanceName.Malformed."""
    if not INSTANCE_NAME.fullmatch(name):
        raise ApiError.of("InvalidInstanceName.Malformed")
    return name


def parse_os_type(value: str, name: str = "OsType") -> str:
    """`linux`, `windows` or `freebsd` in any case, as the lower-case key of OS_TYPES."""
    lowered = value.strip().lower()
    if lowered not in OS_TYPES:
        raise ApiError.invalid(name)
    return lowered


def normalize_public_key(text: str) -> str:
    """The agent's public key (base64 of a PEM, as it sends it; or the PEM itself) as PEM text.

    Only RSA keys of 2048 to 8192 bits are accepted: the agent makes RSA-2048 keys and signs with them.
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_KEY_TEXT:
        raise ApiError.of("InvalidPublicKey.Malformed")
    try:
        raw = text.strip().encode("ascii")
        if not raw.startswith(b"-----BEGIN"):
            raw = base64.b64decode(b"".join(raw.split()), validate=True)
        key = (
            serialization.load_pem_public_key(raw)
            if raw.lstrip().startswith(b"-----BEGIN")
            else serialization.load_der_public_key(raw)
        )
    except (ValueError, UnicodeError, binascii.Error, UnsupportedAlgorithm, TypeError):
        raise ApiError.of("InvalidPublicKey.Malformed") from None
    if not isinstance(key, RSAPublicKey) or not MIN_KEY_BITS <= key.key_size <= MAX_KEY_BITS:
        raise ApiError.of("InvalidPublicKey.Malformed")
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def _text(name: str, value: object, limit: int, *, required: bool = False) -> str:
    """An agent-supplied string that the store can hold: no NUL, valid Unicode, at most `limit` long."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ApiError.invalid(name)
    if required and not value.strip():
        raise ApiError.missing(name)
    if len(value) > limit or "\x00" in value:
        raise ApiError.invalid(name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError.invalid(name) from None
    return value


def _address(text: str) -> str:
    """An IP address, or "" for anything else (the agent sends `<nil>` when the host has no NIC)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return ""


@dataclass(frozen=True)
class InstancePage:
    instances: list[ManagedInstance]
    total: int
    next_offset: int | None


class InstanceService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- the agent side --------------------------------------------------------------------------------------

    async def register(
        self,
        *,
        activation_code: str,
        activation_id: str,
        region_id: str,
        machine_id: str,
        instance_name: str | None = None,
        hostname: str = "",
        intranet_ip: str = "",
        os_type: str,
        os_version: str = "",
        agent_version: str = "",
        public_key: str,
        tags: Sequence[Tag] = (),
        remote_ip: str = "",
    ) -> ManagedInstance:
        """Register a machine with an activation code; the new `mi-` instance is returned.

        Refusals, in the order they are checked (an unknown code learns nothing about the activation):
        InvalidActivationId.NotFound (404), InvalidActivationCode.Mismatch, InvalidActivation.Disabled,
        InvalidActivation.Expired, InvalidActivation.CountExhausted, InvalidActivation.IpAddressDenied (403).
        """
        code = _text("ActivationCode", activation_code, 256, required=True)
        activation_id = _text("ActivationId", activation_id, 64, required=True)
        region_id = _text("RegionId", region_id, 64, required=True)
        machine_id = _text("MachineId", machine_id, 128, required=True)
        name = _text("InstanceName", instance_name, 128)
        if name:
            check_instance_name(name)
        hostname = _text("Hostname", hostname, 255)
        intranet_ip = _address(_text("IntranetIp", intranet_ip, 64))
        os_key = parse_os_type(_text("OsType", os_type, 32, required=True))
        os_version = _text("OsVersion", os_version, 255)
        agent_version = _text("AgentVersion", agent_version, 64)
        pem = normalize_public_key(public_key)
        checked_tags = check_tags([{"Key": t.key, "Value": t.value} for t in tags])
        remote = _address(_text("RemoteIp", remote_ip, 64))
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            activation = await tx.activations.get(activation_id, region_id=region_id, lock=True)
            if activation is None:
                hmac.compare_digest(hash_code(code), hash_code(""))  # spend the same time as a real check
                raise ApiError.of("InvalidActivationId.NotFound")
            if not hmac.compare_digest(hash_code(code), activation.code_hash):
                raise ApiError.of("InvalidActivationCode.Mismatch")
            if activation.disabled:
                raise ApiError.of("InvalidActivation.Disabled")
            if activation.expired(now):
                raise ApiError.of("InvalidActivation.Expired")
            if activation.registered_count >= activation.instance_count:
                raise ApiError.of("InvalidActivation.CountExhausted")
            if not activation.admits(remote):
                raise ApiError.of("InvalidActivation.IpAddressDenied")
            number = activation.registered_count + 1
            if not name:
                name = (
                    f"{activation.instance_name}-{number:0{len(str(activation.instance_count))}d}"
                    if activation.instance_name
                    else hostname[:128]
                )
            instance = ManagedInstance(
                instance_id=ids.managed_instance_id(region_id),
                account_id=activation.account_id,
                region_id=region_id,
                activation_id=activation_id,
                instance_name=name,
                hostname=hostname,
                machine_id=machine_id,
                os_type=OS_TYPES[os_key],
                os_version=os_version,
                agent_version=agent_version,
                intranet_ip=intranet_ip,
                internet_ip=remote,
                public_key=pem,
                resource_group_id=activation.resource_group_id,
                registration_time=now,
                last_heartbeat_time=None,
                last_invoked_time=None,
                invocation_count=0,
                tags=tuple(sorted(checked_tags)),
            )
            if not instance.instance_name:
                instance = replace(instance, instance_name=instance.instance_id)
            await tx.instances.insert(instance)
            await tx.tags.add(activation.account_id, TAG_TYPE, instance.instance_id, checked_tags)
            await tx.activations.change_counts(activation_id, registered=1)
        return instance

    async def heartbeat(self, instance_id: str, now: datetime, agent_version: str | None = None) -> ManagedInstance:
        """Record an agent's heart-beat (and the version it reports); InvalidInstance.NotFound if deregistered."""
        version = self.check_agent_version(agent_version)
        async with self.ctx.store.write() as tx:
            instance = await tx.instances.get(instance_id)
            if instance is None:
                raise ApiError.of("InvalidInstance.NotFound")
            return await self.heartbeat_in(tx, instance, now, version)

    @staticmethod
    async def heartbeat_in(tx: Tx, instance: ManagedInstance, now: datetime, version: str | None) -> ManagedInstance:
        """`heartbeat` of an instance already read in the caller's transaction (`version` already checked)."""
        changes: dict[str, object] = {"last_heartbeat_time": now}
        if version and version != instance.agent_version:
            changes["agent_version"] = version
        await tx.instances.update(instance.instance_id, **changes)
        return replace(instance, last_heartbeat_time=now, agent_version=version or instance.agent_version)

    async def disconnected(self, instance_id: str, seen: datetime) -> None:
        """An agent's websocket closed and this server holds no other of it: the agent is offline from now on,
        unless it showed life after `seen` (the last this server saw of it: the socket's opening, a heart-beat
        here), which a heart-beat or a websocket on another server sharing the store would have recorded.
        Its next heart-beat brings it back; an agent that keeps no websocket is judged by heart-beats alone."""
        now = self.ctx.clock.now()

        async def mark(tx: Tx) -> None:
            await tx.instances.disconnected(instance_id, seen, now)

        await self.ctx.store.batch(mark)

    @staticmethod
    def check_agent_version(version: str | None) -> str | None:
        return _text("AgentVersion", version, 64) if version else None

    # -- the API side ----------------------------------------------------------------------------------------

    async def describe_managed_instances(self, f: InstanceFilter, page: Page) -> InstancePage:
        """A page of an account's managed instances in a region, newest first, with their tags."""
        if f.connected is not None:
            f = replace(f, online_since=self.ctx.clock.now() - ONLINE_WINDOW)
        async with self.ctx.store.read() as tx:
            got = await offset_slice(
                page, lambda start, n: tx.instances.list(f, start, n), lambda: tx.instances.count(f)
            )
            tags = await tx.tags.of(TAG_TYPE, [m.instance_id for m in got.rows])
        return InstancePage([replace(m, tags=tags[m.instance_id]) for m in got.rows], got.total, got.next_start)

    async def modify_managed_instance(self, scope: Scope, instance_id: str, instance_name: str) -> ManagedInstance:
        """Rename a managed instance (the only attribute ModifyManagedInstance changes)."""
        check_instance_name(instance_name)
        async with self.ctx.store.write() as tx:
            instance = await self._get(tx, scope, instance_id)
            await tx.instances.update(instance_id, instance_name=instance_name)
        return replace(instance, instance_name=instance_name)

    async def deregister_managed_instance(
        self, scope: Scope, instance_id: str, *, idempotency: Idempotency | None = None
    ) -> ManagedInstance:
        """Deregister an instance: it leaves every listing and counts as deregistered on its activation."""
        async with self.ctx.store.write() as tx:
            if idempotency is not None:
                earlier = await self._replay(tx, scope, idempotency)
                if earlier is not None:
                    return earlier
            instance = await self._get(tx, scope, instance_id)
            await tx.instances.update(instance_id, deregistered=True)
            await tx.activations.change_counts(instance.activation_id, deregistered=1)
            await tx.tags.remove_all(TAG_TYPE, instance_id)
            if idempotency is not None:
                await idempotency.record(tx, scope.account_id, {"InstanceId": instance_id})
        return instance

    async def _replay(self, tx: Tx, scope: Scope, idem: Idempotency) -> ManagedInstance | None:
        """The instance an earlier DeregisterManagedInstance with this ClientToken deregistered, if any."""
        earlier = await idem.claim(tx, scope.account_id, self.ctx.clock.now())
        if earlier is None or "InstanceId" not in earlier:
            return None
        return await tx.instances.get_in(
            scope.account_id, scope.region_id, earlier["InstanceId"], include_deregistered=True
        )

    async def describe_cloud_assistant_status(
        self, scope: Scope, instance_ids: Sequence[str], os_type: str | None, page: Page
    ) -> InstancePage:
        """Agent status of the named instances (all of them, in the order named) or of a page of all.

        Each returned instance carries its `active_task_count`.
        """
        os_key = parse_os_type(os_type, "OSType") if os_type else None
        unique = list(dict.fromkeys(instance_ids))
        if len(unique) > MAX_STATUS_INSTANCES:
            raise ApiError.of("InstanceIds.ExceedLimit")
        async with self.ctx.store.read() as tx:
            if unique:
                by_id = await tx.instances.get_many(scope.account_id, scope.region_id, unique)
                missing = [i for i in unique if i not in by_id]
                if missing:
                    raise ApiError.of(
                        "InvalidInstance.NotFound", f"The specified instance does not exist: {missing[0]}."
                    )
                found = [by_id[i] for i in unique if os_key is None or by_id[i].os_type.lower() == os_key]
                total, next_offset = len(found), None
            else:
                f = InstanceFilter(scope.account_id, scope.region_id, os_type=os_key)
                got = await offset_slice(
                    page, lambda start, n: tx.instances.list(f, start, n), lambda: tx.instances.count(f)
                )
                found, total, next_offset = got.rows, got.total, got.next_start
            active = await tx.instances.active_task_counts([m.instance_id for m in found])
        return InstancePage([replace(m, active_task_count=active[m.instance_id]) for m in found], total, next_offset)

    async def install_cloud_assistant(self, scope: Scope, instance_ids: Sequence[str]) -> None:
        """InstallCloudAssistant: this server has no ECS instances to install on. Every instance it knows is a
        managed instance, whose agent was installed by its owner and registered itself; the real service finds
        no ECS instance by such an ID, so the answer is its documented InvalidInstance.NotFound."""
        unique = list(dict.fromkeys(instance_ids))
        if not unique:
            raise ApiError.of("MissingParam.InstanceId")
        if len(unique) > MAX_INSTALL_INSTANCES:
            raise ApiError.of("InstanceIds.ExceedLimit").because(
                f"{len(unique)} instances; at most {MAX_INSTALL_INSTANCES}."
            )
        async with self.ctx.store.read() as tx:
            known = await tx.instances.get_many(scope.account_id, scope.region_id, unique)
        first = unique[0]
        if first in known:
            raise ApiError.of("InvalidInstance.NotFound").because(
                f"{first} is a managed instance, not an ECS instance: its agent is installed by hand and registered "
                "with an activation code (CreateActivation); InstallCloudAssistant installs on ECS instances only."
            )
        raise ApiError.of("InvalidInstance.NotFound").because(f"No ECS instance {first}.")

    @staticmethod
    async def _get(tx: Tx, scope: Scope, instance_id: str) -> ManagedInstance:
        instance = await tx.instances.get_in(scope.account_id, scope.region_id, instance_id)
        if instance is None:
            raise ApiError.of("InvalidInstanceId.NotFound")
        return instance


def os_family(instance: ManagedInstance) -> str:
    """OSType as DescribeCloudAssistantStatus reports it: Linux, Windows or FreeBSD."""
    return OS_FAMILIES.get(instance.os_type.lower(), instance.os_family)
