"""The agent's side of the luban protocol: HTTPS requests to the agent face and the kick websocket.

URLs, query strings and bodies are those of the official agent (agent-protocol §1.3, §1.5, §1.11 and
Part 2 §3-§4), so our server sees one protocol from both agents. Our additions are a query parameter
`outputOffset` on task reports (the stream position of the report's body, so the server drops bytes of a
resent chunk it already has), a pinned CA (with a CA file only that CA is trusted, not the system's), and
several server addresses: servers sharing one database, tried in order. While one answers, every request
and the kick websocket go to it; when it does not (refused, timed out, reset: a `TransportError`), the same
request is signed afresh and sent to the next, which is used from then on, and so on round the list. A
server that answers with an error is not left: the others share its database. Registration moves on only
when no connection was made at all, so that one machine is never registered twice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import logging
import math
import os
import platform
import random
import re
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from cloudassist import __version__
from cloudassist.agent.identity import Identity, public_key_pem, sign_headers, split_servers
from cloudassist.agent.keys import PrivateKey
from cloudassist.agent.transport import (
    TIMEOUT,
    ConnectFailed,
    Http,
    Response,
    TransportError,
    WebSocket,
    open_websocket,
)

T = TypeVar("T")
log = logging.getLogger("cloudassist.agent")

AGENT_VERSION = f"cloudassist-{__version__}"
TASK_LIST_TIMEOUT = 8.0
HEARTBEAT_RANGE = (55.0, 65.0)
DEFAULT_TASK_TIMEOUT = 3600.0
_BUILTIN = re.compile(rb"\{\{\s*(ACS::[A-Za-z0-9_]+)\s*\}\}")
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
}
_PROCESS_START = time.monotonic()


#: 4xx statuses that a later try may not get: authentication (a clock or key being fixed), a proxy's, a
#: timeout, a conflict or lock, throttling, a request the server saw cut short.
RETRIED_4XX = frozenset({401, 403, 407, 408, 409, 423, 425, 429, 499})


class ServerError(Exception):
    """The server answered, and not with success: an HTTP error status or a body whose `code` is not 200.
    `err_code` is the `errCode` of the agent face's error document, "" when the body was not one."""

    def __init__(self, status: int, code: object, message: str, err_code: str = "") -> None:
        super().__init__(f"HTTP {status}, code {code!r}{f', {err_code}' if err_code else ''}: {message[:300]}")
        self.status = status
        self.code = code
        self.err_code = err_code

    @property
    def permanent(self) -> bool:
        """True when sending the same request again cannot succeed: the server itself refused it with a 4xx
        (its error document, with an `errCode`) that is not about authentication, conflicts or throttling. A
        4xx without that document (a proxy, a load balancer, a server being replaced) is not trusted."""
        return 400 <= self.status < 500 and self.status not in RETRIED_4XX and bool(self.err_code)


def ms(seconds: float) -> str:
    """A time.time() value as the protocol's milliseconds."""
    return str(int(seconds * 1000))


def truncate(text: str, limit: int = 255) -> str:
    """At most `limit` bytes of UTF-8 (the protocol's errDesc limit), cut on a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


def heartbeat_interval(next_interval: object) -> float:
    """Seconds to the next heart-beat: the server's `nextInterval` (ms) if within 55-65 s, else a random value
    in that range (jitter against synchronised fleets, as the official agent)."""
    low, high = HEARTBEAT_RANGE
    with contextlib.suppress(TypeError, ValueError):
        seconds = float(str(next_interval)) / 1000
        if low <= seconds <= high:
            return seconds
    return random.uniform(low, high)  # noqa: S311 - jitter, not a secret


def parse_kick(message: str) -> tuple[str, bool, str | None]:
    """A websocket text message → (reply, fetch the task list?, task id to fetch for).

    `kick_vm [task run|stop <id>]` means "fetch" (agent-protocol §1.4); `kick_vm noop` and the kinds this
    agent does not support (file, session, agent, status) are accepted and ignored; anything else is
    answered `unknow:<msg>` (sic), as the official agent answers."""
    words = message.split()
    if not words or words[0] != "kick_vm":
        return f"unknow:{message}", False, None
    if len(words) == 1 or words[1] == "task":
        return f"accept:{message}", True, words[3] if len(words) > 3 and words[2] in ("run", "stop") else None
    return f"accept:{message}", False, None


def user_agent() -> str:
    """`linux_amd64/cloudassist-0.1.0`: the server reads our version after the slash."""
    machine = platform.machine().lower()
    return f"{platform.system().lower()}_{_ARCH.get(machine, machine)}/{AGENT_VERSION}"


def os_version() -> str:
    """`Linux_#1 SMP PREEMPT_DYNAMIC …_x86_64`, the official agent's shape (uname -s, -v, -m)."""
    uname = platform.uname()
    return f"{uname.system}_{uname.version}_{uname.machine}"


def intranet_ip() -> str:
    """The first IPv4 address of a non-loopback interface, or "" when there is none."""
    siocgifaddr = 0x8915
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                packed = fcntl.ioctl(sock.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                return address
    return ""


def uptime_ms() -> int:
    try:
        with open("/proc/uptime") as handle:
            return int(float(handle.read().split()[0]) * 1000)
    except (OSError, ValueError, IndexError):
        return 0


def ssl_context(ca_file: str) -> ssl.SSLContext:
    """TLS that trusts exactly `ca_file` (or the system's CAs when it is ""), checking the host name."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return ssl.create_default_context()


def registration_body(
    *,
    key: PrivateKey,
    activation_code: str,
    activation_id: str,
    region_id: str,
    machine_id: str,
    name: str = "",
    tags: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The JSON body of `instance/register`, field for field as the official agent sends it (Part 2 §3)."""
    return {
        "activationCode": activation_code,
        "machineId": machine_id,
        "regionId": region_id,
        "instanceName": name,
        "hostname": socket.gethostname(),
        "intranetIp": intranet_ip(),
        "osVersion": os_version(),
        "osType": platform.system().lower(),
        "agentVersion": AGENT_VERSION,
        "publicKey": base64.b64encode(public_key_pem(key)).decode("ascii"),
        "activationId": activation_id,
        "tag": [{"key": k, "value": v} for k, v in tags],
    }


def _number(value: object, default: float) -> float:
    try:
        number = float(str(value))
    except ValueError:
        return default
    return number if math.isfinite(number) else default


def parse_timeout(value: object) -> float:
    """A task's `timeOut` (a string of seconds); unparsable or not positive: 3600 s, as the official agent."""
    seconds = _number(value, DEFAULT_TASK_TIMEOUT)
    return seconds if seconds > 0 else DEFAULT_TASK_TIMEOUT


def fill_builtins(content: bytes, builtins: Mapping[str, Any]) -> bytes:
    """Replace `{{ACS::Name}}` with the task's builtInParameter values; unknown names stay as they are."""

    def value(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode()
        return str(builtins[name]).encode() if name in builtins else match.group(0)

    return _BUILTIN.sub(value, content)


@dataclass(frozen=True)
class RunOrder:
    """A `run` entry of the task list (agent-protocol §1.5), read leniently."""

    task_id: str
    invoke_version: int
    repeat: str  #: Once | Period | NextRebootOnly | EveryReboot | Rate | At
    command_type: str
    encoded_content: str
    enable_parameter: bool
    builtins: Mapping[str, Any]
    timeout: float
    working_dir: str
    username: str
    termination_mode: str
    log_quota: int  #: bytes of output kept in all (at least 12,000)
    interval: float  #: seconds between running reports (at least 1)
    cron: str = ""  #: the schedule of Period/Rate/At tasks (`*/5 * * * * ?`, `rate(5m)`, `at(…T…)`)
    created: float = 0.0  #: `creationTime` as time.time() (0 = not given): where a rate is anchored

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.invoke_version

    @classmethod
    def parse(cls, entry: Mapping[str, Any]) -> RunOrder:
        """Read one entry; KeyError/TypeError/ValueError if it has no usable taskID or invokeVersion."""
        task, output = entry["task"], entry.get("output") or {}
        task_id = task["taskID"]
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("no taskID")
        return cls(
            task_id=task_id,
            invoke_version=int(task.get("invokeVersion", 1)),
            repeat=str(entry.get("repeat") or ("Period" if task.get("cron") else "Once")),
            command_type=str(task.get("type") or ""),
            encoded_content=str(task.get("commandContent") or ""),
            enable_parameter=task.get("enableParameter") is True,
            builtins=task.get("builtInParameter") or {},
            timeout=parse_timeout(task.get("timeOut")),
            working_dir=str(task.get("workingDirectory") or ""),
            username=str(task.get("username") or ""),
            termination_mode=str(task.get("terminationMode") or "ProcessTree"),
            log_quota=max(int(_number(output.get("logQuota"), 0)), 12_000),
            interval=max(_number(output.get("interval"), 1000), 1000) / 1000,
            cron=str(task.get("cron") or ""),
            created=max(_number(task.get("creationTime"), 0), 0) / 1000,
        )

    def content(self) -> bytes:
        """The script: base64-decoded, built-in parameters filled when enabled; ValueError if not base64."""
        try:
            content = base64.b64decode(self.encoded_content, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"commandContent is not valid base64: {exc}") from None
        return fill_builtins(content, self.builtins) if self.enable_parameter else content


def _checked(response: Response) -> dict[str, Any]:
    """The JSON body of a successful response; ServerError otherwise."""
    try:
        data = json.loads(response.body)
    except ValueError:
        data = None
    if response.status // 100 != 2:
        if isinstance(data, dict):
            err_code = data.get("errCode")
            raise ServerError(response.status, data.get("code"), str(data.get("errMsg", "")),
                              err_code if isinstance(err_code, str) else "")
        raise ServerError(response.status, None, response.text)
    if not isinstance(data, dict) or data.get("code") != 200:
        raise ServerError(response.status, data.get("code") if isinstance(data, dict) else None, response.text)
    return data


API = "/luban/api/"


async def register(server: str, ca_file: str, body: Mapping[str, Any]) -> str:
    """POST `instance/register` (unsigned) to the first of the servers (`a:8443,b:8443`) that can be connected
    to; the new instance id. ServerError if refused, TransportError if no server can be reached (or trusted)
    or the one reached did not answer (another is not tried then: this one may have registered us)."""
    #: The headers httpx sent by default before (this request does not say "gzip" alone, as signed ones do).
    defaults = [("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"), ("Connection", "keep-alive")]
    addresses = split_servers(server)
    for index, address in enumerate(addresses):
        http = Http(address, ssl_context(ca_file), [*defaults, ("User-Agent", user_agent())])
        try:
            response = await http.request(
                "POST",
                f"{API}instance/register",
                headers=[("Content-Type", "application/json; charset=utf-8")],
                body=json.dumps(body).encode(),
            )
        except ConnectFailed:
            if index == len(addresses) - 1:
                raise
            continue
        finally:
            await http.aclose()
        data = _checked(response)
        instance_id = data.get("instanceId")
        if not isinstance(instance_id, str) or not instance_id:
            raise ServerError(response.status, data.get("code"), "the reply has no instanceId")
        return instance_id
    raise ValueError(f"no server address in {server!r}")


class ServerClient:
    """Signed requests of one registered agent. One instance per agent process; close with `aclose()`."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.servers = identity.servers
        self._ssl = ssl_context(identity.ca_file)
        defaults = [("Accept", "*/*"), ("Connection", "keep-alive"), ("User-Agent", user_agent())]
        self._https = [Http(s, self._ssl, [*defaults, ("Accept-Encoding", "gzip")]) for s in self.servers]
        self._current = 0  #: the index of the server in use
        self._beats_sent = 0
        self._beats_acked = 0

    @property
    def server(self) -> str:
        """The address of the server in use."""
        return self.servers[self._current]

    async def aclose(self) -> None:
        for http in self._https:
            await http.aclose()

    async def _failover(self, call: Callable[[int], Awaitable[T]]) -> T:
        """`call(index)` on the server in use, then, while a server does not answer (TransportError), on the
        next ones round the list, each once; the first to answer stays in use. The last TransportError if
        none answers. Concurrent calls failing on the same server move on from it once, not once each."""
        count, start = len(self.servers), self._current
        for step in range(count):
            index = (start + step) % count
            try:
                return await call(index)
            except TransportError as exc:
                if step == count - 1:
                    raise
                if self._current == index:
                    self._current = (index + 1) % count
                    log.warning("server %s does not answer (%s); now using %s", self.servers[index], exc, self.server)
        raise AssertionError("unreachable")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json; charset=utf-8",
        read_timeout: float | None = None,
    ) -> dict[str, Any]:
        target = f"{API}{path}?{urlencode(params)}" if params else f"{API}{path}"

        async def send(index: int) -> Response:
            return await self._https[index].request(
                method,
                target,
                headers=[*sign_headers(self.identity).items(), ("Content-Type", content_type)],
                body=body or b"",
                read_timeout=read_timeout if read_timeout is not None else TIMEOUT,
            )

        return _checked(await self._failover(send))

    async def heart_beat(self, *, first: bool, cold_start: bool) -> dict[str, Any]:
        """GET `heart-beat`; the reply ({code, instanceId, nextInterval, newTasks})."""
        params = {
            "uptime": str(uptime_ms()),
            "timestamp": str(int(time.time() * 1000)),
            "pid": str(os.getpid()),
            "process_uptime": str(int((time.monotonic() - _PROCESS_START) * 1000)),
            "index": str(self._beats_acked),
            "seq_no": str(self._beats_sent),
        }
        if first:
            params.update(
                virt_type="unknown",
                os_version=os_version(),
                az="unknown",
                machineid=self.identity.machine_id,
                cold_start=str(cold_start).lower(),
            )
        self._beats_sent += 1
        reply = await self._request(
            "GET", "heart-beat", params=params, content_type="application/x-www-form-urlencoded"
        )
        self._beats_acked += 1
        return reply

    async def task_list(
        self, reason: str, task_id: str | None = None, cold_start: bool | None = None
    ) -> dict[str, Any]:
        """POST `v1/task/list`; the parsed reply (`run`, `stop`, … lists). A `code: 408` reply is retried
        after 2 s, up to 4 rounds, as the official agent does."""
        params = {"reason": reason}
        if task_id:
            params["taskId"] = task_id
        if cold_start is not None:
            params["cold_start"] = str(cold_start).lower()
        params.update(
            currentTime=str(int(time.time() * 1000)), offset=str(time.localtime().tm_gmtoff), timeZone=_time_zone()
        )
        return await self._listing("v1/task/list", params)

    async def _listing(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """POST a list request (8 s for the answer); a `code: 408` reply is asked again after 2 s, up to 4
        rounds, as the official agent does."""
        for round_ in range(4):
            try:
                return await self._request("POST", path, params=params, read_timeout=TASK_LIST_TIMEOUT)
            except ServerError as exc:
                if exc.code != 408 or round_ == 3:
                    raise
                await asyncio.sleep(2)
        raise AssertionError("unreachable")

    async def session_list(self, channel_id: str) -> dict[str, Any]:
        """POST `v1/session/list?channelId=…`: the `session` entries of a kicked channel."""
        return await self._listing("v1/session/list", {"channelId": channel_id})

    async def session_status(self, channel_id: str, status: str, errorcode: str, **extra: str) -> None:
        """POST `v1/session/status?channelId&status&errorcode` (plus `extra`): how a session ended; sent once."""
        params = {"channelId": channel_id, "status": status, "errorcode": errorcode, **extra}
        await self._request(
            "POST", "v1/session/status", params=params, content_type="text/plain; charset=utf-8", read_timeout=5
        )

    async def session_socket(self, channel_id: str) -> WebSocket:
        """The data websocket of a session, `wss://<server>/luban/session/backend?channelId=…`, signed."""
        target = f"/luban/session/backend?{urlencode({'channelId': channel_id})}"
        return await self._websocket(target, max_size=1024 * 1024)

    async def report(self, kind: str, query: Mapping[str, str], body: bytes) -> None:
        """POST `v1/task/<kind>` with `query` and the output `body`; ServerError unless acknowledged."""
        await self._request(
            "POST", f"v1/task/{kind}", params=query, body=body, content_type="text/plain; charset=utf-8"
        )

    async def check(self) -> dict[str, Any]:
        """A signed request with no effect (`gshell`): proves the server is reachable and accepts our key."""
        return await self._request("POST", "gshell", body=b"")

    async def deregister(self) -> None:
        """POST `instance/deregister`: the server forgets this instance and its key."""
        await self._request("POST", "instance/deregister", body=b"")

    async def notify_socket(self) -> WebSocket:
        """The kick websocket, `wss://<server>/luban/notify_server`, opened with signed headers (on the server
        in use, or the next that answers)."""
        return await self._websocket("/luban/notify_server", max_size=64 * 1024)

    async def _websocket(self, target: str, *, max_size: int) -> WebSocket:
        async def connect(index: int) -> WebSocket:
            return await open_websocket(
                self.servers[index],
                target,
                self._ssl,
                [*sign_headers(self.identity).items(), ("User-Agent", user_agent())],
                open_timeout=10,
                ping_interval=60,
                ping_timeout=30,
                close_timeout=5,
                max_size=max_size,
            )

        return await self._failover(connect)


TIMEZONE_FILE = "/etc/timezone"
LOCALTIME = "/etc/localtime"


def _zone_path(path: str) -> str | None:
    """`Asia/Tokyo` of a path into a zoneinfo tree (`…/zoneinfo/[posix/]Asia/Tokyo`), else None."""
    if "zoneinfo/" not in path:
        return None
    name = path.split("zoneinfo/", 1)[1]
    for prefix in ("posix/", "right/"):
        name = name.removeprefix(prefix)
    return name or None


def _zone_name() -> str | None:
    """The IANA name of the local zone when it can be found (TZ, /etc/timezone, the /etc/localtime link),
    else None (a TZ rule such as `IST-5:30`, or an /etc/localtime that is a copy rather than a link)."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:  # TZ overrides the system's zone, whatever it is
        if tz.startswith("/"):
            return _zone_path(tz)
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # not loaded while TZ is unset

        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return None  # a POSIX rule: only its current offset is known
        return tz
    with contextlib.suppress(OSError, UnicodeDecodeError), open(TIMEZONE_FILE) as handle:
        name = handle.read().strip()
        if name:
            return name
    with contextlib.suppress(OSError):
        return _zone_path(os.readlink(LOCALTIME))
    return None


def _time_zone() -> str:
    """The local zone as reports name it: its IANA name when it can be found, else the system's current
    offset from UTC (`UTC+05:30`)."""
    name = _zone_name()
    if name:
        return name
    offset = time.localtime().tm_gmtoff
    sign, seconds = ("+" if offset >= 0 else "-"), abs(offset)
    return f"UTC{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"
