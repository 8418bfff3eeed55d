"""Checks made before the server (or a tool) creates anything: each failure is one line naming the cause and
the fix, raised as `StartupError` and printed without a traceback by the command line.

- the data directory can be created or written by this user;
- each listening address is free (and valid) — a port another process holds is found before the banner;
- the database answers: PostgreSQL is reachable, accepts the login, and the database exists.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path

from cloudassist.settings import Settings


class StartupError(Exception):
    """Why the server or a tool cannot start, in one line that says what to do."""


def check_data_dir(path: Path) -> None:
    """The data directory is writable, or its nearest existing parent lets us create it. Tried for real (a
    temporary entry made and removed at once: root passes permission checks, not a read-only file system),
    so nothing is left behind when the check fails, nor when it passes."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"the data directory {path} is a file: give a directory with --data-dir")
    where = path.absolute()
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        raise StartupError(f"cannot create the data directory {path}: {where} is a file; give another with --data-dir")
    try:
        probe = tempfile.mkdtemp(prefix=".cloudassist-probe-", dir=where)
    except OSError as exc:
        what = f"write the data directory {path}" if where == path.absolute() else f"create the data directory {path}"
        raise StartupError(
            f"cannot {what}: {where} refuses new files ({exc.strerror}, uid {os.getuid()}); give a writable "
            f"directory with --data-dir, or make it writable by the user the server runs as"
        ) from None
    os.rmdir(probe)


def check_listen(listen: str, flag: str) -> None:
    """`listen` (HOST:PORT) can be bound now; else which process should stop or which flag to change."""
    from cloudassist.server import split_listen

    try:
        host, port = split_listen(listen)
    except ValueError:
        raise StartupError(f"{flag} {listen!r} is not HOST:PORT (e.g. 127.0.0.1:8080)") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"{flag} {listen}: the host {host!r} is unknown ({exc.strerror}); give an IP address "
                           f"or a name this machine resolves") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"{flag} {listen}: the port is already in use by another process (another cloudassist "
                    f"server? `ss -ltnp 'sport = :{port}'` shows which); stop it, or choose another port with {flag}"
                ) from None
            if exc.errno == errno.EACCES:
                raise StartupError(
                    f"{flag} {listen}: this user may not listen on port {port} (ports below 1024 need root or "
                    f"CAP_NET_BIND_SERVICE); choose a port above 1023 with {flag}"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise StartupError(
                    f"{flag} {listen}: {host} is not an address of this machine; give one of its addresses, "
                    f"or 0.0.0.0 for all"
                ) from None
            raise StartupError(f"{flag} {listen}: cannot listen there ({exc.strerror})") from None


def shown_url(url: str) -> str:
    """The database URL as it may be printed: never with its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL holds no password we could find: show its scheme alone
        return url.split(":", 1)[0] + "://…"


async def check_database(settings: Settings) -> None:
    """PostgreSQL answers, takes the login and has the database (SQLite: its directory is writable)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:" and Path(path).parent != settings.data_dir.resolve():
            check_data_dir(Path(path).parent)
        return
    from sqlalchemy import text

    from cloudassist.store.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise StartupError(_database_error(shown_url(settings.db or url), exc)) from None
    finally:
        await engine.dispose()


def _database_error(url: str, exc: BaseException) -> str:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    names = {type(e).__name__ for e in chain}
    if "InvalidCatalogNameError" in names:
        database = url.rsplit("/", 1)[-1].split("?", 1)[0]
        return (f"the database {database!r} does not exist on the server of {url}: create it "
                f"(`createdb {database}`, or CREATE DATABASE {database}), or name another in --db")
    if names & {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return (f"the database server of {url} refused the login: check the user and password in --db "
                f"(and pg_hba.conf)")
    if any(isinstance(e, (ConnectionRefusedError, socket.gaierror, TimeoutError, OSError)) for e in chain):
        reason = next((str(e.strerror or e) for e in chain if isinstance(e, OSError)), "no answer")
        return (f"cannot reach the database at {url} ({reason}): start PostgreSQL there, or fix the host and "
                f"port in --db")
    return f"the database at {url} cannot be used ({type(exc).__name__}): check --db"


async def check(settings: Settings) -> None:
    """Everything the server needs before it creates anything."""
    check_data_dir(settings.data_dir)
    check_listen(settings.listen, "--listen")
    if settings.agent_listen:
        check_listen(settings.agent_listen, "--agent-listen")
    await check_database(settings)
