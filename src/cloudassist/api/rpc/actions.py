"""The registry of actions: name → declared parameters and handler. The only dispatch table.

`FAMILY` lists every operation of the Cloud Assistant family (reference §4) and ECS's tagging operations; those not in
`ACTIONS` answer a well-formed error, and `docs/api-coverage.md` is generated from both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from cloudassist.api.rpc.params import Param
from cloudassist.services.context import Context, Scope


@dataclass(frozen=True)
class Call:
    """One authenticated call: who makes it, where, and with what parameters."""

    ctx: Context
    scope: Scope
    params: dict[str, Any]
    #: The signed call's AccessKeyId, the caller's address and the Host it called (for session audit and URLs).
    access_key_id: str = ""
    address: str = ""
    host: str = ""

    def __getitem__(self, name: str) -> Any:
        return self.params[name]


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Action:
    name: str
    params: tuple[Param, ...]
    handler: Handler


ACTIONS: dict[str, Action] = {}

CLOUD_ASSISTANT: Final = (
    "CreateCommand",
    "DescribeCommands",
    "ModifyCommand",
    "DeleteCommand",
    "InvokeCommand",
    "RunCommand",
    "DescribeInvocations",
    "DescribeInvocationResults",
    "StopInvocation",
    "ModifyInvocationAttribute",
    "SendFile",
    "DescribeSendFileResults",
    "DescribeCloudAssistantStatus",
    "InstallCloudAssistant",
    "DescribeCloudAssistantSettings",
    "ModifyCloudAssistantSettings",
    "ListPluginStatus",
    "StartTerminalSession",
    "DescribeTerminalSessions",
    "EndTerminalSession",
    "CreateActivation",
    "DescribeActivations",
    "DeleteActivation",
    "DisableActivation",
    "DescribeManagedInstances",
    "DeregisterManagedInstance",
    "ModifyManagedInstance",
)
#: ECS's tagging operations, for the ResourceTypes command, invocation, activation and managedinstance.
TAGGING: Final = ("TagResources", "UntagResources", "ListTagResources")
FAMILY: Final = CLOUD_ASSISTANT + TAGGING
#: Operations outside the family that its official clients call first (the session CLI's status check).
COMPANIONS: Final = ("DescribeUserBusinessBehavior",)

#: Every action takes RegionId, required (reference §4).
REGION = Param("RegionId", required=True)


def action(name: str, *params: Param) -> Callable[[Handler], Handler]:
    """Register the decorated handler for `name` with its declared parameters."""

    def register(handler: Handler) -> Handler:
        assert name in FAMILY or name in COMPANIONS, name
        ACTIONS[name] = Action(name, (REGION, *params), handler)
        return handler

    return register


def load() -> dict[str, Action]:
    """Import every handler module (registering its actions) and return the registry."""
    from cloudassist.api.rpc.handlers import (  # noqa: F401
        activations,
        commands,
        files,
        instances,
        invocations,
        plugins,
        sessions,
        settings,
        tags,
    )

    return ACTIONS
