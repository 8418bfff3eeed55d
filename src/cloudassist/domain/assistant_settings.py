"""Cloud Assistant settings of an account (ModifyCloudAssistantSettings, reference A.15/A.16): the typed record,
the rules each setting type's JSON object must follow, and when an agent may upgrade. Pure: no I/O.

A record is kept as one JSON document per account (`to_document`/`from_document`); a modification replaces the
sections of one SettingType and leaves the others as they were.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloudassist.errors import ApiError

#: SettingType values (A.16; ResourceUsageConfig is in the 7.11 model).
SESSION_MANAGER_DELIVERY: Final = "SessionManagerDelivery"
INVOCATION_DELIVERY: Final = "InvocationDelivery"
AGENT_UPGRADE_CONFIG: Final = "AgentUpgradeConfig"
SESSION_MANAGER_CONFIG: Final = "SessionManagerConfig"
RESOURCE_USAGE_CONFIG: Final = "ResourceUsageConfig"
SETTING_TYPES: Final = (
    SESSION_MANAGER_DELIVERY,
    INVOCATION_DELIVERY,
    AGENT_UPGRADE_CONFIG,
    SESSION_MANAGER_CONFIG,
    RESOURCE_USAGE_CONFIG,
)
#: The DeliveryType each delivery setting is shown with in DescribeCloudAssistantSettings.
DELIVERY_TYPES: Final = {SESSION_MANAGER_DELIVERY: "SessionManager", INVOCATION_DELIVERY: "Invocation"}

MAX_UPGRADE_WINDOWS: Final = 5
MIN_UPGRADE_WINDOW: Final = timedelta(hours=1)
#: The official agent checks for an update every 30 minutes (agent-protocol.md §1.10).
DEFAULT_UPDATE_INTERVAL: Final = 1800
ENCRYPTION_TYPES: Final = ("Inherit", "OssManaged", "KMS")
ENCRYPTION_ALGORITHMS: Final = ("AES256", "SM4")
MAX_OSS_PREFIX: Final = 254

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_GMT = re.compile(r"^GMT([+-])([1-9]|1[0-4]|0)(?::([0-5]\d))?$")
#: OSS bucket names: 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
#: SLS project names: the same alphabet; Logstore names may also hold underscores.
_PROJECT = _BUCKET
_LOGSTORE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")
_SIZE = re.compile(r"^(\d{1,12})(B|KB|MB)$")
_UNITS: Final = {"B": 1, "KB": 1024, "MB": 1024 * 1024}


@dataclass(frozen=True)
class AgentUpgradeConfig:
    """When agents may upgrade. `enabled` False keeps the default (a check every 30 minutes, any time)."""

    enabled: bool = False
    allowed_upgrade_windows: tuple[str, ...] = ()
    time_zone: str = "UTC"
    bootstrap_upgrade: bool = True
    disable_upgrade: bool = False


@dataclass(frozen=True)
class OssDeliveryConfig:
    enabled: bool = False
    bucket_name: str = ""
    prefix: str = ""
    encryption_type: str = ""
    encryption_algorithm: str = ""
    encryption_key_id: str = ""


@dataclass(frozen=True)
class SlsDeliveryConfig:
    enabled: bool = False
    project_name: str = ""
    logstore_name: str = ""


@dataclass(frozen=True)
class Delivery:
    """Where one kind of record (session records or execution records) is delivered."""

    oss: OssDeliveryConfig = field(default_factory=OssDeliveryConfig)
    sls: SlsDeliveryConfig = field(default_factory=SlsDeliveryConfig)

    @property
    def enabled(self) -> bool:
        return self.oss.enabled or self.sls.enabled


@dataclass(frozen=True)
class ResourceUsageConfig:
    cpu_limit: int = 20
    memory_limit: str = "50MB"
    log_size_limit: str = "100MB"
    log_file_count_limit: int = 30
    overload_limit: int = 3
    keep_script_file: bool = False


@dataclass(frozen=True)
class AssistantSettings:
    """An account's Cloud Assistant settings; the defaults are what an account that never set any has."""

    session_manager_enabled: bool = True
    session_delivery: Delivery = field(default_factory=Delivery)
    invocation_delivery: Delivery = field(default_factory=Delivery)
    agent_upgrade: AgentUpgradeConfig = field(default_factory=AgentUpgradeConfig)
    resource_usage: ResourceUsageConfig = field(default_factory=ResourceUsageConfig)

    @property
    def session_transcript_enabled(self) -> bool:
        """Whether session records (transcripts) are kept: the session delivery is on, to OSS or to SLS. This
        server has neither, so it keeps them itself (docs/differences.md)."""
        return self.session_delivery.enabled

    def to_document(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> AssistantSettings:
        def delivery(d: dict[str, Any] | None) -> Delivery:
            d = d or {}
            return Delivery(OssDeliveryConfig(**d.get("oss", {})), SlsDeliveryConfig(**d.get("sls", {})))

        upgrade = dict(doc.get("agent_upgrade") or {})
        upgrade["allowed_upgrade_windows"] = tuple(upgrade.get("allowed_upgrade_windows") or ())
        return cls(
            session_manager_enabled=bool(doc.get("session_manager_enabled", True)),
            session_delivery=delivery(doc.get("session_delivery")),
            invocation_delivery=delivery(doc.get("invocation_delivery")),
            agent_upgrade=AgentUpgradeConfig(**upgrade),
            resource_usage=ResourceUsageConfig(**(doc.get("resource_usage") or {})),
        )


def check_setting_type(value: str) -> str:
    if value not in SETTING_TYPES:
        raise ApiError.of("InvalidParameter.SettingType").because(
            f"SettingType {value[:64]!r}; one of {', '.join(SETTING_TYPES)}."
        )
    return value


def modified(
    current: AssistantSettings, setting_type: str, configs: dict[str, dict[str, Any] | None]
) -> AssistantSettings:
    """`current` with the section of `setting_type` replaced from the request's JSON objects (`configs`, keyed
    by parameter name: OssDeliveryConfig, SlsDeliveryConfig, AgentUpgradeConfig, SessionManagerConfig,
    ResourceUsageConfig). A key a type does not use is ignored, as the SDK sends every object it was given."""
    check_setting_type(setting_type)
    if setting_type in DELIVERY_TYPES:
        sessions = setting_type == SESSION_MANAGER_DELIVERY
        before = current.session_delivery if sessions else current.invocation_delivery
        delivery = Delivery(
            _oss(before.oss, configs.get("OssDeliveryConfig")), _sls(before.sls, configs.get("SlsDeliveryConfig"))
        )
        if sessions:
            return replace(current, session_delivery=delivery)
        return replace(current, invocation_delivery=delivery)
    if setting_type == AGENT_UPGRADE_CONFIG:
        return replace(current, agent_upgrade=_upgrade(current.agent_upgrade, configs.get("AgentUpgradeConfig")))
    if setting_type == SESSION_MANAGER_CONFIG:
        given = configs.get("SessionManagerConfig") or {}
        enabled = _bool(given, "SessionManagerEnabled", "SessionManagerConfig", current.session_manager_enabled)
        return replace(current, session_manager_enabled=enabled)
    return replace(current, resource_usage=_usage(current.resource_usage, configs.get("ResourceUsageConfig")))


def _bool(given: dict[str, Any], key: str, param: str, default: bool) -> bool:
    value = given.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ApiError.invalid(param, f"{key} must be true or false.")
    return value


def _str(given: dict[str, Any], key: str, code: str, default: str) -> str:
    value = given.get(key, default)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError.of(code).because(f"{key} must be a string.")
    return value


def _oss(before: OssDeliveryConfig, given: dict[str, Any] | None) -> OssDeliveryConfig:
    if given is None:
        return before
    enabled = _bool(given, "Enabled", "OssDeliveryConfig", before.enabled)
    bucket = _str(given, "BucketName", "InvalidParameter.OssBucketName", before.bucket_name)
    prefix = _str(given, "Prefix", "InvalidParameter.OssPrefix", before.prefix)
    kind = _str(given, "EncryptionType", "InvalidParameter.OssEncryptionType", before.encryption_type)
    algorithm = _str(
        given, "EncryptionAlgorithm", "InvalidParameter.OssEncryptionAlgorithm", before.encryption_algorithm
    )
    key_id = _str(given, "EncryptionKeyId", "InvalidParameter.OssEncryptionKeyId", before.encryption_key_id)
    if (bucket or enabled) and not _BUCKET.match(bucket):
        raise ApiError.of("InvalidParameter.OssBucketName").because(
            f"BucketName {bucket[:80]!r}: 3 to 63 lowercase letters, digits and hyphens, starting and ending "
            "with a letter or digit."
        )
    if len(prefix) > MAX_OSS_PREFIX or prefix.startswith(("/", "\\")):
        raise ApiError.of("InvalidParameter.OssPrefix").because(
            f"Prefix of {len(prefix)} characters; at most {MAX_OSS_PREFIX}, not starting with / or \\."
        )
    if kind and kind not in ENCRYPTION_TYPES:
        raise ApiError.of("InvalidParameter.OssEncryptionType").because(
            f"EncryptionType {kind[:64]!r}; one of {', '.join(ENCRYPTION_TYPES)}."
        )
    if algorithm and algorithm not in ENCRYPTION_ALGORITHMS:
        raise ApiError.of("InvalidParameter.OssEncryptionAlgorithm").because(
            f"EncryptionAlgorithm {algorithm[:64]!r}; one of {', '.join(ENCRYPTION_ALGORITHMS)}."
        )
    if (kind == "KMS") != bool(key_id) or len(key_id) > 128:
        raise ApiError.of("InvalidParameter.OssEncryptionKeyId").because(
            "EncryptionKeyId is required with EncryptionType KMS (at most 128 characters) and allowed with it only."
        )
    return OssDeliveryConfig(enabled, bucket, prefix, kind, algorithm, key_id)


def _sls(before: SlsDeliveryConfig, given: dict[str, Any] | None) -> SlsDeliveryConfig:
    if given is None:
        return before
    enabled = _bool(given, "Enabled", "SlsDeliveryConfig", before.enabled)
    project = _str(given, "ProjectName", "InvalidParameter.SlsProjectName", before.project_name)
    logstore = _str(given, "LogstoreName", "InvalidParameter.SlsLogstoreName", before.logstore_name)
    if (project or enabled) and not _PROJECT.match(project):
        raise ApiError.of("InvalidParameter.SlsProjectName").because(
            f"ProjectName {project[:80]!r}: 3 to 63 lowercase letters, digits and hyphens, starting and ending "
            "with a letter or digit."
        )
    if (logstore or enabled) and not _LOGSTORE.match(logstore):
        raise ApiError.of("InvalidParameter.SlsLogstoreName").because(
            f"LogstoreName {logstore[:80]!r}: 3 to 63 lowercase letters, digits, hyphens and underscores, "
            "starting and ending with a letter or digit."
        )
    return SlsDeliveryConfig(enabled, project, logstore)


def _upgrade(before: AgentUpgradeConfig, given: dict[str, Any] | None) -> AgentUpgradeConfig:
    if given is None:
        return before
    windows = given.get("AllowedUpgradeWindow", list(before.allowed_upgrade_windows))
    if windows is None:
        windows = []
    if not isinstance(windows, list) or not all(isinstance(w, str) for w in windows):
        raise ApiError.of("InvalidParameter.AllowedUpgradeWindow").because("AllowedUpgradeWindow is a list of texts.")
    config = AgentUpgradeConfig(
        enabled=_bool(given, "Enabled", "AgentUpgradeConfig", before.enabled),
        allowed_upgrade_windows=tuple(windows),
        time_zone=_str(given, "TimeZone", "InvalidParameter.TimeZone", before.time_zone) or "UTC",
        bootstrap_upgrade=_bool(given, "BootstrapUpgrade", "AgentUpgradeConfig", before.bootstrap_upgrade),
        disable_upgrade=_bool(given, "DisableUpgrade", "AgentUpgradeConfig", before.disable_upgrade),
    )
    if len(config.allowed_upgrade_windows) > MAX_UPGRADE_WINDOWS:
        raise ApiError.of("InvalidAllowedUpgradeWindow.CountLimitExceeded").because(
            f"{len(config.allowed_upgrade_windows)} windows; at most {MAX_UPGRADE_WINDOWS}."
        )
    for window in config.allowed_upgrade_windows:
        start, end = parse_window(window)
        if (end - start) % 1440 < MIN_UPGRADE_WINDOW.total_seconds() // 60:
            raise ApiError.of("InvalidAllowedUpgradeWindow.DurationTooShort").because(
                f"window {window!r}; a window lasts at least an hour."
            )
    if config.enabled and not config.disable_upgrade and not config.allowed_upgrade_windows:
        raise ApiError.of("InvalidAllowedUpgradeWindow.Required")
    zone_of(config.time_zone)
    return config


def _usage(before: ResourceUsageConfig, given: dict[str, Any] | None) -> ResourceUsageConfig:
    """ResourceUsageConfig's values within their documented ranges (no error codes are documented for it, so a
    value out of range is InvalidParameter.ResourceUsageConfig naming the rule)."""
    if given is None:
        return before

    def number(key: str, low: int, high: int, default: int) -> int:
        value = given.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ApiError.invalid("ResourceUsageConfig", f"{key} is a whole number from {low} to {high}.")
        return value

    def size(key: str, low_mb: int, high_mb: int, default: str) -> str:
        value = given.get(key, default)
        match = _SIZE.match(value) if isinstance(value, str) else None
        if match is None or not low_mb * _UNITS["MB"] <= int(match[1]) * _UNITS[match[2]] <= high_mb * _UNITS["MB"]:
            raise ApiError.invalid(
                "ResourceUsageConfig", f"{key} is a size in B, KB or MB from {low_mb}MB to {high_mb}MB."
            )
        return str(value)

    return ResourceUsageConfig(
        cpu_limit=number("CpuLimit", 10, 95, before.cpu_limit),
        memory_limit=size("MemoryLimit", 35, 1024, before.memory_limit),
        log_size_limit=size("LogSizeLimit", 10, 1024, before.log_size_limit),
        log_file_count_limit=number("LogFileCountLimit", 7, 365, before.log_file_count_limit),
        overload_limit=number("OverloadLimit", 3, 2**31 - 1, before.overload_limit),
        keep_script_file=_bool(given, "KeepScriptFile", "ResourceUsageConfig", before.keep_script_file),
    )


def parse_window(window: str) -> tuple[int, int]:
    """`"02:00-03:30"` → minutes of the day of its start and its end (the end may be past midnight: `23:00-01:00`)."""
    match = _WINDOW.match(window)
    if match is None:
        raise ApiError.of("InvalidParameter.AllowedUpgradeWindow").because(f"window {window[:64]!r}; HH:mm-HH:mm.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 * 60 + m1, h2 * 60 + m2


def zone_of(name: str) -> timezone | ZoneInfo:
    """A TimeZone value: a zone name (`Asia/Shanghai`) or a GMT offset with no leading zero (`GMT+8:00`)."""
    match = _GMT.match(name)
    if match:
        sign = -1 if match[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3] or 0)))
    try:
        if name.startswith("GMT") or ("/" not in name and name != "UTC"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ApiError.of("InvalidParameter.TimeZone").because(
            f"TimeZone {name[:64]!r}; a zone name such as Asia/Shanghai, or GMT+8:00."
        ) from None


def next_upgrade_check(config: AgentUpgradeConfig, now: datetime) -> int | None:
    """Seconds until an agent may upgrade, or None when it may now. With the custom configuration off, any time
    is allowed; with DisableUpgrade, none is (the next check comes after the default interval)."""
    if not config.enabled:
        return None
    if config.disable_upgrade:
        return DEFAULT_UPDATE_INTERVAL
    local = now.astimezone(zone_of(config.time_zone))
    minute = local.hour * 60 + local.minute
    waits = []
    for window in config.allowed_upgrade_windows:
        start, end = parse_window(window)
        if (minute - start) % 1440 < (end - start) % 1440:
            return None
        waits.append(((start - minute) % 1440) * 60 - local.second)
    return max(60, min(waits, default=DEFAULT_UPDATE_INTERVAL))
