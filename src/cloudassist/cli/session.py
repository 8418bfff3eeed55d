"""`cloudassist session <instance-id>`: an interactive shell on a managed machine, or a local port forwarded to it,
through the server's Session Manager relay.

It calls StartTerminalSession (cli/client.py) and dials the `WebSocketUrl` it returns, speaking the official
`ali-instance-cli`'s framing (session-protocol.md §4.2, §7; `domain/frames.py`), so either client can use the
same URL:

* the URL's first `sessionid` becomes `sessionId`, and the header `x-acs-session-token` is sent empty, as the
  official client does; `ws://` and `wss://` (the system's CAs, or `--ca-file`);
* the terminal is put in raw mode (restored however the command ends), so ^C, ^D and ^Z are bytes for the
  remote shell; input goes out at once in frames of at most 2048 bytes; the window size is sent after the
  first output and on every SIGWINCH (4 bytes: rows, cols as int16 LE);
* with stdin not a terminal, its bytes are sent as typed and its end sends ^D (as the official client does);
* the session's end (a status-5 frame) ends the command: 0 for `Exit`, else the reason on stderr and 1. When
  the relay tells the shell's exit status (a status-3 frame `exitCode=N`, which the official client ignores),
  the command exits with it;
* `--port-forward LOCAL:REMOTE` listens on 127.0.0.1:LOCAL (not every interface, as the official client does)
  and dials the URL once per local connection; a local end sends type 3 (close).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import ssl
import struct
import sys
import termios
import time
import tty
from pathlib import Path
from urllib.parse import urlsplit

import click

from cloudassist.agent.transport import ConnectionClosed, TransportError, WebSocket, WebSocketRefused, open_websocket
from cloudassist.cli.client import Client
from cloudassist.cli.connection import api_errors, api_options, client
from cloudassist.cli.profile import ProfileError, resolve
from cloudassist.domain import frames
from cloudassist.domain.frames import Frame, MessageType, StatusCode

MAX_INPUT = frames.MAX_INPUT
EXIT_SESSION_FAILED = 1


class Ended(Exception):
    """The session is over: the exit status for the command, and what to say on stderr ("" for nothing)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Channel:
    """One client websocket of a session: client-format frames out and in."""

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        self.sequence = 0

    async def send(self, kind: MessageType, payload: bytes) -> None:
        frame = Frame(kind, payload, int(time.time() * 1000), self.sequence)
        self.sequence += 1
        await self.socket.send(frames.encode_client(frame))

    async def recv(self) -> Frame:
        """The next frame; Ended when the socket closes or a frame is malformed."""
        try:
            message = await self.socket.recv()
        except ConnectionClosed as closed:
            raise Ended(EXIT_SESSION_FAILED, f"the session's connection closed ({closed.code})") from None
        data = message.encode() if isinstance(message, str) else message
        try:
            return frames.decode_client(data)
        except frames.FrameError as exc:
            raise Ended(EXIT_SESSION_FAILED, f"the relay sent a malformed frame: {exc}") from None


def status_end(payload: bytes, exit_code: int | None) -> Ended | None:
    """What a status frame means for the command: Ended for codes 2 and 5, None for others."""
    code, rest = frames.parse_status(payload)
    if code == StatusCode.CLOSED:
        reason = rest.decode("ascii", errors="replace")
        if reason == "Exit":
            return Ended(exit_code if exit_code is not None else 0)
        return Ended(exit_code if exit_code is not None else EXIT_SESSION_FAILED, f"session closed: {reason}")
    if code == StatusCode.MESSAGE:
        return Ended(EXIT_SESSION_FAILED, payload.decode("utf-8", errors="replace"))
    return None


def exit_code_of(payload: bytes) -> int | None:
    """N of a status-3 `exitCode=N` frame (our relay's addition), else None."""
    code, rest = frames.parse_status(payload)
    if code != StatusCode.NOOP or not rest.startswith(b"exitCode="):
        return None
    value = rest.removeprefix(b"exitCode=")
    return int(value) % 256 if value.isdigit() else None


async def dial(url: str, ca_file: str | None) -> Channel:
    """The websocket of `url` (`ws://` or `wss://`), as the official client dials it."""
    parts = urlsplit(url.replace("sessionid", "sessionId", 1))
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise click.ClickException(f"not a websocket URL: {url!r}")
    context = ssl.create_default_context(cafile=ca_file) if parts.scheme == "wss" else None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        socket = await open_websocket(
            parts.netloc,
            target,
            context,
            [("x-acs-session-token", "")],
            open_timeout=30,
            ping_interval=30,
            ping_timeout=30,
            close_timeout=2,
            max_size=4 * 1024 * 1024,
        )
    except WebSocketRefused as exc:
        raise Ended(EXIT_SESSION_FAILED, f"the relay refused the session: {exc}") from None
    except (TransportError, ValueError) as exc:
        raise Ended(EXIT_SESSION_FAILED, f"cannot connect to {parts.netloc}: {exc}") from None
    return Channel(socket)


def _window_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _read_fd(fd: int) -> bytes:
    """Up to MAX_INPUT bytes from `fd` (b"" at its end), waiting without blocking the loop."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    try:
        return os.read(fd, MAX_INPUT)
    except OSError:
        return b""


async def interactive(channel: Channel, stdin: int, stdout: int) -> int:
    """Relay the terminal until the session ends; the exit status."""
    loop = asyncio.get_running_loop()
    is_tty = os.isatty(stdin)
    sizes: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    connected = asyncio.Event()

    last: list[tuple[int, int]] = []

    def winch() -> None:
        if connected.is_set() and (size := _window_size(stdin)) is not None and last != [size]:
            last[:] = [size]
            sizes.put_nowait(size)

    async def keyboard() -> None:
        while True:
            data = await _read_fd(stdin)
            if not data:
                if not is_tty:
                    await channel.send(MessageType.INPUT, b"\x04")
                return
            await channel.send(MessageType.INPUT, data)

    async def resizes() -> None:
        while True:
            rows, cols = await sizes.get()
            await channel.send(MessageType.SET_SIZE, frames.Size(rows, cols).to_client())

    async def screen() -> int:
        exit_code: int | None = None
        while True:
            frame = await channel.recv()
            if frame.type is MessageType.OUTPUT:
                os.write(stdout, frame.payload)
                if not connected.is_set():
                    connected.set()
                    winch()
            elif frame.type is MessageType.STATUS and frame.payload:
                exit_code = exit_code_of(frame.payload) if exit_code is None else exit_code
                ended = status_end(frame.payload, exit_code)
                if ended is not None:
                    raise ended

    if is_tty:
        loop.add_signal_handler(signal.SIGWINCH, winch)
    tasks = [asyncio.create_task(keyboard()), asyncio.create_task(resizes())]
    try:
        return await screen()
    finally:
        if is_tty:
            loop.remove_signal_handler(signal.SIGWINCH)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await channel.socket.close()


async def forward(url: str, ca_file: str | None, local_port: int, announce: bool = True) -> None:
    """Serve 127.0.0.1:`local_port`, one session connection per local connection, until interrupted."""

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            channel = await dial(url, ca_file)
        except Ended as ended:
            click.echo(f"port forward: {ended.message}", err=True)
            writer.close()
            return

        async def upstream() -> None:
            while data := await reader.read(MAX_INPUT):
                await channel.send(MessageType.INPUT, data)
            await channel.send(MessageType.CLOSE, b"1")

        sending = asyncio.create_task(upstream())
        try:
            while True:
                frame = await channel.recv()
                if frame.type is MessageType.OUTPUT:
                    writer.write(frame.payload)
                    await writer.drain()
                elif frame.type is MessageType.STATUS and frame.payload and status_end(frame.payload, None):
                    break
        except (Ended, OSError):
            pass
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await channel.socket.close()

    server = await asyncio.start_server(one, "127.0.0.1", local_port)
    if announce:
        port = server.sockets[0].getsockname()[1]
        click.echo(f"forwarding 127.0.0.1:{port} to the instance; Ctrl-C stops", err=True)
    async with server:
        await server.serve_forever()


def _port_pair(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    local, sep, remote = value.partition(":")
    if not sep or not local.isdigit() or not remote.isdigit() or not 0 <= int(local) <= 65535:
        raise click.BadParameter(f"{value!r} is not LOCAL:REMOTE (two port numbers)")
    if not 1 <= int(remote) <= 65535:
        raise click.BadParameter(f"{remote!r} is not a port")
    return int(local), int(remote)


def _session_url(ctx: click.Context, instance_id: str, params: dict[str, object], keys: tuple[str, str] | None) -> str:
    api = client(ctx) if keys is None else _keyed_client(ctx, *keys)
    with api_errors():
        answer = api.call("StartTerminalSession", {"InstanceId": [instance_id], **params})
    url = answer.get("WebSocketUrl")
    if not isinstance(url, str) or not url:
        raise click.ClickException("StartTerminalSession returned no WebSocketUrl")
    return url


def _keyed_client(ctx: click.Context, key_id: str, secret: str) -> Client:
    """The client of --access-key-id/--access-key-secret, which outrank profiles and the environment."""
    env = {k: v for k, v in os.environ.items() if "PROFILE" not in k and "ACCESS_KEY" not in k}
    env.update(HOME="/nonexistent", ALIBABA_CLOUD_ACCESS_KEY_ID=key_id, ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret)
    try:
        target = resolve(env, region=ctx.meta.get("cloudassist.region"), endpoint=ctx.meta.get("cloudassist.endpoint"))
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from None
    return Client(target.endpoint, target.credentials)


@click.command("session")
@click.argument("instance_id")
@click.option("--username", default="", help="Log in as this user (default: the agent's ecs-assist-user).")
@click.option("--command-line", default="", help="Run this command instead of a login shell.")
@click.option(
    "--port-forward",
    callback=_port_pair,
    metavar="LOCAL:REMOTE",
    help="Listen on 127.0.0.1:LOCAL and forward each connection to port REMOTE (0 for LOCAL: any free port).",
)
@click.option("--target-server", default="", help="With --port-forward: forward to this host as seen by the instance.")
@click.option("--wss-url", default="", help="Use this WebSocketUrl instead of calling StartTerminalSession.")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM CA to trust for a wss:// URL (default: the system's CAs).",
)
@click.option("--access-key-id", help="AccessKey id [else a profile, else $ALIBABA_CLOUD_ACCESS_KEY_ID].")
@click.option("--access-key-secret", help="AccessKey secret [else a profile, else $ALIBABA_CLOUD_ACCESS_KEY_SECRET].")
@api_options
@click.pass_context
def session(
    ctx: click.Context,
    instance_id: str,
    username: str,
    command_line: str,
    port_forward: tuple[int, int] | None,
    target_server: str,
    wss_url: str,
    ca_file: Path | None,
    access_key_id: str | None,
    access_key_secret: str | None,
) -> None:
    """A shell on INSTANCE_ID (raw terminal: Ctrl-C goes to the remote), or with --port-forward a local port.

    Exit status: the remote shell's when the relay tells it, else 0 when the session ended normally and 1
    otherwise (an API error too)."""
    if target_server and port_forward is None:
        raise click.UsageError("--target-server needs --port-forward")
    if command_line and port_forward is not None:
        raise click.UsageError("--command-line and --port-forward exclude each other")
    if bool(access_key_id) != bool(access_key_secret):
        raise click.UsageError("--access-key-id and --access-key-secret go together")
    keys = (access_key_id, access_key_secret) if access_key_id and access_key_secret else None
    params: dict[str, object] = {"Username": username or None, "CommandLine": command_line or None}
    if port_forward is not None:
        params.update(PortNumber=port_forward[1], TargetServer=target_server or None)
    url = wss_url or _session_url(ctx, instance_id, params, keys)
    ca = str(ca_file) if ca_file else None
    if port_forward is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(forward(url, ca, port_forward[0]))
        return
    sys.exit(run_terminal(url, ca))


def run_terminal(url: str, ca_file: str | None) -> int:
    """The interactive session on this process's terminal; its exit status. The terminal is restored."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None

    async def main() -> int:
        channel = await dial(url, ca_file)
        if saved is not None:
            tty.setraw(stdin)
        return await interactive(channel, stdin, stdout)

    try:
        return asyncio.run(main())
    except Ended as ended:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)
        if ended.message:
            sys.stderr.write(ended.message + "\n")
        return ended.status
    except KeyboardInterrupt:
        return 130
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)
