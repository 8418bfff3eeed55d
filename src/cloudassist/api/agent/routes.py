"""The agent protocol's endpoints (agent-protocol.md §1.3): registration, heart-beat, the kick
websocket, the task list and task reports, and cheap, correct answers to the rest."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from cloudassist.api.agent.auth import AgentAuth, AgentAuthError, Signed
from cloudassist.api.agent.hub import KickHub
from cloudassist.api.agent.tasks import KINDS, file_entry, read_file_report, read_report, task_entry
from cloudassist.api.failures import log_internal_error
from cloudassist.api.session.agent import agent_websocket, list_entry
from cloudassist.api.session.relay import relay_of
from cloudassist.domain.assistant_settings import DEFAULT_UPDATE_INTERVAL
from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.plugins import read_report as read_plugin_report
from cloudassist.domain.tags import Tag
from cloudassist.edge.throttle import Throttle
from cloudassist.errors import ApiError
from cloudassist.services.assistant_settings import AssistantSettingsService
from cloudassist.services.context import Context, Scope
from cloudassist.services.delivery import DeliveryService, TaskList, relist_before
from cloudassist.services.files import Delivery, FileService, is_file_task
from cloudassist.services.instances import InstanceService
from cloudassist.services.plugins import PluginService
from cloudassist.services.sessions import SessionService
from cloudassist.store.store import Tx

log = logging.getLogger("cloudassist.agent_face")
MAX_BODY = 1024 * 1024
#: The longest query string taken (the official agent's longest, a report's, is well under 1 KB).
MAX_QUERY = 64 * 1024
HEARTBEAT_MS = 60_000
T = TypeVar("T")


@dataclass(frozen=True)
class _Refused:
    reason: str


def ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"code": 200, **fields})


def refused(status: int, message: str, code: str = "") -> JSONResponse:
    return JSONResponse({"code": status, "errCode": code, "errMsg": message}, status_code=status)


def throttled(wait: float) -> JSONResponse:
    """429: the address failed to authenticate too often; it may try again in `wait` seconds."""
    seconds = max(1, round(wait))
    response = refused(429, f"too many failed authentications from this address; retry in {seconds} s", "Throttling")
    response.headers["retry-after"] = str(seconds)
    return response


def peer(connection: Request | WebSocket) -> str:
    return connection.client.host if connection.client else ""


def agent_version(request: Request) -> str | None:
    """`linux_amd64/2.2.3.578` → `2.2.3.578`: the User-Agent is the official agent's version signal (None when
    it carries none: `x/`, `x/ `, no slash)."""
    agent = request.headers.get("user-agent", "")
    _, sep, version = agent.partition("/")
    words = version.split()
    return words[0][:64] if sep and words else None


def read_tags(raw: object) -> tuple[Tag, ...]:
    """A registration's `tag`: absent, null or a list of `{"key": text, "value": text}` (value optional);
    anything else is InvalidParameter.tag (check_tags judges the keys and values themselves)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ApiError.invalid("tag")
    tags = []
    for item in raw:
        key = item.get("key") if isinstance(item, dict) else None
        value = item.get("value", "") if isinstance(item, dict) else None
        if not isinstance(key, str) or not isinstance(value, str | None):
            raise ApiError.invalid("tag")
        tags.append(Tag(key, value or ""))
    return tuple(tags)


async def body_of(request: Request) -> bytes:
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise ApiError.of("RequestTooLarge")
    return data


class AgentEndpoints:
    def __init__(self, ctx: Context, hub: KickHub) -> None:
        self.ctx = ctx
        self.hub = hub
        self.auth = AgentAuth(ctx)
        self.instances = InstanceService(ctx)
        self.delivery = DeliveryService(ctx)
        self.files = FileService(ctx)
        self.plugins = PluginService(ctx)
        self.throttle = Throttle("agent", ctx.settings.auth_failures_per_minute, ctx.settings.auth_throttle_exempt)
        self._account_names: dict[int, str] = {}
        self.sessions = SessionService(ctx)
        self.relay = relay_of(ctx)[1]

    async def _verify(self, headers: Any) -> Signed:
        return await self.auth.verify({k.lower(): v for k, v in headers.items()})

    async def act(
        self, signed: Signed, work: Callable[[Tx, ManagedInstance], Awaitable[T]] | None = None, key: str = ""
    ) -> tuple[ManagedInstance, T | None]:
        """Spend the request id and do the request's `work` in one transaction shared with other requests
        (group commit): nothing is acknowledged before it is committed, and a request refused by its claim
        (a replay, a deregistered instance) does nothing."""

        async def item(tx: Tx) -> tuple[ManagedInstance, T | None] | _Refused:
            claimed = await AgentAuth.claim(tx, signed)
            if isinstance(claimed, str):
                return _Refused(claimed)
            return claimed, (await work(tx, claimed) if work is not None else None)

        done = await self.ctx.store.batch(item, key=key)
        if isinstance(done, _Refused):
            raise AgentAuthError(done.reason)
        return done

    async def dispatch(self, request: Request) -> Response:
        """Every HTTP endpoint: authenticate (except register), then route by path. An address that failed to
        authenticate or register too often is refused before anything is checked (edge/throttle.py)."""
        path = str(request.scope["path"]).removeprefix("/luban/api/")  # (request.url builds a whole URL)
        if path == "connection_detect":
            return PlainTextResponse("ok")
        address = peer(request)
        wait = self.throttle.retry_after(address)
        if wait:
            return throttled(wait)
        try:
            if len(request.scope["query_string"]) > MAX_QUERY:
                raise ApiError.of("RequestTooLarge")
            if path == "instance/register":
                return await self._registration(request, address)
            signed = await self._verify(request.headers)
            request.scope["cloudassist.instance"] = signed.instance_id  # for the access line (app.AccessLog)
            return await self.route(path, request, signed)
        except AgentAuthError as exc:
            self.throttle.failed(address)
            return refused(401, str(exc), "Unauthorized")
        except ApiError as exc:
            return refused(exc.http_status, exc.message, exc.code)
        except ClientDisconnect:
            # the agent went away mid-request (it is shutting down): nothing was applied, nobody to answer
            log.debug("agent disconnected during %s", path)
            return Response(status_code=499)
        except Exception as exc:  # a bug: one line in the log, a generic answer in the face's shape
            log_internal_error(log, path[:100], exc)
            return refused(500, "internal error", "InternalError")

    async def _registration(self, request: Request, address: str) -> Response:
        """`register`, its refusals counted against the address."""
        try:
            response = await self.register(request)
        except ApiError as exc:
            if exc.http_status < 500:  # a store that could not answer (503) is no failure of the agent
                self.throttle.failed(address)
            raise
        if 400 <= response.status_code < 500:
            self.throttle.failed(address)
        return response

    async def route(self, path: str, request: Request, signed: Signed) -> Response:
        if path == "heart-beat":
            return await self.heartbeat(request, signed)
        if path == "v1/task/list":
            return await self.task_list(request, signed)
        if path.startswith("v1/task/") and path.removeprefix("v1/task/") in KINDS:
            return await self.task_report(path.removeprefix("v1/task/"), request, signed)
        if path == "v1/plugin/report_status":
            return await self.plugin_report(request, signed)
        await body_of(request)
        instance, _ = await self.act(signed)
        if path == "v1/task/verified":
            return ok(instanceId=instance.instance_id)
        if path == "instance/deregister":
            await self.instances.deregister_managed_instance(
                Scope(instance.account_id, instance.region_id), instance.instance_id
            )
            return ok(instanceId=instance.instance_id)
        if path == "instance/list_instance_state_configurations":
            # "Changed": true with a full result on every call: false with no cache crashes the agent (Part 2 §5.1)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return JSONResponse(
                {
                    "errCode": "",
                    "errMsg": "",
                    "result": {
                        "RequestId": "cloudassist",
                        "Interval": 1800,
                        "Changed": True,
                        "Checkpoint": now,
                        "StateConfigurations": [],
                    },
                }
            )
        if path == "v1/update/update_check":
            return await self.update_check(instance)
        if path == "gshell":
            return ok(gshellSupport="false", instanceId=instance.instance_id)
        if path == "v1/session/list":
            return ok(instanceId=instance.instance_id, session=await self._session_list(request, instance))
        if path == "v1/session/status":
            await self._session_status(request, instance)
            return ok(instanceId=instance.instance_id)
        if path in ("v1/plugin/list", "v2/plugin/update_check"):
            return ok(instanceId=instance.instance_id, pluginList=[], plugins=[])
        # metrics, client_report, inventory, state reports, session status: taken and dropped
        return ok(instanceId=instance.instance_id)

    async def update_check(self, instance: ManagedInstance) -> Response:
        """No update: this server hands out no agent packages. Outside the account's upgrade windows (or with
        upgrades disabled) the next check is asked for when the next window opens."""
        settings = await AssistantSettingsService(self.ctx).get(instance.account_id)
        wait = AssistantSettingsService.upgrade_wait(settings, self.ctx.clock.now())
        return ok(need_update=0, next_interval=DEFAULT_UPDATE_INTERVAL if wait is None else wait, update_info={})

    async def plugin_report(self, request: Request, signed: Signed) -> Response:
        """`v1/plugin/report_status`: the plug-ins of the instance and their states, kept for ListPluginStatus."""
        try:
            reported = read_plugin_report(json.loads(await body_of(request) or b"{}"))
        except (ValueError, RecursionError) as exc:  # BadReport is a ValueError, and so is bad JSON
            return refused(400, f"not a plug-in report: {str(exc)[:100]}", "InvalidParameter")
        instance, _ = await self.act(signed, lambda tx, i: self.plugins.report_in(tx, i, reported))
        return ok(instanceId=instance.instance_id)

    async def register(self, request: Request) -> Response:
        try:
            data = json.loads(await body_of(request) or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            return refused(400, "the body is not JSON", "InvalidParameter")
        if not isinstance(data, dict):
            return refused(400, "the body is not a JSON object", "InvalidParameter")
        tags = read_tags(data.get("tag"))
        instance = await self.instances.register(
            activation_code=data.get("activationCode", ""),
            activation_id=data.get("activationId", ""),
            region_id=data.get("regionId", ""),
            machine_id=data.get("machineId", ""),
            instance_name=data.get("instanceName") or None,
            hostname=data.get("hostname", ""),
            intranet_ip=data.get("intranetIp", ""),
            os_type=data.get("osType", ""),
            os_version=data.get("osVersion", ""),
            agent_version=data.get("agentVersion", ""),
            public_key=data.get("publicKey", ""),
            tags=tags,
            remote_ip=request.client.host if request.client else "",
        )
        return ok(instanceId=instance.instance_id)

    async def heartbeat(self, request: Request, signed: Signed) -> Response:
        version = self.instances.check_agent_version(agent_version(request))
        now = self.ctx.clock.now()
        relist = relist_before(now)

        async def beat(tx: Tx, instance: ManagedInstance) -> bool:
            await self.instances.heartbeat_in(tx, instance, now, version)
            return bool(await tx.results.waiting_instances(instance.instance_id, relist_before=relist)) or bool(
                await tx.files.waiting_instances(instance.instance_id)
            )

        instance, waiting = await self.act(signed, beat)
        self.hub.seen(instance.instance_id, now)
        if waiting:
            self.hub.kick([instance.instance_id])  # the heart-beat doubles as a redelivery trigger
        return ok(instanceId=instance.instance_id, nextInterval=HEARTBEAT_MS, newTasks=bool(waiting))

    async def task_list(self, request: Request, signed: Signed) -> Response:
        await body_of(request)
        query = request.query_params

        async def fetch(tx: Tx, instance: ManagedInstance) -> tuple[TaskList, list[Delivery]]:
            tasks = await self.delivery.fetch_in(
                tx,
                instance.instance_id,
                query.get("taskId") or None,
                startup=query.get("reason") == "startup",
                cold_start=query.get("cold_start", "").lower() == "true",
            )
            return tasks, await self.files.fetch_in(tx, instance.instance_id)

        instance, found = await self.act(signed, fetch)
        assert found is not None
        tasks, files = found
        account = await self._account_name(instance.account_id)
        return ok(
            instanceId=instance.instance_id,
            run=[task_entry(o, instance, account) for o in tasks.run],
            stop=[task_entry(o, instance, account) for o in tasks.stop],
            test=[],
            file=[file_entry(d) for d in files],
            session=[],
        )

    async def _session_list(self, request: Request, instance: ManagedInstance) -> list[dict[str, Any]]:
        """The channel the kick named, when it is an open channel of this instance: one entry, or none."""
        found = await self.sessions.channel(request.query_params.get("channelId", ""), instance.instance_id)
        if found is None:
            return []
        return [list_entry(*found, self.ctx.settings.session_agent_flow_limit)]

    async def _session_status(self, request: Request, instance: ManagedInstance) -> None:
        """How the agent's channel ended (`errorcode`, opaque): told to the client's end, wherever it is."""
        query = request.query_params
        channel, code = query.get("channelId", ""), query.get("errorcode", "") or query.get("status", "")
        exit_code = query.get("exitCode", "")  # our agent's: the shell's exit status, told to our client
        told = f"{code[:64]} {int(exit_code) % 256}" if exit_code.isdigit() and len(exit_code) < 6 else code[:64]
        if await self.sessions.agent_reported(channel, instance.instance_id, code):
            self.relay.to_client(channel, "status", told.encode("ascii", "replace"))

    async def session_backend(self, ws: WebSocket) -> None:
        """`/luban/session/backend?channelId=`: the agent's data websocket, signed like its other requests."""
        instance = await self._admit(ws, "session websocket")
        if instance is not None:
            await agent_websocket(ws, self.ctx, self.relay, instance.instance_id)

    async def _admit(
        self, ws: WebSocket, what: str, work: Callable[[Tx, ManagedInstance], Awaitable[object]] | None = None
    ) -> ManagedInstance | None:
        """The instance whose signed upgrade this is (its request id spent, `work` done with it), or None when the
        upgrade was refused and closed (an address throttled, a bad signature, the store away)."""
        address = peer(ws)
        if self.throttle.retry_after(address):
            await ws.close(code=1008)
            return None
        try:
            instance, _ = await self.act(await self._verify(ws.headers), work)
        except AgentAuthError as exc:
            self.throttle.failed(address)
            log.info("refused %s: %s", what, exc)
            await ws.close(code=1008)
            return None
        except Exception as exc:  # the store is down, or a bug: one line in the log
            log_internal_error(log, f"{what} upgrade", exc)
            await ws.close(code=1011)
            return None
        return instance

    async def _account_name(self, account_id: int) -> str:
        """An account's name (names never change, so each is read once)."""
        if account_id not in self._account_names:
            async with self.ctx.store.read() as tx:
                self._account_names.update(await tx.accounts.names())
        return self._account_names.get(account_id, "")

    async def task_report(self, kind: str, request: Request, signed: Signed) -> Response:
        query = request.query_params
        task_id = query.get("taskId", "")
        if query.get("taskType") == "sendfile" or is_file_task(task_id):
            await body_of(request)
            file_report = read_file_report(kind, query)
            instance, _ = await self.act(signed, lambda tx, i: self.files.report_in(tx, i.instance_id, file_report))
            return ok(instanceId=instance.instance_id)
        report = read_report(kind, query, await body_of(request))
        instance, _ = await self.act(
            signed, lambda tx, i: self.delivery.report_in(tx, i.instance_id, report), key=report.task_id
        )
        return ok(instanceId=instance.instance_id)

    async def websocket(self, ws: WebSocket) -> None:
        """`/luban/notify_server`: a signed upgrade; kicks go out, `accept:`/`unknow:` replies come in. Opening it
        is a sign of life; its close marks the agent offline at once, unless it has another websocket here
        (one that replaced it) or the server is going away (1012)."""
        now = self.ctx.clock.now()
        instance = await self._admit(ws, "websocket", lambda tx, i: self.instances.heartbeat_in(tx, i, now, None))
        if instance is None:
            return
        await ws.accept()
        self.hub.add(instance.instance_id, ws, now)
        code = 1006
        try:
            if await self.delivery.waiting(instance.instance_id) or await self.files.waiting(instance.instance_id):
                self.hub.kick([instance.instance_id])
            while (message := await ws.receive())["type"] != "websocket.disconnect":
                pass  # `accept:`/`unknow:` replies, and anything else (text or binary), are read and dropped
            code = int(message.get("code", 1000))
        except WebSocketDisconnect as exc:
            code = exc.code
        finally:
            seen = self.hub.remove(instance.instance_id, ws)
            with contextlib.suppress(Exception):
                await ws.close()
        if seen is not None and code != 1012:
            try:
                await self.instances.disconnected(instance.instance_id, seen)
            except ApiError as exc:  # the database is away: its heart-beats will judge it
                log.warning("could not mark %s offline: %s", instance.instance_id, exc.code)
