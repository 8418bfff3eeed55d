"""The storage suite: every repository of the Store, on SQLite and on PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from cloudassist.domain.activations import Activation
from cloudassist.domain.commands import Command, CommandType
from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.invocations import Invocation, RepeatMode, TerminationMode
from cloudassist.domain.statuses import ErrorCode, InvocationStatus, TaskStatus
from cloudassist.domain.tags import Tag
from cloudassist.store.activations import ActivationFilter
from cloudassist.store.commands import CommandFilter
from cloudassist.store.instances import InstanceFilter
from cloudassist.store.invocations import InvocationFilter
from cloudassist.store.results import NewResult, ResultFilter
from cloudassist.store.store import Store, Tx

S = InvocationStatus
REGION = "cn-hangzhou"
OTHER_REGION = "cn-beijing"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EVERY_BYTE = bytes(range(256))


def at(minutes: float) -> datetime:
    """T0 plus some minutes (with microseconds, which the store must keep)."""
    return T0 + timedelta(minutes=minutes, microseconds=123_456)


def make_command(account_id: int, command_id: str, *, name: str = "cmd", description: str = "",
                 type: CommandType = CommandType.RUN_SHELL_SCRIPT, content: bytes = b"echo hi",
                 resource_group_id: str = "", created: datetime = T0, kept: bool = True,
                 region_id: str = REGION) -> Command:
    return Command(
        command_id=command_id, account_id=account_id, region_id=region_id, name=name, description=description,
        type=type, content=content, working_dir="/root", timeout=60, enable_parameter=True,
        launcher="python3 -u {{ACS::ScriptFileName}}", resource_group_id=resource_group_id, creation_time=created,
        invoke_times=0, kept=kept)


def make_invocation(account_id: int, invoke_id: str, *, command_id: str = "c-1", command_name: str = "deploy",
                    command_type: CommandType = CommandType.RUN_SHELL_SCRIPT,
                    repeat_mode: RepeatMode = RepeatMode.ONCE, resource_group_id: str = "",
                    created: datetime = T0, region_id: str = REGION, content: bytes = b"echo hi",
                    parameters: dict[str, str] | None = None) -> Invocation:
    return Invocation(
        invoke_id=invoke_id, account_id=account_id, region_id=region_id, command_id=command_id,
        command_name=command_name, command_type=command_type, command_description="a task", content=content,
        parameters=parameters or {}, repeat_mode=repeat_mode,
        frequency="0 */5 * * * *" if repeat_mode is RepeatMode.PERIOD else "", timeout=60, working_dir="/root",
        username="root", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE, launcher="",
        container_id="", container_name="", resource_group_id=resource_group_id, creation_time=created,
        stop_time=None)


async def add_task(tx: Tx, inv: Invocation, instances: Sequence[tuple[str, InvocationStatus]], *,
                   status: TaskStatus = TaskStatus.PENDING, invoke_status: str = "Running",
                   tags: Sequence[Tag] = ()) -> int:
    """Store a task as the services do: one sequence number for the task, then one per result; its seq."""
    seq = await tx.accounts.allocate_seq(inv.account_id, len(instances) + 1) - len(instances)
    await tx.invocations.insert(inv, seq=seq, status=status, invoke_status=invoke_status)
    await tx.results.insert(account_id=inv.account_id, region_id=inv.region_id, invoke_id=inv.invoke_id,
                            command_id=inv.command_id, first_seq=seq + 1,
                            items=[NewResult(instance, s) for instance, s in instances], now=inv.creation_time)
    await tx.tags.add(inv.account_id, "invocation", inv.invoke_id, tags)
    return seq


async def new_account(store: Store, name: str = "alice") -> int:
    async with store.write() as tx:
        return await tx.accounts.ensure(name, T0)


# --- accounts ------------------------------------------------------------------------------------

async def test_ensure_is_idempotent(store: Store) -> None:
    """ensure(name) creates an account once; later calls, in any transaction, return the same id."""
    async with store.write() as tx:
        alice = await tx.accounts.ensure("alice", T0)
        assert await tx.accounts.ensure("alice", at(1)) == alice
    async with store.write() as tx:
        assert await tx.accounts.ensure("alice", at(2)) == alice
        bob = await tx.accounts.ensure("bob", T0)
    assert bob != alice
    async with store.read() as tx:
        assert await tx.accounts.find("alice") == alice
        assert await tx.accounts.find("carol") is None
        assert await tx.accounts.names() == {alice: "alice", bob: "bob"}


async def test_concurrent_ensure_creates_one_account(store: Store) -> None:
    """Ten transactions ensuring the same new account at once all get the same, single account."""
    async def ensure() -> int:
        async with store.write() as tx:
            return await tx.accounts.ensure("shared", T0)

    ids = await asyncio.gather(*(ensure() for _ in range(10)))
    assert len(set(ids)) == 1
    async with store.read() as tx:
        assert list((await tx.accounts.names()).values()) == ["shared"]


async def test_allocate_seq_returns_consecutive_numbers(store: Store) -> None:
    """allocate_seq reserves `count` numbers after the last ones and returns the last; numbering starts at 1."""
    alice = await new_account(store)
    async with store.write() as tx:
        assert await tx.accounts.current_seq(alice) == 0
        assert await tx.accounts.allocate_seq(alice, 1) == 1
        assert await tx.accounts.allocate_seq(alice, 3) == 4  # reserves 2, 3, 4
        assert await tx.accounts.allocate_seq(alice, 1) == 5
    async with store.write() as tx:
        assert await tx.accounts.allocate_seq(alice, 2) == 7
        assert await tx.accounts.current_seq(alice) == 7


async def test_allocate_seq_is_per_account(store: Store) -> None:
    """Each account has its own sequence."""
    alice, bob = await new_account(store, "alice"), await new_account(store, "bob")
    async with store.write() as tx:
        await tx.accounts.allocate_seq(alice, 10)
        assert await tx.accounts.allocate_seq(bob, 1) == 1
        assert await tx.accounts.current_seq(alice) == 10


async def test_allocate_seq_is_race_free(store: Store) -> None:
    """Twenty concurrent write transactions reserving 1-3 numbers each get disjoint ranges that together
    cover 1..total without a gap."""
    alice = await new_account(store)

    async def reserve(count: int) -> range:
        async with store.write() as tx:
            last = await tx.accounts.allocate_seq(alice, count)
            await asyncio.sleep(0.001)  # hold the transaction open while the others queue up
            return range(last - count + 1, last + 1)

    counts = [1 + i % 3 for i in range(20)]
    ranges = await asyncio.gather(*(reserve(c) for c in counts))
    numbers = sorted(n for r in ranges for n in r)
    assert numbers == list(range(1, sum(counts) + 1))
    assert [len(r) for r in ranges] == counts
    async with store.read() as tx:
        assert await tx.accounts.current_seq(alice) == sum(counts)


# --- nonces --------------------------------------------------------------------------------------

async def test_nonce_claim_refuses_a_replay(store: Store) -> None:
    """A (key, nonce) pair can be claimed once; a replay, even in a later transaction, is refused; the
    same nonce under another key is a different claim."""
    async with store.write() as tx:
        assert await tx.nonces.claim("ak1", "n-1", at(15))
        assert not await tx.nonces.claim("ak1", "n-1", at(15))
    async with store.write() as tx:
        assert not await tx.nonces.claim("ak1", "n-1", at(30))
        assert await tx.nonces.claim("ak2", "n-1", at(15))
        assert await tx.nonces.claim("ak1", "n-2", at(15))


async def test_nonce_purge_forgets_expired_ones(store: Store) -> None:
    """purge(now) deletes exactly the nonces that expired before `now`; those can be claimed again, the
    others are still refused."""
    async with store.write() as tx:
        assert await tx.nonces.claim("ak", "old-1", at(-10))
        assert await tx.nonces.claim("ak", "old-2", at(-1))
        assert await tx.nonces.claim("ak", "fresh", at(10))
    async with store.write() as tx:
        assert await tx.nonces.purge(T0) == 2
        assert await tx.nonces.purge(T0) == 0
    async with store.write() as tx:
        assert await tx.nonces.claim("ak", "old-1", at(20))
        assert not await tx.nonces.claim("ak", "fresh", at(20))


async def test_concurrent_claims_of_one_nonce_admit_exactly_one(store: Store) -> None:
    """Ten servers claiming the same nonce at once: exactly one succeeds."""
    async def claim() -> bool:
        async with store.write() as tx:
            return await tx.nonces.claim("ak", "same", at(15))

    assert sorted(await asyncio.gather(*(claim() for _ in range(10)))) == [False] * 9 + [True]


# --- commands ------------------------------------------------------------------------------------

async def test_command_round_trip(store: Store) -> None:
    """A command reads back equal to what was stored, binary content (every byte value) and
    microsecond-precise, UTC-aware creation time included."""
    alice = await new_account(store)
    command = replace(make_command(alice, "c-1", name="名前 with 'quotes'", description="desc %_\\",
                                   type=CommandType.RUN_POWERSHELL_SCRIPT, content=EVERY_BYTE * 3,
                                   resource_group_id="rg-1", created=at(5)), enable_parameter=False,
                      invoke_times=7, timeout=86_400)
    async with store.write() as tx:
        await tx.commands.insert(command)
    async with store.read() as tx:
        got = await tx.commands.get(alice, REGION, "c-1")
    assert got == command
    assert got is not None
    assert got.creation_time.tzinfo is not None
    assert got.creation_time.utcoffset() == timedelta(0)


async def test_command_get_is_scoped_to_account_and_region(store: Store) -> None:
    """get() finds a command only under its own account and region."""
    alice, bob = await new_account(store, "alice"), await new_account(store, "bob")
    async with store.write() as tx:
        await tx.commands.insert(make_command(alice, "c-1"))
    async with store.read() as tx:
        assert await tx.commands.get(alice, REGION, "c-1") is not None
        assert await tx.commands.get(bob, REGION, "c-1") is None
        assert await tx.commands.get(alice, OTHER_REGION, "c-1") is None
        assert await tx.commands.get(alice, REGION, "c-2") is None


async def test_hidden_command_is_found_only_when_asked_and_never_listed(store: Store) -> None:
    """A hidden command (kept=False, RunCommand without KeepCommand) is found by get(hidden=True) only,
    and is neither listed nor counted, not even when asked for by id."""
    alice = await new_account(store)
    async with store.write() as tx:
        await tx.commands.insert(make_command(alice, "c-kept", name="deploy"))
        await tx.commands.insert(make_command(alice, "c-hidden", name="deploy", kept=False))
    async with store.read() as tx:
        assert await tx.commands.get(alice, REGION, "c-hidden") is None
        hidden = await tx.commands.get(alice, REGION, "c-hidden", hidden=True)
        assert hidden is not None
        assert hidden.kept is False
        assert [c.command_id for c in await tx.commands.list(CommandFilter(alice, REGION), 0, 10)] == ["c-kept"]
        assert await tx.commands.count(CommandFilter(alice, REGION, name="deploy")) == 1
        assert await tx.commands.count(CommandFilter(alice, REGION, command_id="c-hidden")) == 0
        assert await tx.commands.count_kept(alice, REGION) == 1


PROD, DEV, WEB, DB = Tag("env", "prod"), Tag("env", "dev"), Tag("tier", "web"), Tag("tier", "db")

#: command id -> (name, description, type, resource group, tags); created in this order, one minute apart.
COMMANDS: dict[str, tuple[str, str, CommandType, str, tuple[Tag, ...]]] = {
    "c-1": ("deploy-web", "Deploy the web tier", CommandType.RUN_SHELL_SCRIPT, "rg-1", (PROD, WEB)),
    "c-2": ("deploy-db", "Deploy the database", CommandType.RUN_SHELL_SCRIPT, "rg-2", (PROD,)),
    "c-3": ("backup", "Nightly backup", CommandType.RUN_POWERSHELL_SCRIPT, "rg-1", (DEV, WEB)),
    "c-4": ("100%_done", "percent and underscore", CommandType.RUN_BAT_SCRIPT, "", ()),
    "c-5": ("100xxdone", "", CommandType.RUN_BAT_SCRIPT, "", ()),
    "c-6": ("a_b", "", CommandType.RUN_SHELL_SCRIPT, "", ()),
    "c-7": ("axb", "", CommandType.RUN_SHELL_SCRIPT, "", ()),
    "c-8": ("back\\slash", "", CommandType.RUN_SHELL_SCRIPT, "", ()),
    "c-9": ("backXslash", "", CommandType.RUN_SHELL_SCRIPT, "", ()),
}
ALL_COMMANDS = sorted(COMMANDS, reverse=True)


async def seed_commands(store: Store) -> int:
    """COMMANDS under account alice in REGION, plus look-alikes that no filter of alice's may return:
    a hidden one, one in another region and one of another account."""
    alice, bob = await new_account(store, "alice"), await new_account(store, "bob")
    async with store.write() as tx:
        for i, (command_id, (name, description, type, group, tags)) in enumerate(COMMANDS.items()):
            await tx.commands.insert(make_command(alice, command_id, name=name, description=description, type=type,
                                                  resource_group_id=group, created=at(i)))
            await tx.tags.add(alice, "command", command_id, tags)
        await tx.commands.insert(make_command(alice, "c-hidden", name="deploy-hidden", description="Deploy hidden",
                                              resource_group_id="rg-1", created=at(50), kept=False))
        await tx.tags.add(alice, "command", "c-hidden", (PROD, WEB))
        await tx.commands.insert(make_command(alice, "c-region", name="deploy-web", description="Deploy the web tier",
                                              resource_group_id="rg-1", created=at(51), region_id=OTHER_REGION))
        await tx.tags.add(alice, "command", "c-region", (PROD, WEB))
        await tx.commands.insert(make_command(bob, "c-bob", name="deploy-web", description="Deploy the web tier",
                                              resource_group_id="rg-1", created=at(52)))
        await tx.tags.add(bob, "command", "c-bob", (PROD, WEB))
    return alice


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({}, ALL_COMMANDS, id="no-filter"),
    pytest.param({"command_id": "c-2"}, ["c-2"], id="command-id"),
    pytest.param({"command_id": "c-404"}, [], id="command-id-unknown"),
    pytest.param({"type": "RunBatScript"}, ["c-5", "c-4"], id="type"),
    pytest.param({"type": "RunPowerShellScript"}, ["c-3"], id="type-other"),
    pytest.param({"name": "deploy-web"}, ["c-1"], id="name-exact"),
    pytest.param({"name": "deploy"}, [], id="name-without-star-is-not-a-prefix"),
    pytest.param({"name": "deploy*"}, ["c-2", "c-1"], id="name-prefix"),
    pytest.param({"name": "*"}, ALL_COMMANDS, id="name-star-alone"),
    pytest.param({"name": "100%_done"}, ["c-4"], id="name-percent-underscore-literal"),
    pytest.param({"name": "100%*"}, ["c-4"], id="name-percent-literal-in-prefix"),
    pytest.param({"name": "100*"}, ["c-5", "c-4"], id="name-prefix-of-both"),
    pytest.param({"name": "a_b"}, ["c-6"], id="name-underscore-literal"),
    pytest.param({"name": "a_*"}, ["c-6"], id="name-underscore-literal-in-prefix"),
    pytest.param({"name": "%"}, [], id="name-percent-alone-is-literal"),
    pytest.param({"name": "_xb"}, [], id="name-underscore-is-not-a-wildcard"),
    pytest.param({"name": "back\\slash"}, ["c-8"], id="name-backslash-literal"),
    pytest.param({"name": "back\\*"}, ["c-8"], id="name-backslash-in-prefix"),
    pytest.param({"description": "Deploy the database"}, ["c-2"], id="description-exact"),
    pytest.param({"description": "Deploy*"}, ["c-2", "c-1"], id="description-prefix"),
    pytest.param({"description": "percent*"}, ["c-4"], id="description-prefix-other"),
    pytest.param({"resource_group_id": "rg-1"}, ["c-3", "c-1"], id="resource-group"),
    pytest.param({"tags": (PROD,)}, ["c-2", "c-1"], id="one-tag"),
    pytest.param({"tags": (PROD, WEB)}, ["c-1"], id="two-tags-all-required"),
    pytest.param({"tags": (WEB, DEV)}, ["c-3"], id="two-tags-other"),
    pytest.param({"tags": (PROD, DB)}, [], id="tags-none-has-all"),
    pytest.param({"tags": (Tag("env", "PROD"),)}, [], id="tag-value-must-match"),
    pytest.param({"name": "deploy*", "resource_group_id": "rg-2"}, ["c-2"], id="combined"),
    pytest.param({"name": "deploy*", "type": "RunBatScript"}, [], id="combined-empty"),
])
async def test_command_filters(store: Store, fields: dict[str, Any], expected: list[str]) -> None:
    """Every CommandFilter field selects exactly the matching kept commands of the account and region,
    newest first, and count() agrees; `*` is the only wildcard (`%`, `_` and `\\` are literal)."""
    alice = await seed_commands(store)
    f = CommandFilter(alice, REGION, **fields)
    async with store.read() as tx:
        assert [c.command_id for c in await tx.commands.list(f, 0, 100)] == expected
        assert await tx.commands.count(f) == len(expected)


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({"name": "DEPLOY-WEB"}, [], id="name-exact"),
    pytest.param({"name": "Deploy*"}, [], id="name-prefix"),
    pytest.param({"description": "deploy the database"}, [], id="description-exact"),
    pytest.param({"name": "BACKUP"}, [], id="name-other"),
])
async def test_command_name_and_description_match_case(store: Store, fields: dict[str, Any],
                                                        expected: list[str]) -> None:
    """Name and Description filters compare case-sensitively on both engines: without `*` the match is
    exact, and a prefix must match in case too (PostgreSQL's LIKE already does; SQLite's must as well)."""
    alice = await seed_commands(store)
    f = CommandFilter(alice, REGION, **fields)
    async with store.read() as tx:
        assert [c.command_id for c in await tx.commands.list(f, 0, 100)] == expected
        assert await tx.commands.count(f) == len(expected)


async def test_command_listing_is_newest_first_with_offset_paging(store: Store) -> None:
    """Commands list newest first (ties by id, descending); offset/limit pages concatenate to the whole
    listing and the count ignores paging."""
    alice = await new_account(store)
    async with store.write() as tx:
        for i in range(7):
            await tx.commands.insert(make_command(alice, f"c-{i}", created=at(i)))
        await tx.commands.insert(make_command(alice, "c-tie-a", created=at(3)))
        await tx.commands.insert(make_command(alice, "c-tie-b", created=at(3)))
    f = CommandFilter(alice, REGION)
    async with store.read() as tx:
        whole = [c.command_id for c in await tx.commands.list(f, 0, 100)]
        pages = [[c.command_id for c in await tx.commands.list(f, offset, 3)] for offset in (0, 3, 6, 9)]
        assert await tx.commands.count(f) == 9
    assert whole == ["c-6", "c-5", "c-4", "c-tie-b", "c-tie-a", "c-3", "c-2", "c-1", "c-0"]
    assert pages == [whole[0:3], whole[3:6], whole[6:9], []]


async def test_command_update_count_invocation_and_delete(store: Store) -> None:
    """update() changes the given fields, count_invocation() adds one to InvokeTimes, delete() removes it."""
    alice = await new_account(store)
    async with store.write() as tx:
        await tx.commands.insert(make_command(alice, "c-1", name="old"))
        await tx.commands.update("c-1", name="new", description="changed", kept=True)
        await tx.commands.count_invocation("c-1")
        await tx.commands.count_invocation("c-1")
    async with store.read() as tx:
        got = await tx.commands.get(alice, REGION, "c-1")
        assert got is not None
        assert (got.name, got.description, got.invoke_times) == ("new", "changed", 2)
    async with store.write() as tx:
        await tx.commands.delete("c-1")
    async with store.read() as tx:
        assert await tx.commands.get(alice, REGION, "c-1", hidden=True) is None


# --- invocations ---------------------------------------------------------------------------------

async def test_invocation_round_trip(store: Store) -> None:
    """An invocation reads back equal to what was stored: binary content, parameters (unicode included),
    enums and times."""
    alice = await new_account(store)
    inv = replace(make_invocation(alice, "t-1", content=EVERY_BYTE, repeat_mode=RepeatMode.PERIOD,
                                  command_type=CommandType.RUN_BAT_SCRIPT, resource_group_id="rg-9",
                                  parameters={"name": "Jack", "greeting": "你好 \"quoted\" \\ {{x}}"},
                                  created=at(3)),
                  termination_mode=TerminationMode.PROCESS, container_id="cid", container_name="box",
                  windows_password_name="pw", launcher="cmd /c")
    async with store.write() as tx:
        await add_task(tx, inv, [("i-1", S.PENDING)])
    async with store.read() as tx:
        assert await tx.invocations.get(alice, REGION, "t-1") == inv
        assert await tx.invocations.get(alice, OTHER_REGION, "t-1") is None


async def test_invocation_status_and_stop_time(store: Store) -> None:
    """set_status stores the roll-up and its legacy twin (filterable); set_stop_time records only the first
    stop."""
    alice = await new_account(store)
    async with store.write() as tx:
        await add_task(tx, make_invocation(alice, "t-1"), [("i-1", S.PENDING)])
        await tx.invocations.set_status("t-1", TaskStatus.STOPPED, "Stopped")
        await tx.invocations.set_stop_time("t-1", at(1))
        await tx.invocations.set_stop_time("t-1", at(2))
    async with store.read() as tx:
        got = await tx.invocations.get(alice, REGION, "t-1")
        assert got is not None
        assert got.stop_time == at(1)
        f = InvocationFilter(alice, REGION, T0, statuses=frozenset({"Stopped"}), invoke_statuses=frozenset({"Stopped"}))
        assert [inv.invoke_id for _, inv in await tx.invocations.list(f, 0, 10)] == ["t-1"]


async def seed_tasks(store: Store) -> tuple[int, dict[str, int]]:
    """Tasks of alice in REGION (t-old is 30 days older than the rest), plus look-alikes of another
    region and another account; returns alice's id and the seq of each of her tasks."""
    alice, bob = await new_account(store, "alice"), await new_account(store, "bob")
    seqs: dict[str, int] = {}
    async with store.write() as tx:
        seqs["t-old"] = await add_task(
            tx, make_invocation(alice, "t-old", created=T0 - timedelta(days=30)), [("i-1", S.SUCCESS)],
            status=TaskStatus.SUCCESS, invoke_status="Finished", tags=(PROD,))
        seqs["t-1"] = await add_task(
            tx, make_invocation(alice, "t-1", command_id="c-1", command_name="deploy", resource_group_id="rg-1",
                                created=at(1)),
            [("i-1", S.SUCCESS), ("i-2", S.FAILED)], status=TaskStatus.PARTIAL_FAILED,
            invoke_status="PartialFailed", tags=(PROD,))
        seqs["t-2"] = await add_task(
            tx, make_invocation(alice, "t-2", command_id="c-1", command_name="deploy", resource_group_id="rg-2",
                                repeat_mode=RepeatMode.PERIOD, created=at(2)),
            [("i-2", S.RUNNING)], status=TaskStatus.RUNNING, invoke_status="Running", tags=(PROD, WEB))
        seqs["t-3"] = await add_task(
            tx, make_invocation(alice, "t-3", command_id="c-2", command_name="backup", resource_group_id="rg-1",
                                command_type=CommandType.RUN_POWERSHELL_SCRIPT,
                                repeat_mode=RepeatMode.NEXT_REBOOT_ONLY, created=at(3)),
            [("i-3", S.INVALID)], status=TaskStatus.FAILED, invoke_status="Failed", tags=(DEV, WEB))
        seqs["t-4"] = await add_task(
            tx, make_invocation(alice, "t-4", command_id="c-3", command_name="cleanup",
                                command_type=CommandType.RUN_BAT_SCRIPT, repeat_mode=RepeatMode.EVERY_REBOOT,
                                created=at(4)),
            [("i-1", S.CANCELLED)], status=TaskStatus.STOPPED, invoke_status="Stopped")
        await add_task(tx, make_invocation(alice, "t-region", command_id="c-1", region_id=OTHER_REGION,
                                           created=at(5)), [("i-1", S.SUCCESS)], tags=(PROD, WEB))
        await add_task(tx, make_invocation(bob, "t-bob", command_id="c-1", created=at(6)), [("i-1", S.SUCCESS)],
                       tags=(PROD, WEB))
    return alice, seqs


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({}, ["t-4", "t-3", "t-2", "t-1"], id="no-filter"),
    pytest.param({"not_before": T0 - timedelta(days=60)}, ["t-4", "t-3", "t-2", "t-1", "t-old"],
                 id="wider-retention-window"),
    pytest.param({"not_before": at(2.5)}, ["t-4", "t-3"], id="narrower-retention-window"),
    pytest.param({"invoke_id": "t-2"}, ["t-2"], id="invoke-id"),
    pytest.param({"invoke_id": "t-old"}, [], id="invoke-id-outside-window"),
    pytest.param({"command_id": "c-1"}, ["t-2", "t-1"], id="command-id"),
    pytest.param({"command_type": "RunPowerShellScript"}, ["t-3"], id="command-type"),
    pytest.param({"command_name": "cleanup"}, ["t-4"], id="command-name"),
    pytest.param({"instance_id": "i-1"}, ["t-4", "t-1"], id="instance-id"),
    pytest.param({"instance_id": "i-2"}, ["t-2", "t-1"], id="instance-id-other"),
    pytest.param({"instance_id": "i-404"}, [], id="instance-id-unknown"),
    pytest.param({"statuses": frozenset({"Running", "Failed"})}, ["t-3", "t-2"], id="statuses"),
    pytest.param({"statuses": frozenset()}, [], id="statuses-empty-set"),
    pytest.param({"invoke_statuses": frozenset({"PartialFailed"})}, ["t-1"], id="invoke-statuses"),
    pytest.param({"repeat_modes": frozenset({"Period", "EveryReboot"})}, ["t-4", "t-2"], id="repeat-modes"),
    pytest.param({"resource_group_id": "rg-1"}, ["t-3", "t-1"], id="resource-group"),
    pytest.param({"tags": (PROD,)}, ["t-2", "t-1"], id="one-tag"),
    pytest.param({"tags": (PROD, WEB)}, ["t-2"], id="all-tags-required"),
    pytest.param({"tags": (WEB,)}, ["t-3", "t-2"], id="other-tag"),
    pytest.param({"tags": (DEV, PROD)}, [], id="tags-none-has-all"),
    pytest.param({"command_id": "c-1", "instance_id": "i-1"}, ["t-1"], id="combined"),
])
async def test_invocation_filters(store: Store, fields: dict[str, Any], expected: list[str]) -> None:
    """Every InvocationFilter field selects exactly the matching tasks of the account and region inside the
    retention window, newest first, and count() agrees."""
    alice, _ = await seed_tasks(store)
    f = InvocationFilter(**{"account_id": alice, "region_id": REGION, "not_before": T0, **fields})
    async with store.read() as tx:
        assert [inv.invoke_id for _, inv in await tx.invocations.list(f, 0, 100)] == expected
        assert await tx.invocations.count(f) == len(expected)


async def test_invocation_before_seq(store: Store) -> None:
    """before_seq keeps only tasks numbered below it, and list() returns each task's seq."""
    alice, seqs = await seed_tasks(store)
    f = InvocationFilter(alice, REGION, T0, before_seq=seqs["t-3"])
    async with store.read() as tx:
        assert [(seq, inv.invoke_id) for seq, inv in await tx.invocations.list(f, 0, 100)] == [
            (seqs["t-2"], "t-2"), (seqs["t-1"], "t-1")]
        assert await tx.invocations.count(f) == 2


async def test_invocations_page_by_offset_and_by_seq(store: Store) -> None:
    """Tasks list newest first (by seq, even when clocks disagree); offset pages and keyset pages
    (before_seq = the last seq seen) both walk the whole listing exactly once."""
    alice = await new_account(store)
    async with store.write() as tx:
        for i in range(8):
            # creation times deliberately out of order: the listing order is the sequence, not the clock
            await add_task(tx, make_invocation(alice, f"t-{i}", created=at(10 - i % 3)), [("i-1", S.SUCCESS)])
    base = InvocationFilter(alice, REGION, T0)
    async with store.read() as tx:
        whole = [inv.invoke_id for _, inv in await tx.invocations.list(base, 0, 100)]
        by_offset = [inv.invoke_id for offset in (0, 3, 6) for _, inv in await tx.invocations.list(base, offset, 3)]
        by_seq: list[str] = []
        before: int | None = None
        while True:
            page = await tx.invocations.list(replace(base, before_seq=before), 0, 3)
            if not page:
                break
            by_seq += [inv.invoke_id for _, inv in page]
            before = page[-1][0]
    assert whole == [f"t-{i}" for i in reversed(range(8))]
    assert by_offset == whole
    assert by_seq == whole


async def test_invocation_retention_hides_older_tasks(store: Store) -> None:
    """not_before hides tasks created before it from list() and count() alike."""
    alice = await new_account(store)
    async with store.write() as tx:
        await add_task(tx, make_invocation(alice, "t-old", created=at(-1)), [("i-1", S.SUCCESS)])
        await add_task(tx, make_invocation(alice, "t-new", created=at(1)), [("i-1", S.SUCCESS)])
    async with store.read() as tx:
        f = InvocationFilter(alice, REGION, T0)
        assert [inv.invoke_id for _, inv in await tx.invocations.list(f, 0, 10)] == ["t-new"]
        assert await tx.invocations.count(f) == 1
        assert await tx.invocations.count(replace(f, not_before=at(-2))) == 2


# --- execution records ---------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({}, [("t-4", "i-1"), ("t-3", "i-3"), ("t-2", "i-2"), ("t-1", "i-2"), ("t-1", "i-1")],
                 id="no-filter"),
    pytest.param({"not_before": T0 - timedelta(days=60)},
                 [("t-4", "i-1"), ("t-3", "i-3"), ("t-2", "i-2"), ("t-1", "i-2"), ("t-1", "i-1"), ("t-old", "i-1")],
                 id="wider-retention-window"),
    pytest.param({"invoke_id": "t-1"}, [("t-1", "i-2"), ("t-1", "i-1")], id="invoke-id"),
    pytest.param({"instance_id": "i-2"}, [("t-2", "i-2"), ("t-1", "i-2")], id="instance-id"),
    pytest.param({"command_id": "c-1"}, [("t-2", "i-2"), ("t-1", "i-2"), ("t-1", "i-1")], id="command-id"),
    pytest.param({"statuses": frozenset({S.SUCCESS, S.CANCELLED})}, [("t-4", "i-1"), ("t-1", "i-1")],
                 id="statuses"),
    pytest.param({"statuses": frozenset({S.TIMEOUT})}, [], id="statuses-none-match"),
    pytest.param({"tags": (PROD,)}, [("t-2", "i-2"), ("t-1", "i-2"), ("t-1", "i-1")], id="one-tag"),
    pytest.param({"tags": (PROD, WEB)}, [("t-2", "i-2")], id="all-tags-required"),
    pytest.param({"invoke_id": "t-1", "instance_id": "i-1"}, [("t-1", "i-1")], id="combined"),
])
async def test_result_filters(store: Store, fields: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """Every ResultFilter field selects exactly the matching execution records of the account and region
    inside the retention window, newest first, and count() agrees."""
    alice, _ = await seed_tasks(store)
    f = ResultFilter(**{"account_id": alice, "region_id": REGION, "not_before": T0, "min_seq": 0, **fields})
    async with store.read() as tx:
        assert [(r.invoke_id, r.instance_id) for _, r in await tx.results.list(f, 0, 100)] == expected
        assert await tx.results.count(f) == len(expected)


async def test_result_retention_fields_hide_records(store: Store) -> None:
    """The retention window hides records: min_seq keeps only records numbered above it (retention by
    count), not_before only those created since (retention by age); list() and count() agree."""
    alice, seqs = await seed_tasks(store)
    base = ResultFilter(alice, REGION, T0 - timedelta(days=60), 0)
    async with store.read() as tx:
        assert await tx.results.count(base) == 6
        by_count = replace(base, min_seq=seqs["t-3"])  # t-3's own result is seq t-3 + 1
        assert [(r.invoke_id, r.instance_id) for _, r in await tx.results.list(by_count, 0, 100)] == [
            ("t-4", "i-1"), ("t-3", "i-3")]
        assert await tx.results.count(by_count) == 2
        by_age = replace(base, not_before=at(2))
        assert [r.invoke_id for _, r in await tx.results.list(by_age, 0, 100)] == ["t-4", "t-3", "t-2"]
        assert await tx.results.count(by_age) == 3
        both = replace(base, not_before=at(2), min_seq=seqs["t-4"])
        assert [r.invoke_id for _, r in await tx.results.list(both, 0, 100)] == ["t-4"]
        everything_hidden = replace(base, min_seq=seqs["t-4"] + 1)
        assert await tx.results.list(everything_hidden, 0, 100) == []
        assert await tx.results.count(everything_hidden) == 0


async def test_results_page_by_offset_and_by_seq(store: Store) -> None:
    """Records list newest first; offset pages and keyset pages (before_seq = last seq seen) both walk the
    whole listing exactly once, and the seqs returned strictly decrease."""
    alice = await new_account(store)
    async with store.write() as tx:
        for i in range(4):
            await add_task(tx, make_invocation(alice, f"t-{i}", created=at(i)),
                           [("i-a", S.SUCCESS), ("i-b", S.FAILED)])
    base = ResultFilter(alice, REGION, T0, 0)
    async with store.read() as tx:
        listed = await tx.results.list(base, 0, 100)
        whole = [(r.invoke_id, r.instance_id) for _, r in listed]
        by_offset = [(r.invoke_id, r.instance_id) for offset in (0, 3, 6) for _, r in
                     await tx.results.list(base, offset, 3)]
        by_seq: list[tuple[str, str]] = []
        before: int | None = None
        while page := await tx.results.list(replace(base, before_seq=before), 0, 3):
            by_seq += [(r.invoke_id, r.instance_id) for _, r in page]
            before = page[-1][0]
        assert await tx.results.count(replace(base, before_seq=listed[2][0])) == 5
    seqs = [seq for seq, _ in listed]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 8
    assert whole == [(f"t-{i}", inst) for i in reversed(range(4)) for inst in ("i-b", "i-a")]
    assert by_offset == whole
    assert by_seq == whole


@pytest.mark.parametrize("output", [
    pytest.param(EVERY_BYTE, id="every-byte"),
    pytest.param(bytes(reversed(EVERY_BYTE)) * 4, id="every-byte-reversed"),
    pytest.param(b"\x00" * 100, id="nuls"),
    pytest.param(b"\x00" + EVERY_BYTE + b"\x00", id="nul-framed"),
    pytest.param(b"\xff\xfe" + "invalid UTF-8 then text: 你好".encode(), id="invalid-utf8"),
    pytest.param(os.urandom(24 * 1024), id="random-24k"),
    pytest.param(b"", id="empty"),
])
async def test_output_bytes_round_trip(store: Store, output: bytes) -> None:
    """Output bytes, every value 0-255 included, come back exactly from list() and of_invocations(), and as
    command and invocation content."""
    alice = await new_account(store)
    async with store.write() as tx:
        await tx.commands.insert(make_command(alice, "c-1", content=output))
        await add_task(tx, make_invocation(alice, "t-1", content=output), [("i-1", S.RUNNING)])
        [(_, result)] = await tx.results.list(ResultFilter(alice, REGION, T0, 0), 0, 10)
        await tx.results.update(result.result_id, output=output, dropped=len(output), status=S.SUCCESS.value,
                                exit_code=0)
    async with store.read() as tx:
        [(_, result)] = await tx.results.list(ResultFilter(alice, REGION, T0, 0), 0, 10)
        by_task = await tx.results.of_invocations(["t-1"])
        command = await tx.commands.get(alice, REGION, "c-1")
        inv = await tx.invocations.get(alice, REGION, "t-1")
    assert result.output == output
    assert result.dropped == len(output)
    assert by_task["t-1"][0].output == output
    assert command is not None
    assert command.content == output
    assert inv is not None
    assert inv.content == output


async def test_result_update_and_of_invocations(store: Store) -> None:
    """update() changes a record's fields; of_invocations() returns every record of each task, in instance
    (creation) order, and an empty list for a task without records."""
    alice = await new_account(store)
    async with store.write() as tx:
        await add_task(tx, make_invocation(alice, "t-1"), [("i-b", S.PENDING), ("i-a", S.PENDING), ("i-c", S.PENDING)])
        await tx.invocations.insert(make_invocation(alice, "t-2"), seq=await tx.accounts.allocate_seq(alice, 1),
                                    status=TaskStatus.PENDING, invoke_status="Running")
        records = await tx.results.of_invocations(["t-1"])
        first = records["t-1"][0]
        await tx.results.update(first.result_id, status=S.TIMEOUT.value, exit_code=-1,
                                error_code=ErrorCode.EXECUTION_TIMEOUT.value, start_time=at(1), finished_time=at(2),
                                update_time=at(2), repeats=1)
    async with store.read() as tx:
        by_task = await tx.results.of_invocations(["t-1", "t-2", "t-404"])
    assert [r.instance_id for r in by_task["t-1"]] == ["i-b", "i-a", "i-c"]
    assert by_task["t-2"] == []
    assert by_task["t-404"] == []
    updated = by_task["t-1"][0]
    assert (updated.status, updated.exit_code, updated.error_code) == (S.TIMEOUT, -1, ErrorCode.EXECUTION_TIMEOUT)
    assert (updated.start_time, updated.finished_time, updated.update_time, updated.repeats) == (at(1), at(2), at(2), 1)
    assert updated.creation_time == T0
    assert updated.stop_time is None
    assert [r.status for r in by_task["t-1"][1:]] == [S.PENDING, S.PENDING]


# --- tags ----------------------------------------------------------------------------------------

async def test_tags_of_and_remove_all(store: Store) -> None:
    """of() returns each resource's tags sorted by key (empty for an untagged one); remove_all() removes one
    resource's tags only."""
    alice = await new_account(store)
    async with store.write() as tx:
        await tx.tags.add(alice, "command", "c-1", [Tag("z", "1"), Tag("a", "2")])
        await tx.tags.add(alice, "command", "c-2", [Tag("k", "")])
        await tx.tags.add(alice, "invocation", "c-1", [Tag("other-type", "x")])
        await tx.tags.add(alice, "command", "c-3", [])
    async with store.read() as tx:
        assert await tx.tags.of("command", ["c-1", "c-2", "c-3"]) == {
            "c-1": (Tag("a", "2"), Tag("z", "1")), "c-2": (Tag("k", ""),), "c-3": ()}
        assert await tx.tags.of("command", []) == {}
    async with store.write() as tx:
        await tx.tags.remove_all("command", "c-1")
    async with store.read() as tx:
        assert await tx.tags.of("command", ["c-1", "c-2"]) == {"c-1": (), "c-2": (Tag("k", ""),)}
        assert await tx.tags.of("invocation", ["c-1"]) == {"c-1": (Tag("other-type", "x"),)}


async def test_tag_filter_requires_every_tag(store: Store) -> None:
    """A tag filter selects the resources carrying every given tag with its exact value; carrying some of
    them, or the key with another value, is not enough. The same holds for commands, tasks and records."""
    alice = await new_account(store)
    tagsets = {"x-all": (PROD, WEB), "x-some": (PROD,), "x-other-value": (DEV, WEB), "x-none": ()}
    async with store.write() as tx:
        for i, (suffix, tags) in enumerate(tagsets.items()):
            await tx.commands.insert(make_command(alice, f"c{suffix}", created=at(i)))
            await tx.tags.add(alice, "command", f"c{suffix}", tags)
            await add_task(tx, make_invocation(alice, f"t{suffix}", created=at(i)), [("i-1", S.SUCCESS)], tags=tags)
    async with store.read() as tx:
        for wanted, expected in (((PROD, WEB), ["x-all"]), ((WEB, PROD), ["x-all"]), ((PROD,), ["x-some", "x-all"]),
                                 ((WEB,), ["x-other-value", "x-all"]), ((Tag("env", "test"),), [])):
            commands = await tx.commands.list(CommandFilter(alice, REGION, tags=wanted), 0, 10)
            tasks = await tx.invocations.list(InvocationFilter(alice, REGION, T0, tags=wanted), 0, 10)
            records = await tx.results.list(ResultFilter(alice, REGION, T0, 0, tags=wanted), 0, 10)
            assert [c.command_id for c in commands] == [f"c{s}" for s in expected], wanted
            assert [inv.invoke_id for _, inv in tasks] == [f"t{s}" for s in expected], wanted
            assert [r.invoke_id for _, r in records] == [f"t{s}" for s in expected], wanted


# --- isolation -----------------------------------------------------------------------------------

def make_activation(account_id: int, activation_id: str) -> Activation:
    return Activation(activation_id=activation_id, account_id=account_id, region_id=REGION, code_hash="h",
                      description="", instance_name="web", instance_count=10, registered_count=0,
                      deregistered_count=0, ip_address_range="0.0.0.0/0", time_to_live_in_hours=4,
                      resource_group_id="rg-1", creation_time=T0, disabled=False)


def make_instance(account_id: int, instance_id: str, activation_id: str) -> ManagedInstance:
    return ManagedInstance(instance_id=instance_id, account_id=account_id, region_id=REGION,
                           activation_id=activation_id, instance_name="web", hostname="host", machine_id="m-1",
                           os_type="linux", os_version="Ubuntu 24.04", agent_version="2.2", intranet_ip="10.0.0.1",
                           internet_ip="", public_key="pk", resource_group_id="rg-1", registration_time=T0,
                           last_heartbeat_time=T0, last_invoked_time=None, invocation_count=0)


async def test_account_isolation(store: Store) -> None:
    """Account B never sees account A's commands, tasks, records, activations or instances: not in any
    list or count, not by id, not by A's tag, resource group, instance or machine."""
    alice, bob = await new_account(store, "alice"), await new_account(store, "bob")
    async with store.write() as tx:
        await tx.commands.insert(make_command(alice, "c-a", name="deploy", resource_group_id="rg-1"))
        await tx.tags.add(alice, "command", "c-a", [PROD])
        await add_task(tx, make_invocation(alice, "t-a", command_id="c-a", resource_group_id="rg-1"),
                       [("mi-a", S.SUCCESS)], status=TaskStatus.SUCCESS, invoke_status="Finished", tags=[PROD])
        await tx.activations.insert(make_activation(alice, "act-a"))
        await tx.tags.add(alice, "activation", "act-a", [PROD])
        await tx.instances.insert(make_instance(alice, "mi-a", "act-a"))
        await tx.tags.add(alice, "managedinstance", "mi-a", [PROD])
        # bob has rows of his own, so an empty answer is not merely an empty database
        await tx.commands.insert(make_command(bob, "c-b", name="deploy", resource_group_id="rg-1"))
        await add_task(tx, make_invocation(bob, "t-b", command_id="c-b"), [("mi-b", S.SUCCESS)])

    command_filters = [CommandFilter(bob, REGION, command_id="c-a"), CommandFilter(bob, REGION, tags=[PROD]),
                       CommandFilter(bob, REGION, name="deploy", resource_group_id="rg-1", command_id="c-a")]
    task_filters = [InvocationFilter(bob, REGION, T0, invoke_id="t-a"), InvocationFilter(bob, REGION, T0, tags=[PROD]),
                    InvocationFilter(bob, REGION, T0, command_id="c-a"),
                    InvocationFilter(bob, REGION, T0, instance_id="mi-a"),
                    InvocationFilter(bob, REGION, T0, resource_group_id="rg-1")]
    result_filters = [ResultFilter(bob, REGION, T0, 0, invoke_id="t-a"), ResultFilter(bob, REGION, T0, 0, tags=[PROD]),
                      ResultFilter(bob, REGION, T0, 0, instance_id="mi-a"),
                      ResultFilter(bob, REGION, T0, 0, command_id="c-a")]
    async with store.read() as tx:
        assert [c.command_id for c in await tx.commands.list(CommandFilter(bob, REGION), 0, 100)] == ["c-b"]
        assert [i.invoke_id for _, i in await tx.invocations.list(InvocationFilter(bob, REGION, T0), 0, 100)] == ["t-b"]
        assert [r.invoke_id for _, r in await tx.results.list(ResultFilter(bob, REGION, T0, 0), 0, 100)] == ["t-b"]
        for cf in command_filters:
            assert await tx.commands.list(cf, 0, 100) == [], cf
            assert await tx.commands.count(cf) == 0, cf
        for tf in task_filters:
            assert await tx.invocations.list(tf, 0, 100) == [], tf
            assert await tx.invocations.count(tf) == 0, tf
        for rf in result_filters:
            assert await tx.results.list(rf, 0, 100) == [], rf
            assert await tx.results.count(rf) == 0, rf
        for af in (ActivationFilter(bob, REGION), ActivationFilter(bob, REGION, activation_id="act-a"),
                   ActivationFilter(bob, REGION, tags=[PROD])):
            assert await tx.activations.list(af, 0, 100) == [], af
            assert await tx.activations.count(af) == 0, af
        for inf in (InstanceFilter(bob, REGION), InstanceFilter(bob, REGION, instance_ids=["mi-a"]),
                    InstanceFilter(bob, REGION, tags=[PROD]), InstanceFilter(bob, REGION, machine_id="m-1"),
                    InstanceFilter(bob, REGION, activation_id="act-a")):
            assert await tx.instances.list(inf, 0, 100) == [], inf
            assert await tx.instances.count(inf) == 0, inf
        assert await tx.commands.get(bob, REGION, "c-a", hidden=True) is None
        assert await tx.invocations.get(bob, REGION, "t-a") is None
        assert await tx.activations.get("act-a", bob) is None
        assert await tx.instances.get_many(bob, REGION, ["mi-a"]) == {}
        assert await tx.commands.count_kept(bob, REGION) == 1
        assert await tx.activations.count_all(bob, REGION) == 0
        # and alice still sees her own
        assert await tx.commands.count(CommandFilter(alice, REGION, tags=[PROD])) == 1
        assert await tx.invocations.count(InvocationFilter(alice, REGION, T0, instance_id="mi-a")) == 1
        assert await tx.instances.count(InstanceFilter(alice, REGION, tags=[PROD])) == 1


# --- client tokens -------------------------------------------------------------------------------

async def test_client_token_remember_find_record(store: Store) -> None:
    """remember() claims a token once (a second claim is refused and changes nothing); find() returns the
    fingerprint and response; record() stores the final response."""
    alice = await new_account(store)
    async with store.write() as tx:
        assert await tx.tokens.find(alice, "RunCommand", "tok-1") is None
        assert await tx.tokens.remember(alice, "RunCommand", "tok-1", "fp-1", "", T0)
        assert not await tx.tokens.remember(alice, "RunCommand", "tok-1", "fp-2", "other", at(1))
        assert await tx.tokens.find(alice, "RunCommand", "tok-1") == ("fp-1", "")
    async with store.write() as tx:
        await tx.tokens.record(alice, "RunCommand", "tok-1", '{"InvokeId": "t-1"}')
    async with store.read() as tx:
        assert await tx.tokens.find(alice, "RunCommand", "tok-1") == ("fp-1", '{"InvokeId": "t-1"}')


async def test_client_token_is_scoped_by_account_and_action(store: Store) -> None:
    """The same token string is a different token for another account or another action."""
    alice, bob = await new_account(store, "alice"), await new_account(store, "bob")
    async with store.write() as tx:
        assert await tx.tokens.remember(alice, "RunCommand", "tok", "fp-a", "ra", T0)
        assert await tx.tokens.remember(bob, "RunCommand", "tok", "fp-b", "rb", T0)
        assert await tx.tokens.remember(alice, "InvokeCommand", "tok", "fp-c", "rc", T0)
        await tx.tokens.record(alice, "RunCommand", "tok", "ra2")
    async with store.read() as tx:
        assert await tx.tokens.find(alice, "RunCommand", "tok") == ("fp-a", "ra2")
        assert await tx.tokens.find(bob, "RunCommand", "tok") == ("fp-b", "rb")
        assert await tx.tokens.find(alice, "InvokeCommand", "tok") == ("fp-c", "rc")
        assert await tx.tokens.find(bob, "InvokeCommand", "tok") is None


async def test_concurrent_remember_admits_one_claim(store: Store) -> None:
    """Ten retries of a request with the same ClientToken at once: exactly one claims it."""
    alice = await new_account(store)

    async def remember(i: int) -> bool:
        async with store.write() as tx:
            return await tx.tokens.remember(alice, "RunCommand", "tok", f"fp-{i}", "", T0)

    assert sorted(await asyncio.gather(*(remember(i) for i in range(10)))) == [False] * 9 + [True]


# --- transactions --------------------------------------------------------------------------------

class Boom(Exception):
    pass


async def _write_then_fail(store: Store, account_id: int) -> None:
    async with store.write() as tx:
        await tx.accounts.allocate_seq(account_id, 5)
        await tx.commands.insert(make_command(account_id, "c-doomed"))
        await tx.tags.add(account_id, "command", "c-doomed", [PROD])
        await add_task(tx, make_invocation(account_id, "t-doomed"), [("i-1", S.PENDING)])
        await tx.nonces.claim("ak", "n-doomed", at(15))
        await tx.tokens.remember(account_id, "RunCommand", "tok", "fp", "", T0)
        await tx.accounts.ensure("doomed", T0)
        raise Boom


async def _insert_twice(store: Store, account_id: int) -> None:
    async with store.write() as tx:
        await tx.accounts.allocate_seq(account_id, 5)
        await tx.commands.insert(make_command(account_id, "c-doomed"))
        await tx.nonces.claim("ak", "n-doomed", at(15))
        await tx.commands.insert(make_command(account_id, "c-existing"))  # primary key taken


async def _assert_nothing_left(store: Store, account_id: int) -> None:
    async with store.write() as tx:
        assert await tx.accounts.current_seq(account_id) == 0
        assert await tx.accounts.find("doomed") is None
        assert await tx.commands.get(account_id, REGION, "c-doomed", hidden=True) is None
        assert await tx.tags.of("command", ["c-doomed"]) == {"c-doomed": ()}
        assert await tx.invocations.get(account_id, REGION, "t-doomed") is None
        assert await tx.results.of_invocations(["t-doomed"]) == {"t-doomed": []}
        assert await tx.tokens.find(account_id, "RunCommand", "tok") is None
        assert await tx.nonces.claim("ak", "n-doomed", at(15))  # the nonce was never recorded


async def test_write_that_raises_leaves_nothing_behind(store: Store) -> None:
    """A write transaction whose body raises is rolled back whole: no row, sequence number, nonce or token
    it wrote survives, and the exception reaches the caller unchanged."""
    alice = await new_account(store)
    with pytest.raises(Boom):
        await _write_then_fail(store, alice)
    await _assert_nothing_left(store, alice)


async def test_write_that_violates_a_key_leaves_nothing_behind(store: Store) -> None:
    """A write transaction failing on a duplicate primary key raises IntegrityError (not a 503) and none of
    its earlier writes survive; the row that was there before is untouched."""
    alice = await new_account(store)
    async with store.write() as tx:
        await tx.commands.insert(make_command(alice, "c-existing", name="original"))
    with pytest.raises(IntegrityError):
        await _insert_twice(store, alice)
    await _assert_nothing_left(store, alice)
    async with store.read() as tx:
        existing = await tx.commands.get(alice, REGION, "c-existing")
        assert existing is not None
        assert existing.name == "original"


async def test_read_transaction_sees_only_committed_writes(store: Store) -> None:
    """A reader never sees the rows of a write transaction that has not committed yet."""
    alice = await new_account(store)
    async with store.write() as tx:
        await tx.commands.insert(make_command(alice, "c-1"))
        async with store.read() as reader:
            assert await reader.commands.get(alice, REGION, "c-1") is None
    async with store.read() as reader:
        assert await reader.commands.get(alice, REGION, "c-1") is not None
