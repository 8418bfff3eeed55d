"""Activation codes: how machines outside a cloud register as managed instances."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError

MAX_INSTANCE_COUNT: Final = 1000
DEFAULT_INSTANCE_COUNT: Final = 10
DEFAULT_TTL_HOURS: Final = 4
#: TimeToLiveInHours: "Valid values: 1 to 4" (reference A.21).
MAX_TTL_HOURS: Final = 4
_NAME: Final = re.compile(r"^[A-Za-z\u4e00-\u9fa5][\w.:\-\u4e00-\u9fa5]{1,49}$")


@dataclass(frozen=True)
class Activation:
    activation_id: str
    account_id: int
    region_id: str
    code_hash: str
    description: str
    instance_name: str
    instance_count: int
    registered_count: int
    deregistered_count: int
    ip_address_range: str
    time_to_live_in_hours: int
    resource_group_id: str
    creation_time: datetime
    disabled: bool
    tags: tuple[Tag, ...] = ()

    def expired(self, now: datetime) -> bool:
        return now > self.creation_time + timedelta(hours=self.time_to_live_in_hours)

    def admits(self, address: str) -> bool:
        """Whether a machine at `address` may register with this code."""
        if not self.ip_address_range or self.ip_address_range in ("0.0.0.0/0", "::/0"):
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in parse_ranges(self.ip_address_range))


def parse_ranges(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """An IpAddressRange: addresses or CIDR blocks, comma-separated."""
    nets = []
    for part in text.split(","):
        try:
            nets.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ApiError.of("AddressRange.InvalidPattern") from None
    return nets


def check_activation(
    *,
    instance_name: str | None,
    description: str | None,
    instance_count: int,
    ttl_hours: int,
    ip_address_range: str | None,
) -> None:
    """The documented limits of CreateActivation."""
    if instance_name is not None:
        if len(instance_name) > 50:
            raise ApiError.of("InstanceName.ExceedLimit")
        if not _NAME.match(instance_name):
            raise ApiError.of("InstanceName.InvalidPattern")
    if description is not None and len(description) > 100:
        raise ApiError.of("ActivationDesc.ExceedLimit")
    if not 1 <= instance_count <= MAX_INSTANCE_COUNT:
        raise ApiError.of("ActivationLimitation.Invalid")
    if not 1 <= ttl_hours <= MAX_TTL_HOURS:
        raise ApiError.of("ActivationTTL.ExceedLimit")
    if ip_address_range:
        parse_ranges(ip_address_range)
