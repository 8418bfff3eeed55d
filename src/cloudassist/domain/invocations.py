"""Invocations (tasks) and their per-instance results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cloudassist.domain.commands import CommandType
from cloudassist.domain.statuses import ErrorCode, InvocationStatus, TaskStatus, legacy_roll_up, roll_up
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError


class RepeatMode(StrEnum):
    ONCE = "Once"  #: Run immediately, once.
    PERIOD = "Period"  #: Run on the schedule in Frequency.
    NEXT_REBOOT_ONLY = "NextRebootOnly"  #: Run when the instance next starts.
    EVERY_REBOOT = "EveryReboot"  #: Run every time the instance starts.
    DRY_RUN = "DryRun"  #: Only check parameters, instances and agents; run nothing.

    @property
    def timed(self) -> bool:
        """Whether a task in this mode runs automatically in the future (the `Timed` output field)."""
        return self in (RepeatMode.PERIOD, RepeatMode.NEXT_REBOOT_ONLY, RepeatMode.EVERY_REBOOT)


class TerminationMode(StrEnum):
    PROCESS = "Process"  #: Kill the script's process on stop or timeout.
    PROCESS_TREE = "ProcessTree"  #: Kill the script's process and every descendant.


def parse_repeat_mode(value: str | None, frequency: str | None) -> RepeatMode:
    """RepeatMode with its documented defaults: no Frequency → Once; a Frequency → Period."""
    if value is None or value == "":
        return RepeatMode.PERIOD if frequency else RepeatMode.ONCE
    try:
        mode = RepeatMode(value)
    except ValueError:
        raise ApiError.of("InvalidRepeatMode.NotFound") from None
    if mode is RepeatMode.PERIOD and not frequency:
        raise ApiError.of("MissingParam.Frequency")
    if frequency and mode is RepeatMode.ONCE:
        return RepeatMode.PERIOD
    return mode


def parse_termination_mode(value: str | None) -> TerminationMode:
    """TerminationMode; the docs give no default, we kill the whole tree (the safer choice)."""
    if not value:
        return TerminationMode.PROCESS_TREE
    try:
        return TerminationMode(value)
    except ValueError:
        raise ApiError.of("InvalidTerminationMode.NotFound") from None


@dataclass(frozen=True)
class Invocation:
    """A task: one command sent to a set of instances."""

    invoke_id: str
    account_id: int
    region_id: str
    command_id: str
    command_name: str
    command_type: CommandType
    command_description: str
    content: bytes
    parameters: dict[str, str]
    repeat_mode: RepeatMode
    frequency: str
    timeout: int
    working_dir: str
    username: str
    windows_password_name: str
    termination_mode: TerminationMode
    launcher: str
    container_id: str
    container_name: str
    resource_group_id: str
    creation_time: datetime
    stop_time: datetime | None
    tags: tuple[Tag, ...] = ()
    results: tuple[InvocationResult, ...] = field(default=())
    #: The command's EnableParameter: whether the agent fills `{{ACS::…}}` built-ins.
    enable_parameter: bool = False

    @property
    def status(self) -> TaskStatus:
        return roll_up(r.status for r in self.results)

    @property
    def legacy_status(self) -> str:
        return legacy_roll_up(self.status, (r.status for r in self.results)).value

    @property
    def timed(self) -> bool:
        return self.repeat_mode.timed and self.status in (TaskStatus.PENDING, TaskStatus.SCHEDULED, TaskStatus.RUNNING)


@dataclass(frozen=True)
class InvocationResult:
    """One execution of a task on one instance."""

    result_id: int
    invoke_id: str
    instance_id: str
    command_id: str
    status: InvocationStatus
    exit_code: int | None
    output: bytes
    dropped: int
    error_code: ErrorCode
    start_time: datetime | None
    finished_time: datetime | None
    stop_time: datetime | None
    update_time: datetime
    creation_time: datetime
    repeats: int
    invoke_version: int = 1
    #: When the agent fetched this execution; None until then.
    delivered_time: datetime | None = None
    #: Output bytes the agent has reported so far (kept and dropped alike).
    received: int = 0
