"""Execution statuses, their legacy twins, the error codes of the seed, and the task roll-up."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final


class InvocationStatus(StrEnum):
    """The status of one execution on one instance (`InvocationResult.InvocationStatus`)."""

    PENDING = "Pending"  #: The system is verifying or sending the command.
    SCHEDULED = "Scheduled"  #: A scheduled task is waiting for its next run (never for one-time tasks).
    RUNNING = "Running"  #: The command is running on the instance.
    STOPPING = "Stopping"  #: StopInvocation was called; the agent has not confirmed yet.
    SUCCESS = "Success"  #: Finished with exit code 0 (scheduled: and the schedule has ended).
    FAILED = "Failed"  #: Finished with a non-zero exit code.
    INVALID = "Invalid"  #: The command type or a parameter is invalid for this instance.
    ABORTED = "Aborted"  #: The command could not be delivered.
    ERROR = "Error"  #: The execution could not proceed because of an exception.
    TIMEOUT = "Timeout"  #: The execution timed out.
    CANCELLED = "Cancelled"  #: Stopped before it started.
    TERMINATED = "Terminated"  #: Stopped while it was running.

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class TaskStatus(StrEnum):
    """The roll-up of a whole task (`Invocation.InvocationStatus`): the per-instance values plus two."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    STOPPING = "Stopping"
    SUCCESS = "Success"
    FAILED = "Failed"
    STOPPED = "Stopped"  #: Every instance was cancelled or terminated.
    PARTIAL_FAILED = "PartialFailed"  #: Some instances succeeded and others failed.


class LegacyStatus(StrEnum):
    """The deprecated vocabulary of `InvokeStatus`, `InstanceInvokeStatus` and `InvokeRecordStatus`."""

    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    PARTIAL_FAILED = "PartialFailed"
    STOPPED = "Stopped"
    STOPPING = "Stopping"


S = InvocationStatus
TERMINAL: Final = frozenset({S.SUCCESS, S.FAILED, S.INVALID, S.ABORTED, S.ERROR, S.TIMEOUT, S.CANCELLED, S.TERMINATED})
FAILED_CLASS: Final = frozenset({S.FAILED, S.INVALID, S.ABORTED, S.ERROR, S.TIMEOUT})
STOPPED_CLASS: Final = frozenset({S.CANCELLED, S.TERMINATED})

#: Which status may follow which. Anything else is a bug or a late, duplicate report, and is refused.
TRANSITIONS: Final[dict[InvocationStatus, frozenset[InvocationStatus]]] = {
    S.PENDING: frozenset(
        {S.RUNNING, S.SCHEDULED, S.STOPPING, S.CANCELLED, S.INVALID, S.ABORTED, S.ERROR, S.SUCCESS, S.FAILED, S.TIMEOUT}
    ),
    S.SCHEDULED: frozenset({S.RUNNING, S.STOPPING, S.CANCELLED, S.INVALID, S.ABORTED, S.ERROR, S.SUCCESS, S.FAILED}),
    S.RUNNING: frozenset(
        {S.SCHEDULED, S.STOPPING, S.SUCCESS, S.FAILED, S.ERROR, S.TIMEOUT, S.TERMINATED, S.ABORTED, S.INVALID}
    ),
    S.STOPPING: frozenset({S.TERMINATED, S.CANCELLED, S.SUCCESS, S.FAILED, S.ERROR, S.TIMEOUT}),
    **{status: frozenset() for status in TERMINAL},
}


def can_transition(current: InvocationStatus, new: InvocationStatus) -> bool:
    """Whether a result in `current` may move to `new`."""
    return new in TRANSITIONS[current]


def legacy(status: InvocationStatus) -> LegacyStatus:
    """The legacy per-instance `InvokeRecordStatus`/`InstanceInvokeStatus` of a status (reference §5.3).

    A non-zero exit is legacy *Finished* (the seed's own example); a timeout, an invalid task, an
    aborted delivery and an error are legacy *Failed*.
    """
    return _LEGACY[status]


_LEGACY: Final = {
    S.PENDING: LegacyStatus.RUNNING,
    S.SCHEDULED: LegacyStatus.RUNNING,
    S.RUNNING: LegacyStatus.RUNNING,
    S.STOPPING: LegacyStatus.STOPPING,
    S.SUCCESS: LegacyStatus.FINISHED,
    S.FAILED: LegacyStatus.FINISHED,
    S.TIMEOUT: LegacyStatus.FAILED,
    S.INVALID: LegacyStatus.FAILED,
    S.ABORTED: LegacyStatus.FAILED,
    S.ERROR: LegacyStatus.FAILED,
    S.CANCELLED: LegacyStatus.STOPPED,
    S.TERMINATED: LegacyStatus.STOPPED,
}


def legacy_filter(value: LegacyStatus | str) -> frozenset[InvocationStatus]:
    """The per-instance statuses an `InvokeRecordStatus` request filter selects.

    `Success` is accepted too (the request enum has it) and selects exactly Success.
    """
    if value == "Success":
        return frozenset({S.SUCCESS})
    return frozenset(status for status, old in _LEGACY.items() if old == value)


def roll_up(statuses: Iterable[InvocationStatus]) -> TaskStatus:
    """The task's status from its instances' statuses (reference §5.3).

    Non-terminal states win in the order Stopping > Running > Pending > Scheduled. Among terminal
    ones: all stopped-class → Stopped; success and only stopped-class besides → Success; success
    mixed with failures → PartialFailed; otherwise Failed.
    """
    present = set(statuses)
    for busy, task in (
        (S.STOPPING, TaskStatus.STOPPING),
        (S.RUNNING, TaskStatus.RUNNING),
        (S.PENDING, TaskStatus.PENDING),
        (S.SCHEDULED, TaskStatus.SCHEDULED),
    ):
        if busy in present:
            return task
    if not present or present <= STOPPED_CLASS:
        return TaskStatus.STOPPED
    has_success = S.SUCCESS in present
    has_failed = bool(present & FAILED_CLASS)
    if has_success and not has_failed:
        return TaskStatus.SUCCESS
    if has_success:
        return TaskStatus.PARTIAL_FAILED
    return TaskStatus.FAILED


def legacy_roll_up(task: TaskStatus, statuses: Iterable[InvocationStatus]) -> LegacyStatus:
    """The task's legacy `InvokeStatus`, read from its instances' legacy statuses (reference §5.3).

    Stopping, then Running, win; all stopped → Stopped; of the instances not stopped, all legacy-Failed
    → Failed ("failed on all"), some → PartialFailed ("failed on some"), none → Finished ("all done, or
    some stopped and the rest done"). A non-zero exit is legacy Finished, as the seed's example shows.
    `task` (the roll-up of the same statuses) decides the busy cases, so both always agree.
    """
    olds = [legacy(s) for s in statuses]
    if task is TaskStatus.STOPPING or LegacyStatus.STOPPING in olds:
        return LegacyStatus.STOPPING
    if LegacyStatus.RUNNING in olds:
        return LegacyStatus.RUNNING
    done = [old for old in olds if old is not LegacyStatus.STOPPED]
    if not done:
        return LegacyStatus.STOPPED
    failed = sum(old is LegacyStatus.FAILED for old in done)
    if failed == len(done):
        return LegacyStatus.FAILED
    return LegacyStatus.PARTIAL_FAILED if failed else LegacyStatus.FINISHED


class ErrorCode(StrEnum):
    """Why an execution failed to be sent or run: the seed's `ErrorCode` values (empty = none)."""

    NONE = ""
    INSTANCE_NOT_EXISTS = "InstanceNotExists"
    INSTANCE_RELEASED = "InstanceReleased"
    INSTANCE_NOT_RUNNING = "InstanceNotRunning"
    COMMAND_NOT_APPLICABLE = "CommandNotApplicable"
    ACCOUNT_NOT_EXISTS = "AccountNotExists"
    DIRECTORY_NOT_EXISTS = "DirectoryNotExists"
    BAD_CRON_EXPRESSION = "BadCronExpression"
    CLIENT_NOT_RUNNING = "ClientNotRunning"
    CLIENT_NOT_RESPONSE = "ClientNotResponse"
    CLIENT_IS_UPGRADING = "ClientIsUpgrading"
    CLIENT_NEED_UPGRADE = "ClientNeedUpgrade"
    DELIVERY_TIMEOUT = "DeliveryTimeout"
    EXECUTION_TIMEOUT = "ExecutionTimeout"
    EXECUTION_EXCEPTION = "ExecutionException"
    EXECUTION_INTERRUPTED = "ExecutionInterrupted"
    EXIT_CODE_NONZERO = "ExitCodeNonzero"

    @property
    def info(self) -> str:
        """The seed's `ErrorInfo` text for this code, word for word."""
        return ERROR_INFO[self]


E = ErrorCode
#: The seed's ErrorInfo values, in the seed's order and wording.
ERROR_INFO: Final[dict[ErrorCode, str]] = {
    E.NONE: "",
    E.INSTANCE_NOT_EXISTS: "the specified instance does not exists",
    E.INSTANCE_RELEASED: "the instance has released when create task",
    E.INSTANCE_NOT_RUNNING: "the instance is not running when create task",
    E.COMMAND_NOT_APPLICABLE: "the command is not applicable",
    E.ACCOUNT_NOT_EXISTS: "the specified account does not exists",
    E.DIRECTORY_NOT_EXISTS: "the specified directory does not exists",
    E.BAD_CRON_EXPRESSION: "the cron job expression is invalid",
    E.CLIENT_NOT_RUNNING: "the aliyun service is not running on the instance",
    E.CLIENT_NOT_RESPONSE: "the aliyun service in the instance does not response",
    E.CLIENT_IS_UPGRADING: "the aliyun service in the instance is upgrading now",
    E.CLIENT_NEED_UPGRADE: "the aliyun service in the instance need upgrade",
    E.DELIVERY_TIMEOUT: "the command delivery has been timeout",
    E.EXECUTION_TIMEOUT: "the command execution has been timeout",
    E.EXECUTION_EXCEPTION: "the command execution got an exception",
    E.EXECUTION_INTERRUPTED: "the command execution has been interrupted",
    E.EXIT_CODE_NONZERO: "the command execution exit code is not zero",
}

#: The per-instance status each error code ends an execution in (reference §5.3).
ERROR_STATUS: Final[dict[ErrorCode, InvocationStatus]] = {
    E.INSTANCE_NOT_EXISTS: S.INVALID,
    E.INSTANCE_RELEASED: S.ERROR,
    E.INSTANCE_NOT_RUNNING: S.ABORTED,
    E.COMMAND_NOT_APPLICABLE: S.INVALID,
    E.ACCOUNT_NOT_EXISTS: S.INVALID,
    E.DIRECTORY_NOT_EXISTS: S.INVALID,
    E.BAD_CRON_EXPRESSION: S.INVALID,
    E.CLIENT_NOT_RUNNING: S.ABORTED,
    E.CLIENT_NOT_RESPONSE: S.ABORTED,
    E.CLIENT_IS_UPGRADING: S.ABORTED,
    E.CLIENT_NEED_UPGRADE: S.INVALID,
    E.DELIVERY_TIMEOUT: S.ABORTED,
    E.EXECUTION_TIMEOUT: S.TIMEOUT,
    E.EXECUTION_EXCEPTION: S.ERROR,
    E.EXECUTION_INTERRUPTED: S.ERROR,
    E.EXIT_CODE_NONZERO: S.FAILED,
}
