"""Tables for the status model (reference §5.3): roll-up, legacy twins, transitions and error codes."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudassist.domain.statuses import (
    ERROR_INFO,
    ERROR_STATUS,
    FAILED_CLASS,
    STOPPED_CLASS,
    TERMINAL,
    TRANSITIONS,
    ErrorCode,
    InvocationStatus,
    LegacyStatus,
    TaskStatus,
    can_transition,
    legacy,
    legacy_filter,
    legacy_roll_up,
    roll_up,
)

S = InvocationStatus
T = TaskStatus
L = LegacyStatus

#: The seed document, where it is at hand: CLOUDASSIST_SEED, else beside the repository (<repo>/../shared/seed).
SEED = Path(os.environ.get("CLOUDASSIST_SEED")
            or Path(__file__).parents[2].parent / "shared/seed/DescribeInvocationResults.md")
#: Its ErrorCode → ErrorInfo table, kept in the repository so the proof below runs in any clone.
SEED_TABLE = Path(__file__).with_name("seed_error_info.tsv")


# --- roll-up -------------------------------------------------------------------------------------

ROLL_UP = [
    # non-terminal states win, Stopping > Running > Pending > Scheduled
    pytest.param((S.PENDING,), T.PENDING, id="pending"),
    pytest.param((S.PENDING, S.SUCCESS, S.FAILED), T.PENDING, id="pending-beats-terminal"),
    pytest.param((S.SCHEDULED,), T.SCHEDULED, id="scheduled"),
    pytest.param((S.SCHEDULED, S.SUCCESS, S.CANCELLED), T.SCHEDULED, id="scheduled-beats-terminal"),
    pytest.param((S.SCHEDULED, S.PENDING), T.PENDING, id="pending-beats-scheduled"),
    pytest.param((S.RUNNING,), T.RUNNING, id="running"),
    pytest.param((S.RUNNING, S.PENDING), T.RUNNING, id="running-beats-pending"),
    pytest.param((S.RUNNING, S.SCHEDULED), T.RUNNING, id="running-beats-scheduled"),
    pytest.param((S.RUNNING, S.SUCCESS, S.TIMEOUT), T.RUNNING, id="running-beats-terminal"),
    pytest.param((S.STOPPING,), T.STOPPING, id="stopping"),
    pytest.param((S.STOPPING, S.RUNNING), T.STOPPING, id="stopping-beats-running"),
    pytest.param((S.STOPPING, S.PENDING, S.SCHEDULED, S.RUNNING), T.STOPPING, id="stopping-beats-all-busy"),
    pytest.param((S.STOPPING, S.CANCELLED), T.STOPPING, id="stopping-beats-stopped"),
    # Success: at least one Success, the others Success or stopped-class
    pytest.param((S.SUCCESS,), T.SUCCESS, id="success"),
    pytest.param((S.SUCCESS, S.SUCCESS, S.SUCCESS), T.SUCCESS, id="all-success"),
    pytest.param((S.SUCCESS, S.CANCELLED), T.SUCCESS, id="success-and-cancelled"),
    pytest.param((S.SUCCESS, S.TERMINATED, S.CANCELLED), T.SUCCESS, id="success-and-stopped"),
    # Failed: failed-class and stopped-class only, at least one failed-class
    pytest.param((S.FAILED,), T.FAILED, id="failed"),
    pytest.param((S.INVALID,), T.FAILED, id="invalid"),
    pytest.param((S.ABORTED,), T.FAILED, id="aborted"),
    pytest.param((S.ERROR,), T.FAILED, id="error"),
    pytest.param((S.TIMEOUT,), T.FAILED, id="timeout"),
    pytest.param((S.FAILED, S.INVALID, S.ABORTED, S.ERROR, S.TIMEOUT), T.FAILED, id="every-failed-class"),
    pytest.param((S.FAILED, S.CANCELLED), T.FAILED, id="failed-and-cancelled"),
    pytest.param((S.TIMEOUT, S.TERMINATED), T.FAILED, id="timeout-and-terminated"),
    # Stopped: every instance stopped-class
    pytest.param((S.CANCELLED,), T.STOPPED, id="cancelled"),
    pytest.param((S.TERMINATED,), T.STOPPED, id="terminated"),
    pytest.param((S.CANCELLED, S.TERMINATED), T.STOPPED, id="cancelled-and-terminated"),
    # PartialFailed: some Success, others failed-class (stopped ones may be mixed in)
    pytest.param((S.SUCCESS, S.FAILED), T.PARTIAL_FAILED, id="success-and-failed"),
    pytest.param((S.SUCCESS, S.TIMEOUT), T.PARTIAL_FAILED, id="success-and-timeout"),
    pytest.param((S.SUCCESS, S.INVALID), T.PARTIAL_FAILED, id="success-and-invalid"),
    pytest.param((S.SUCCESS, S.ABORTED), T.PARTIAL_FAILED, id="success-and-aborted"),
    pytest.param((S.SUCCESS, S.ERROR), T.PARTIAL_FAILED, id="success-and-error"),
    pytest.param((S.SUCCESS, S.FAILED, S.CANCELLED), T.PARTIAL_FAILED, id="success-failed-cancelled"),
]


@pytest.mark.parametrize(("statuses", "expected"), ROLL_UP)
def test_roll_up(statuses: tuple[InvocationStatus, ...], expected: TaskStatus) -> None:
    """A task's InvocationStatus is the documented roll-up of its instances' statuses (§5.3)."""
    assert roll_up(statuses) is expected


@pytest.mark.parametrize(("statuses", "expected"), ROLL_UP)
def test_roll_up_ignores_order_and_takes_any_iterable(statuses: tuple[InvocationStatus, ...],
                                                      expected: TaskStatus) -> None:
    """The roll-up depends on the set of statuses only: reversed input or a generator give the same."""
    assert roll_up(reversed(statuses)) is expected
    assert roll_up(s for s in statuses) is expected


@given(st.lists(st.sampled_from(list(InvocationStatus)), min_size=1, max_size=6))
def test_roll_up_is_non_terminal_exactly_while_an_instance_is(statuses: list[InvocationStatus]) -> None:
    """The task is busy (Pending/Scheduled/Running/Stopping) exactly when some instance is not terminal."""
    busy = {T.PENDING, T.SCHEDULED, T.RUNNING, T.STOPPING}
    assert (roll_up(statuses) in busy) == any(not s.terminal for s in statuses)


# --- the legacy vocabulary -----------------------------------------------------------------------

LEGACY = [
    (S.PENDING, L.RUNNING),
    (S.SCHEDULED, L.RUNNING),
    (S.RUNNING, L.RUNNING),
    (S.STOPPING, L.STOPPING),
    (S.SUCCESS, L.FINISHED),
    (S.FAILED, L.FINISHED),  # the seed's example: InvocationStatus Failed, InvokeRecordStatus Finished
    (S.TIMEOUT, L.FAILED),  # "A timeout sets InvokeRecordStatus=Failed" (CreateCommand doc)
    (S.INVALID, L.FAILED),
    (S.ABORTED, L.FAILED),
    (S.ERROR, L.FAILED),
    (S.CANCELLED, L.STOPPED),
    (S.TERMINATED, L.STOPPED),
]


def test_legacy_table_covers_every_status() -> None:
    """The legacy mapping table below names every per-instance status exactly once."""
    assert sorted(s for s, _ in LEGACY) == sorted(InvocationStatus)


@pytest.mark.parametrize(("status", "expected"), LEGACY)
def test_legacy(status: InvocationStatus, expected: LegacyStatus) -> None:
    """Each per-instance status has the legacy InvokeRecordStatus of the reference's mapping (§5.3)."""
    assert legacy(status) is expected


@pytest.mark.parametrize("value", list(LegacyStatus))
def test_legacy_filter_selects_the_statuses_mapped_to_it(value: LegacyStatus) -> None:
    """An InvokeRecordStatus filter selects exactly the statuses whose legacy twin it is."""
    assert legacy_filter(value) == frozenset(s for s in InvocationStatus if legacy(s) is value)
    assert legacy_filter(value.value) == legacy_filter(value)


def test_legacy_filter_success_selects_success_only() -> None:
    """`Success`, which the request enum accepts, selects exactly the Success executions."""
    assert legacy_filter("Success") == frozenset({S.SUCCESS})


def test_legacy_filter_unknown_value_selects_nothing() -> None:
    """A value outside the legacy vocabulary selects no status."""
    assert legacy_filter("Nonsense") == frozenset()


LEGACY_ROLL_UP = [
    pytest.param((S.FAILED, S.FAILED), T.FAILED, L.FINISHED, id="seed-all-exit-nonzero"),
    pytest.param((S.FAILED,), T.FAILED, L.FINISHED, id="one-exit-nonzero"),
    pytest.param((S.SUCCESS, S.SUCCESS), T.SUCCESS, L.FINISHED, id="all-success"),
    pytest.param((S.SUCCESS, S.CANCELLED), T.SUCCESS, L.FINISHED, id="some-stopped-rest-done"),
    pytest.param((S.FAILED, S.TERMINATED), T.FAILED, L.FINISHED, id="exit-nonzero-and-stopped"),
    pytest.param((S.PENDING,), T.PENDING, L.RUNNING, id="pending"),
    pytest.param((S.SCHEDULED, S.SUCCESS), T.SCHEDULED, L.RUNNING, id="scheduled"),
    pytest.param((S.RUNNING, S.SUCCESS), T.RUNNING, L.RUNNING, id="running"),
    pytest.param((S.STOPPING, S.RUNNING), T.STOPPING, L.STOPPING, id="stopping"),
    pytest.param((S.CANCELLED, S.TERMINATED), T.STOPPED, L.STOPPED, id="stopped"),
    pytest.param((S.TIMEOUT, S.TIMEOUT), T.FAILED, L.FAILED, id="all-timeout"),
    pytest.param((S.INVALID, S.ABORTED, S.ERROR), T.FAILED, L.FAILED, id="all-failed-to-run"),
    pytest.param((S.TIMEOUT, S.CANCELLED), T.FAILED, L.FAILED, id="failed-to-run-and-stopped"),
    pytest.param((S.SUCCESS, S.TIMEOUT), T.PARTIAL_FAILED, L.PARTIAL_FAILED, id="success-and-timeout"),
    pytest.param((S.SUCCESS, S.ABORTED, S.CANCELLED), T.PARTIAL_FAILED, L.PARTIAL_FAILED,
                 id="success-aborted-cancelled"),
    # A non-zero exit is legacy *Finished* per instance, so it must not count as a legacy failure overall:
    pytest.param((S.SUCCESS, S.FAILED), T.PARTIAL_FAILED, L.FINISHED, id="success-and-exit-nonzero"),
    # ... and an instance that failed to run next to one that merely exited non-zero is "failed on some":
    pytest.param((S.FAILED, S.TIMEOUT), T.FAILED, L.PARTIAL_FAILED, id="exit-nonzero-and-timeout"),
]


@pytest.mark.parametrize(("statuses", "task", "expected"), LEGACY_ROLL_UP)
def test_legacy_roll_up(statuses: tuple[InvocationStatus, ...], task: TaskStatus, expected: LegacyStatus) -> None:
    """A task's InvocationStatus and legacy InvokeStatus are the documented pair for its instances."""
    assert roll_up(statuses) is task
    assert legacy_roll_up(task, statuses) is expected


def _legacy_from_instances(statuses: tuple[InvocationStatus, ...]) -> LegacyStatus:
    """The task's InvokeStatus from its instances' legacy statuses, by the vocabulary of §5.3.

    Stopping and Running win (as in the roll-up); all stopped → Stopped; of the instances not stopped,
    all legacy-Failed → Failed ("failed on all"), some → PartialFailed ("failed on some"), none →
    Finished ("all done, or some stopped and the rest done").
    """
    olds = [legacy(s) for s in statuses]
    if L.STOPPING in olds:
        return L.STOPPING
    if L.RUNNING in olds:
        return L.RUNNING
    done = [old for old in olds if old is not L.STOPPED]
    if not done:
        return L.STOPPED
    if all(old is L.FAILED for old in done):
        return L.FAILED
    if any(old is L.FAILED for old in done):
        return L.PARTIAL_FAILED
    return L.FINISHED


def test_legacy_roll_up_agrees_with_the_instances_legacy_statuses() -> None:
    """For every task of 1-3 instances, InvokeStatus is what the instances' InvokeRecordStatus values say.

    This is the consistency the reference asks for ("keep them consistent"): the overall legacy status
    never contradicts the per-instance legacy statuses shown next to it.
    """
    mismatches = []
    for size in (1, 2, 3):
        for statuses in itertools.combinations_with_replacement(list(InvocationStatus), size):
            got = legacy_roll_up(roll_up(statuses), statuses)
            want = _legacy_from_instances(statuses)
            if got is not want:
                mismatches.append(f"{[s.value for s in statuses]}: got {got.value}, want {want.value}")
    assert not mismatches, f"{len(mismatches)} inconsistent legacy roll-ups:\n" + "\n".join(mismatches)


# --- transitions ---------------------------------------------------------------------------------

def test_status_classes_are_the_documented_ones() -> None:
    """Terminal, failed-class and stopped-class statuses are those of the §5.3 table."""
    assert {S.SUCCESS, S.FAILED, S.INVALID, S.ABORTED, S.ERROR, S.TIMEOUT, S.CANCELLED, S.TERMINATED} == TERMINAL
    assert {S.FAILED, S.INVALID, S.ABORTED, S.ERROR, S.TIMEOUT} == FAILED_CLASS
    assert {S.CANCELLED, S.TERMINATED} == STOPPED_CLASS
    assert all(s.terminal == (s in TERMINAL) for s in InvocationStatus)


def test_transition_table_covers_every_status() -> None:
    """Every status has a row in the transition table."""
    assert set(TRANSITIONS) == set(InvocationStatus)


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_have_no_way_out(status: InvocationStatus) -> None:
    """A terminal status can never change: no transition from it to any status is allowed."""
    assert TRANSITIONS[status] == frozenset()
    assert not any(can_transition(status, new) for new in InvocationStatus)


@pytest.mark.parametrize("status", sorted(set(InvocationStatus) - TERMINAL))
def test_busy_statuses_can_end(status: InvocationStatus) -> None:
    """Every non-terminal status may move on, to a terminal status directly, and never to itself."""
    assert TRANSITIONS[status] & TERMINAL
    assert not can_transition(status, status)


def test_nothing_goes_back_to_pending() -> None:
    """Pending is only ever a first status: no transition leads into it."""
    assert not any(can_transition(s, S.PENDING) for s in InvocationStatus)


@pytest.mark.parametrize(("current", "new", "allowed"), [
    (S.PENDING, S.RUNNING, True),
    (S.PENDING, S.CANCELLED, True),  # stopped before it started
    (S.PENDING, S.TERMINATED, False),  # Terminated means stopped while running
    (S.PENDING, S.INVALID, True),
    (S.PENDING, S.ABORTED, True),
    (S.SCHEDULED, S.RUNNING, True),  # the next run of a periodic task
    (S.SCHEDULED, S.CANCELLED, True),
    (S.RUNNING, S.SCHEDULED, True),  # a periodic run ended; wait for the next one
    (S.RUNNING, S.SUCCESS, True),
    (S.RUNNING, S.FAILED, True),
    (S.RUNNING, S.TIMEOUT, True),
    (S.RUNNING, S.TERMINATED, True),
    (S.RUNNING, S.CANCELLED, False),  # Cancelled means stopped before it started
    (S.RUNNING, S.PENDING, False),
    (S.RUNNING, S.STOPPING, True),
    (S.STOPPING, S.TERMINATED, True),
    (S.STOPPING, S.CANCELLED, True),
    (S.STOPPING, S.SUCCESS, True),  # the run ended before the stop arrived
    (S.STOPPING, S.RUNNING, False),
    (S.STOPPING, S.SCHEDULED, False),
    (S.SUCCESS, S.RUNNING, False),
    (S.FAILED, S.SUCCESS, False),
    (S.CANCELLED, S.TERMINATED, False),
])
def test_transition_pairs(current: InvocationStatus, new: InvocationStatus, allowed: bool) -> None:
    """Particular moves between statuses are allowed or refused as the status meanings imply."""
    assert can_transition(current, new) is allowed


# --- error codes ---------------------------------------------------------------------------------

def _seed_values(field: str) -> list[str]:
    """The `-   value` items listed in the seed's description of the response field `field`."""
    lines = SEED.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"|{field}|String|"))
    values: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        assert line.startswith("-   "), f"unexpected line in the {field} list: {line!r}"
        item = line[4:]
        values.append(item.removesuffix("|").strip())
        if item.rstrip().endswith("|"):
            break
    return values


def _seed_error_info() -> list[tuple[str, str]]:
    """(ErrorCode, ErrorInfo) pairs of the seed document, in its order; its `Null` entry is the empty code."""
    codes = [item.split(":", 1)[0] for item in _seed_values("ErrorCode")]
    infos = _seed_values("ErrorInfo")
    assert len(codes) == len(infos)
    return [("" if code == "Null" else code, "" if info.startswith("Null:") else info)
            for code, info in zip(codes, infos, strict=True)]


def _table_error_info() -> list[tuple[str, str]]:
    """The same pairs from the repository's copy of the seed's table."""
    rows = [line.split("\t") for line in SEED_TABLE.read_text(encoding="utf-8").splitlines()
            if not line.startswith("#")]
    return [(code, info) for code, info in rows]


def test_seed_lists_seventeen_error_texts() -> None:
    """The seed's ErrorInfo list has 17 entries (Null and 16 texts), each code paired with one text."""
    pairs = _table_error_info()
    assert len(pairs) == 17
    assert pairs[0] == ("", "")


def test_error_info_is_the_seed_word_for_word_in_order() -> None:
    """ERROR_INFO holds exactly the seed's 17 ErrorCode → ErrorInfo pairs, in the seed's order."""
    assert [(code.value, text) for code, text in ERROR_INFO.items()] == _table_error_info()


@pytest.mark.skipif(not SEED.is_file(), reason=f"the seed document is not at {SEED} (set CLOUDASSIST_SEED): "
                    f"the error table is proven against the repository's copy, {SEED_TABLE.name}, alone")
def test_the_repository_copy_of_the_error_table_is_the_seed_document_word_for_word() -> None:
    """Where the seed document is at hand, seed_error_info.tsv is its ErrorCode/ErrorInfo lists, unchanged."""
    assert _table_error_info() == _seed_error_info()


def test_every_error_code_has_its_info() -> None:
    """Every ErrorCode member has an ErrorInfo text, and `.info` returns it."""
    assert set(ERROR_INFO) == set(ErrorCode)
    assert all(code.info == ERROR_INFO[code] for code in ErrorCode)


def test_error_status_covers_every_real_code_with_a_terminal_failure() -> None:
    """Each non-empty error code ends the execution in a terminal status that is not Success."""
    assert set(ERROR_STATUS) == set(ErrorCode) - {ErrorCode.NONE}
    assert all(status.terminal and status is not S.SUCCESS for status in ERROR_STATUS.values())


@pytest.mark.parametrize(("code", "status"), [
    (ErrorCode.EXIT_CODE_NONZERO, S.FAILED),  # the 2021 example: ExitCodeNonzero with InvocationStatus Failed
    (ErrorCode.EXECUTION_TIMEOUT, S.TIMEOUT),  # the Timeout doc text: InvocationStatus Timeout, ExecutionTimeout
])
def test_documented_error_status_pairs(code: ErrorCode, status: InvocationStatus) -> None:
    """The two pairings the documentation states (the others are the reference's inference) hold exactly."""
    assert ERROR_STATUS[code] is status


@pytest.mark.parametrize(("code", "allowed"), [
    (ErrorCode.EXECUTION_EXCEPTION, {S.ERROR}),
    (ErrorCode.DELIVERY_TIMEOUT, {S.ABORTED}),
    (ErrorCode.INSTANCE_NOT_EXISTS, {S.ABORTED, S.INVALID}),
    (ErrorCode.INSTANCE_RELEASED, {S.ERROR}),
    (ErrorCode.INSTANCE_NOT_RUNNING, {S.ABORTED}),
    (ErrorCode.CLIENT_NOT_RUNNING, {S.ABORTED}),
    (ErrorCode.CLIENT_NOT_RESPONSE, {S.ABORTED}),
    (ErrorCode.CLIENT_IS_UPGRADING, {S.ABORTED}),
    (ErrorCode.CLIENT_NEED_UPGRADE, {S.INVALID}),
    (ErrorCode.COMMAND_NOT_APPLICABLE, {S.INVALID}),
    (ErrorCode.ACCOUNT_NOT_EXISTS, {S.INVALID}),
    (ErrorCode.DIRECTORY_NOT_EXISTS, {S.INVALID}),
    (ErrorCode.BAD_CRON_EXPRESSION, {S.INVALID}),
    (ErrorCode.EXECUTION_INTERRUPTED, {S.TERMINATED, S.ERROR}),  # reference suggests Terminated; Error chosen
])
def test_inferred_error_status_pairs(code: ErrorCode, allowed: set[InvocationStatus]) -> None:
    """The other codes end in the status the reference's ErrorCode table suggests (or one of its alternatives)."""
    assert ERROR_STATUS[code] in allowed
