"""Our agent's SendFile writer: atomic, exact mode and owner from the first byte, every documented result code,
reports shaped as the official agent's, and never the same task twice (the journal)."""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import pwd
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cloudassist.agent import sendfile
from cloudassist.agent.journal import Journal
from cloudassist.agent.runner import Agent
from cloudassist.agent.sendfile import FileOrder, handle, report, write_file
from cloudassist.domain.files import AgentCode

A = AgentCode
ROOT = os.geteuid() == 0
ME = pwd.getpwuid(os.geteuid()).pw_name
MY_GROUP = grp.getgrgid(os.getegid()).gr_name


def entry(directory: Path, name: str = "app.conf", data: bytes = b"x=1\n", **task: Any) -> dict[str, Any]:
    content = base64.b64encode(data).decode()
    return {
        "task": {
            "content": content,
            "contentType": "PlainText",
            "destination": str(directory),
            "group": MY_GROUP,
            "mode": "0644",
            "name": name,
            "overwrite": False,
            "owner": ME,
            "signature": hashlib.md5(content.encode(), usedforsecurity=False).hexdigest(),
            "taskID": "f-hz0000000000000000000a",
            "timeout": 60,
            **task,
        },
        "output": {"interval": 1000, "logQuota": 24576, "skipEmpty": True, "sendStart": True},
    }


def order(directory: Path, **kw: Any) -> FileOrder:
    return FileOrder.parse(entry(directory, **kw))


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_the_file_is_written_with_its_mode_in_a_directory_made_on_the_way(tmp_path: Path) -> None:
    target_dir = tmp_path / "a" / "b"
    assert write_file(order(target_dir, mode="0600", data=b"secret\n")) is A.SUCCESS
    written = target_dir / "app.conf"
    assert written.read_bytes() == b"secret\n"
    info = written.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid())
    assert leftovers(target_dir) == []


@pytest.mark.parametrize("mode", ["755", "0640", "0400", "1777", "0000"])
def test_the_mode_is_exactly_the_one_asked_for_whatever_the_umask(tmp_path: Path, mode: str) -> None:
    old = os.umask(0o077)
    try:
        assert write_file(order(tmp_path, mode=mode)) is A.SUCCESS
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "app.conf").stat().st_mode) == int(mode, 8)


def test_the_file_never_has_looser_rights_than_asked_and_is_final_before_it_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp file is created no more open than the final mode, is owner-only while its content is written,
    and gets the final mode once the content is on disk (the official agent writes 0644 first and chmods
    after)."""
    created: list[int] = []
    at_sync: list[int] = []
    real_open, real_fsync = os.open, os.fsync

    def spy_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if str(path).endswith(".tmp"):
            created.append(mode)
        return real_open(path, flags, mode, **kw)

    def spy_fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            at_sync.append(stat.S_IMODE(info.st_mode))
        real_fsync(fd)

    monkeypatch.setattr(sendfile.os, "open", spy_open)
    monkeypatch.setattr(sendfile.os, "fsync", spy_fsync)
    assert write_file(order(tmp_path, mode="0600")) is A.SUCCESS
    assert created, "the temp file was never created"
    assert all(m & ~0o600 == 0 for m in created), created
    assert at_sync == [0o600, 0o600]  # the content, then the final mode


def test_an_existing_file_is_kept_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_bytes(b"old")
    assert write_file(order(tmp_path, data=b"new")) is A.FILE_ALREADY_EXIST
    assert (tmp_path / "app.conf").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_the_file_atomically_with_the_new_mode(tmp_path: Path) -> None:
    target = tmp_path / "app.conf"
    target.write_bytes(b"old")
    target.chmod(0o666)
    before = target.stat().st_ino
    assert write_file(order(tmp_path, data=b"new", overwrite=True, mode="0640")) is A.SUCCESS
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != before  # a new file renamed over the old one, never rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_a_symlink_not_what_it_points_to(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"keep me")
    (tmp_path / "app.conf").symlink_to(elsewhere)
    assert write_file(order(tmp_path, data=b"new", overwrite="true")) is A.SUCCESS
    assert elsewhere.read_bytes() == b"keep me"
    assert not (tmp_path / "app.conf").is_symlink()


def test_a_directory_in_the_way_is_a_create_failure(tmp_path: Path) -> None:
    (tmp_path / "app.conf").mkdir()
    assert write_file(order(tmp_path, overwrite=True)) is A.FILE_CREATE_FAIL


def test_a_wrong_signature_writes_nothing(tmp_path: Path) -> None:
    assert write_file(order(tmp_path, signature="0" * 32)) is A.INVALID_SIGNATURE
    assert not (tmp_path / "app.conf").exists()


def test_the_signature_is_compared_without_regard_to_case(tmp_path: Path) -> None:
    content = base64.b64encode(b"x").decode()
    upper = hashlib.md5(content.encode(), usedforsecurity=False).hexdigest().upper()
    assert write_file(order(tmp_path, data=b"x", signature=upper)) is A.SUCCESS


def test_content_that_is_not_base64_is_invalid_content(tmp_path: Path) -> None:
    bad = "not base64!"
    signed = hashlib.md5(bad.encode(), usedforsecurity=False).hexdigest()
    assert write_file(order(tmp_path, content=bad, signature=signed)) is A.INVALID_CONTENT


def test_empty_content_is_empty_content(tmp_path: Path) -> None:
    assert write_file(order(tmp_path, content="")) is A.EMPTY_CONTENT


@pytest.mark.parametrize("name", ["", ".", "..", "../escape", "a/b"])
def test_a_name_that_is_not_a_plain_file_name_is_an_invalid_path(tmp_path: Path, name: str) -> None:
    assert write_file(order(tmp_path / "d", name=name)) is A.INVALID_FILE_PATH
    assert not (tmp_path / "escape").exists()


def test_a_relative_destination_or_one_that_is_a_file_is_an_invalid_path(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    assert write_file(order(tmp_path / "plain")) is A.INVALID_FILE_PATH
    assert write_file(FileOrder.parse(entry(Path("relative/dir")))) is A.INVALID_FILE_PATH


def test_a_directory_that_cannot_be_made_is_create_dir_failed(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    assert write_file(order(tmp_path / "plain" / "sub")) is A.CREATE_DIR_FAILED


@pytest.mark.parametrize("mode", ["99", "0o644", "12345", "64", "0a44"])
def test_a_mode_that_is_not_three_or_four_octal_digits_is_invalid(tmp_path: Path, mode: str) -> None:
    assert write_file(order(tmp_path, mode=mode)) is A.INVALID_FILE_MODE
    assert not (tmp_path / "app.conf").exists()


def test_an_unknown_owner_or_group_writes_nothing(tmp_path: Path) -> None:
    assert write_file(order(tmp_path, owner="no-such-user-x")) is A.INVALID_UID
    assert write_file(order(tmp_path, group="no-such-group-x")) is A.INVALID_GID
    assert not (tmp_path / "app.conf").exists()


@pytest.mark.skipif(not ROOT, reason="only root may give a file to another user")
def test_as_root_the_file_belongs_to_the_owner_and_group_asked_for(tmp_path: Path) -> None:
    other = pwd.getpwnam("nobody")
    group = grp.getgrgid(other.pw_gid)
    assert write_file(order(tmp_path, owner="nobody", group=group.gr_name, mode="4750")) is A.SUCCESS
    info = (tmp_path / "app.conf").stat()
    assert (info.st_uid, info.st_gid) == (other.pw_uid, group.gr_gid)
    assert stat.S_IMODE(info.st_mode) == 0o4750  # the set-id bit survives: chmod comes after chown


@pytest.mark.skipif(ROOT, reason="as root every chown succeeds; this checks the refusal a normal user gets")
def test_as_a_normal_user_giving_the_file_away_is_a_chown_error(tmp_path: Path) -> None:
    assert write_file(order(tmp_path, owner="root", group=MY_GROUP)) is A.CHOWN_ERROR
    assert not (tmp_path / "app.conf").exists()


def test_reports_are_shaped_as_the_official_agent_sends_them(tmp_path: Path) -> None:
    o = order(tmp_path, name="n.txt", mode="99")
    assert report(o, A.SUCCESS) == (
        "finish", {"taskId": o.task_id, "status": "Success", "taskType": "sendfile", "errorcode": "0"})
    assert report(o, A.CREATE_DIR_FAILED) == (
        "finish", {"taskId": o.task_id, "status": "Failed", "taskType": "sendfile", "errorcode": "4"})
    assert report(o, A.FILE_ALREADY_EXIST) == (
        "invalid", {"taskId": o.task_id, "taskType": "sendfile", "param": "FileExist", "value": "n.txt"})
    assert report(o, A.INVALID_FILE_MODE)[1]["param"] == "InvalidFileMode"
    assert report(o, A.INVALID_FILE_MODE)[1]["value"] == "99"
    assert report(o, A.INVALID_UID)[1]["param"] == "FileOwnerNotExist"
    assert report(o, A.INVALID_GID)[1]["param"] == "FileGroupNotExist"
    assert report(o, A.EMPTY_CONTENT)[1]["param"] == "EmptyFile"


class Puts:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, str], bytes, bool]] = []

    def __call__(self, kind: str, query: dict[str, str], body: bytes, *, final: bool) -> bool:
        self.items.append((kind, query, body, final))
        return True


def test_a_task_is_written_once_even_when_listed_again_or_after_a_restart(tmp_path: Path) -> None:
    puts = Puts()
    target = tmp_path / "out"
    journal = Journal(tmp_path / "journal")
    assert handle(entry(target, overwrite=True), journal, puts) is A.SUCCESS
    (target / "app.conf").write_bytes(b"changed by the user")
    assert handle(entry(target, overwrite=True), journal, puts) is None  # listed again before the report landed
    assert handle(entry(target, overwrite=True), Journal(tmp_path / "journal"), puts) is None  # a new process
    assert (target / "app.conf").read_bytes() == b"changed by the user"
    assert [(k, q["status"], final) for k, q, _, final in puts.items] == [("finish", "Success", True)]
    saved = journal.get("f-hz0000000000000000000a", sendfile.JOURNAL_VERSION)
    assert saved is not None
    assert saved.state == "done"


def test_a_255_byte_name_is_written(tmp_path: Path) -> None:
    name = "é" * 127 + "x"  # 255 bytes in UTF-8
    assert write_file(order(tmp_path, name=name)) is A.SUCCESS
    assert (tmp_path / name).read_bytes() == b"x=1\n"


def test_an_unexpected_failure_is_reported_as_a_create_failure(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(order: FileOrder) -> AgentCode:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sendfile, "write_file", boom)
    puts = Puts()
    assert handle(entry(tmp_path), Journal(tmp_path / "journal"), puts) is A.FILE_CREATE_FAIL
    assert [(k, q["errorcode"]) for k, q, _, _ in puts.items] == [("finish", "1")]


def test_a_write_cut_short_is_left_for_recovery_to_report_never_redone(tmp_path: Path) -> None:
    """Journal says started (the agent died mid-write): the next process reports it interrupted and skips it."""
    journal = Journal(tmp_path / "journal")
    journal.accept("f-hz0000000000000000000a", sendfile.JOURNAL_VERSION)
    journal.start("f-hz0000000000000000000a", sendfile.JOURNAL_VERSION, 1.0)
    [interrupted] = Journal(tmp_path / "journal").interrupted()
    assert interrupted.interrupted_report(2.0)["taskId"] == "f-hz0000000000000000000a"
    puts = Puts()
    assert handle(entry(tmp_path / "out"), journal, puts) is None
    assert not (tmp_path / "out").exists()
    assert puts.items == []


def test_the_runner_hands_file_entries_to_the_writer(tmp_path: Path) -> None:
    puts = Puts()
    fake = SimpleNamespace(journal=Journal(tmp_path / "journal"), _put=puts)
    Agent.dispatch(fake, {"file": [entry(tmp_path / "out"), {"task": {}}]})  # type: ignore[arg-type]
    assert (tmp_path / "out" / "app.conf").read_bytes() == b"x=1\n"
    assert [k for k, *_ in puts.items] == ["finish"]


# ---- crash leftovers, set-id bits, reports found in the spool at recovery, unreadable entries ----

TASK = "f-hz0000000000000000000a"


def agent_on(state: Path) -> Agent:
    from cloudassist.agent import identity as ident

    identity = ident.Identity("i-file00001", "0" * 32, "cn-test", "127.0.0.1:9", "", "", ident.generate())
    return Agent(identity, state)


def test_set_id_bits_are_added_only_once_the_content_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_sync: list[int] = []
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            at_sync.append(stat.S_IMODE(info.st_mode))
        real_fsync(fd)

    monkeypatch.setattr(sendfile.os, "fsync", spy_fsync)
    assert write_file(order(tmp_path, mode="6755")) is A.SUCCESS
    assert at_sync[0] & ~0o700 == 0, oct(at_sync[0])  # owner-only, no set-id bit, while the content is written
    assert stat.S_IMODE((tmp_path / "app.conf").stat().st_mode) == 0o6755 & ~(0 if ROOT else 0o2000)


def test_the_temp_file_is_named_after_the_task_and_a_leftover_is_replaced(tmp_path: Path) -> None:
    leftover = tmp_path / f".cloudassist-{TASK}.tmp"
    leftover.write_bytes(b"half a file")
    leftover.chmod(0o4755)
    assert write_file(order(tmp_path, data=b"whole\n")) is A.SUCCESS
    assert (tmp_path / "app.conf").read_bytes() == b"whole\n"
    assert leftovers(tmp_path) == []


def test_a_temp_file_left_by_a_crash_is_removed_at_recovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out"
    state = tmp_path / "state"
    state.mkdir()

    def crash(dir_fd: int, final: Path, tmp_name: str, data: bytes, *args: Any) -> AgentCode:
        tmp = final.parent / tmp_name
        tmp.write_bytes(data[:2])
        tmp.chmod(0o4755)
        raise SystemExit("the agent is killed mid-write")

    monkeypatch.setattr(sendfile, "_write", crash)
    with pytest.raises(SystemExit):
        handle(entry(target), Journal(state / "journal"), Puts())
    assert leftovers(target) == [f".cloudassist-{TASK}.tmp"]
    agent = agent_on(state)
    agent._recover()
    assert leftovers(target) == []
    assert not (target / "app.conf").exists()
    assert [(i.kind, i.query["errCode"]) for i in agent.spool.items()] == [("error", "ExecutionInterrupted")]


def test_a_file_report_already_in_the_spool_is_not_reported_again_at_recovery(tmp_path: Path) -> None:
    """The agent died between spooling a file task's report and journaling it done (file reports carry no
    invokeVersion and no start): recovery finds the report and adds no second one."""
    state = tmp_path / "state"
    state.mkdir()
    first = agent_on(state)
    first.journal.accept(TASK, sendfile.JOURNAL_VERSION)
    first.journal.start(TASK, sendfile.JOURNAL_VERSION, 1.0)
    kind, query = report(order(tmp_path), A.SUCCESS)
    first.spool.put(kind, query, b"", final=True)
    second = agent_on(state)
    second._recover()
    assert [i.kind for i in second.spool.items()] == ["finish"]
    saved = second.journal.get(TASK, sendfile.JOURNAL_VERSION)
    assert saved is not None
    assert saved.state == "done"


def test_a_timeout_that_is_not_a_number_is_reported_invalid_once(tmp_path: Path) -> None:
    puts = Puts()
    fake = SimpleNamespace(journal=Journal(tmp_path / "journal"), _put=puts)
    for _ in range(2):  # listed again until the report lands: reported once
        Agent.dispatch(fake, {"file": [entry(tmp_path / "out", timeout="soon")]})  # type: ignore[arg-type]
    assert [(k, q["param"], q["taskType"], final) for k, q, _, final in puts.items] == [
        ("invalid", "InvalidFileContent", "sendfile", True)
    ]
    assert "timeout" in puts.items[0][1]["value"]
    assert not (tmp_path / "out" / "app.conf").exists()


# ------------------------------------------------------------------------------------------------ symlinked paths

#: Where a planted link sits in the target path `<tmp>/a/b/c`: under the first, a middle or the last component.
LINK_AT = ["a", "a/b", "a/b/c"]


def plant(tmp_path: Path, where: str, *, dangling: bool = False) -> tuple[Path, Path]:
    """`<tmp>/a/b/c` with the component `where` a symbolic link to a victim directory (one not yet made, when
    `dangling`); (the target directory, the victim)."""
    victim = tmp_path / "victim"
    if not dangling:
        victim.mkdir()
    link = tmp_path / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim, target_is_directory=True)
    return tmp_path / "a" / "b" / "c", victim


def written_through(victim: Path) -> list[str]:
    return sorted(str(p.relative_to(victim)) for p in victim.rglob("*")) if victim.exists() else []


@pytest.mark.parametrize("dangling", [False, True], ids=["to a directory", "dangling"])
@pytest.mark.parametrize("where", LINK_AT)
@pytest.mark.parametrize("overwrite", [False, True])
def test_as_root_a_link_anywhere_in_the_target_path_never_redirects_the_write(
        tmp_path: Path, where: str, dangling: bool, overwrite: bool) -> None:
    """Writing as root (no_follow, forced here whoever runs the tests), a symbolic link at any component of the
    target directory's path, pointing at a directory or at one not yet made, is refused as InvalidFilePath:
    nothing is written or made through it, and nothing is left behind."""
    target_dir, victim = plant(tmp_path, where, dangling=dangling)
    assert write_file(order(target_dir, overwrite=overwrite), no_follow=True) is A.INVALID_FILE_PATH
    assert written_through(victim) == []
    assert not victim.exists() or not dangling


def test_a_link_planted_while_the_path_is_being_made_is_refused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A race: the directory the writer has just made is swapped for a link before the writer opens it. The
    open refuses the link (O_NOFOLLOW), so the write does not go through it."""
    victim = tmp_path / "victim"
    victim.mkdir()
    real_mkdir = os.mkdir

    def swapped(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        real_mkdir(path, mode, dir_fd=dir_fd)
        if path == "b":
            os.rmdir(path, dir_fd=dir_fd)
            os.symlink(victim, path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", swapped)
    result = write_file(order(tmp_path / "a" / "b" / "c"), no_follow=True)
    assert result in (A.INVALID_FILE_PATH, A.CREATE_DIR_FAILED)
    assert written_through(victim) == []


@pytest.mark.parametrize(("euid", "followed"), [(0, False), (1000, True)], ids=["root", "a normal user"])
def test_links_are_refused_by_default_only_when_running_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                euid: int, followed: bool) -> None:
    """By default the rule applies to root only: a normal user's agent writes only where that user may, so
    it follows a link in the path as any of that user's programs would."""
    target_dir, victim = plant(tmp_path, "a/b")
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    expected = A.SUCCESS if followed else A.INVALID_FILE_PATH
    assert write_file(order(target_dir, owner="", group="")) is expected
    assert written_through(victim) == (["c", "c/app.conf"] if followed else [])


def test_without_links_the_path_is_made_and_written_as_root(tmp_path: Path) -> None:
    """The same walk (no_follow) makes missing directories and writes the file when the path has no link."""
    target_dir = tmp_path / "x" / "y" / "z"
    assert write_file(order(target_dir, mode="0640"), no_follow=True) is A.SUCCESS
    assert (target_dir / "app.conf").read_bytes() == b"x=1\n"
    assert stat.S_IMODE((target_dir / "app.conf").stat().st_mode) == 0o640
    assert leftovers(target_dir) == []


def test_a_link_in_place_of_the_file_is_never_written_through(tmp_path: Path) -> None:
    """The file's own name being a link: without overwrite it is FileExist and the link's target is untouched;
    with overwrite the link is replaced."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"keep")
    (tmp_path / "app.conf").symlink_to(elsewhere)
    assert write_file(order(tmp_path), no_follow=True) is A.FILE_ALREADY_EXIST
    assert write_file(order(tmp_path, overwrite=True), no_follow=True) is A.SUCCESS
    assert elsewhere.read_bytes() == b"keep"
    assert not (tmp_path / "app.conf").is_symlink()
