"""The schema: SQLAlchemy Core tables on one MetaData. Migrations must produce exactly this."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Time = DateTime(timezone=True)
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite makes only INTEGER PRIMARY KEY an auto rowid

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("creation_time", Time, nullable=False),
    #: The sequence number of the newest execution record of the account (retention by count).
    Column("result_seq", BigInteger, nullable=False, server_default="0"),
    #: The sequence number of the newest task (invocation) of the account: its listing and paging order.
    Column("task_seq", BigInteger, nullable=False, server_default="0"),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False, index=True),
    Column("secret", String(128), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("creation_time", Time, nullable=False),
)

nonces = Table(
    "nonces",
    metadata,
    Column("access_key_id", String(64), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", Time, nullable=False, index=True),
)

commands = Table(
    "commands",
    metadata,
    Column("command_id", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("description", String(512), nullable=False),
    Column("type", String(32), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("working_dir", String(200), nullable=False),
    Column("timeout", BigInteger, nullable=False),
    Column("enable_parameter", Boolean, nullable=False),
    Column("launcher", String(1024), nullable=False),
    Column("resource_group_id", String(64), nullable=False),
    Column("creation_time", Time, nullable=False),
    Column("invoke_times", BigInteger, nullable=False),
    Column("kept", Boolean, nullable=False),
    Index(None, "account_id", "region_id", "kept", "creation_time"),
)

invocations = Table(
    "invocations",
    metadata,
    Column("invoke_id", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("command_id", String(64), nullable=False),
    Column("command_name", String(128), nullable=False),
    Column("command_type", String(32), nullable=False),
    Column("command_description", String(512), nullable=False),
    Column("content", LargeBinary, nullable=False),
    #: Whether `{{ACS::…}}` built-in parameters are filled in on the instance (the command's EnableParameter).
    Column("enable_parameter", Boolean, nullable=False, server_default="0"),
    Column("parameters", Text, nullable=False),
    Column("repeat_mode", String(32), nullable=False),
    Column("frequency", String(256), nullable=False),
    Column("timeout", BigInteger, nullable=False),
    Column("working_dir", String(200), nullable=False),
    Column("username", String(255), nullable=False),
    Column("windows_password_name", String(255), nullable=False),
    Column("termination_mode", String(32), nullable=False),
    Column("launcher", String(1024), nullable=False),
    Column("container_id", String(128), nullable=False),
    Column("container_name", String(255), nullable=False),
    Column("resource_group_id", String(64), nullable=False),
    Column("creation_time", Time, nullable=False),
    Column("stop_time", Time, nullable=True),
    #: The account's task sequence number: the listing order and the paging key.
    Column("seq", BigInteger, nullable=False),
    #: The roll-up of the results (TaskStatus) and its legacy twin, kept current by the services.
    Column("status", String(16), nullable=False),
    Column("invoke_status", String(16), nullable=False),
    Index(None, "account_id", "region_id", "seq", "creation_time"),
    Index(None, "account_id", "region_id", "status", "seq", "creation_time"),
    Index(None, "account_id", "region_id", "command_id", "seq", "creation_time"),
)

#: One row per execution of a task on an instance. `seq` numbers an account's records in order of
#: creation; every listing index ends in (seq, creation_time) so filters, order, paging and the
#: retention window are all answered from the index.
invocation_results = Table(
    "invocation_results",
    metadata,
    Column("result_id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("invoke_id", String(64), ForeignKey("invocations.invoke_id"), nullable=False),
    Column("instance_id", String(64), nullable=False),
    Column("command_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    #: The legacy InvokeRecordStatus of `status`, kept beside it so its filter is one index range.
    Column("record_status", String(16), nullable=False, server_default="Running"),
    Column("exit_code", BigInteger, nullable=True),
    Column("output", LargeBinary, nullable=False),
    Column("dropped", BigInteger, nullable=False),
    Column("error_code", String(64), nullable=False),
    Column("start_time", Time, nullable=True),
    Column("finished_time", Time, nullable=True),
    Column("stop_time", Time, nullable=True),
    Column("update_time", Time, nullable=False),
    Column("creation_time", Time, nullable=False),
    Column("repeats", BigInteger, nullable=False),
    #: Delivery to the agent: which version of the task it was given, and when it fetched it.
    Column("invoke_version", BigInteger, nullable=False, server_default="1"),
    Column("delivered_time", Time, nullable=True),
    #: Output bytes the agent has reported so far (kept or dropped): de-duplicates resent chunks.
    Column("received", BigInteger, nullable=False, server_default="0"),
    #: When the current run must have ended (its start plus the task's Timeout): the sweeper's index.
    Column("run_deadline", Time, nullable=True),
    Index(None, "status", "instance_id"),
    Index(None, "status", "run_deadline"),
    Index(None, "account_id", "region_id", "seq", "creation_time"),
    Index(None, "invoke_id", "seq", "creation_time"),
    #: A task's distinct statuses, read from the index alone: its roll-up.
    Index(None, "invoke_id", "status"),
    Index(None, "account_id", "region_id", "instance_id", "seq", "creation_time"),
    Index(None, "account_id", "region_id", "command_id", "seq", "creation_time"),
    Index(None, "account_id", "region_id", "status", "seq", "creation_time"),
    Index(None, "account_id", "region_id", "record_status", "seq", "creation_time"),
    #: The records the retention window hides by age and the job has not deleted yet (a few): counted to
    #: subtract them from `result_counts` (store/counts.py).
    Index(None, "account_id", "region_id", "creation_time", "seq"),
)

#: How many rows of `invocation_results` an account has in a region per status, per command and per
#: instance (`dim` is "status", "command" or "instance"; `value` the status or id), kept by the store with
#: every write of those rows (store/counts.py): TotalCount without counting the records themselves.
result_counts = Table(
    "result_counts",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.account_id"), primary_key=True, autoincrement=False),
    Column("region_id", String(64), primary_key=True),
    Column("dim", String(16), primary_key=True),
    Column("value", String(64), primary_key=True),
    Column("n", BigInteger, nullable=False),
)

#: One row per ended run of a recurring (Period, EveryReboot) task on an instance: its execution history.
#: Kept apart from `invocation_results` so the default listing (latest state only) reads its own table
#: and indexes as before; `seq` comes from the same account sequence, so both tables page and retain as one.
invocation_history = Table(
    "invocation_history",
    metadata,
    Column("history_id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("invoke_id", String(64), ForeignKey("invocations.invoke_id"), nullable=False),
    Column("instance_id", String(64), nullable=False),
    Column("command_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("record_status", String(16), nullable=False),
    Column("exit_code", BigInteger, nullable=True),
    Column("output", LargeBinary, nullable=False),
    Column("dropped", BigInteger, nullable=False),
    Column("error_code", String(64), nullable=False),
    Column("start_time", Time, nullable=True),
    Column("finished_time", Time, nullable=True),
    Column("stop_time", Time, nullable=True),
    Column("update_time", Time, nullable=False),
    Column("creation_time", Time, nullable=False),
    #: Which run of the schedule this was on the instance (1 for the first).
    Column("repeats", BigInteger, nullable=False),
    Column("invoke_version", BigInteger, nullable=False, server_default="1"),
    Index(None, "invoke_id", "seq", "creation_time"),
)

tags = Table(
    "tags",
    metadata,
    Column("resource_type", String(32), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("tag_key", String(64), primary_key=True),
    Column("tag_value", String(128), nullable=False),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Index(None, "account_id", "resource_type", "tag_key", "tag_value"),
)

activations = Table(
    "activations",
    metadata,
    Column("activation_id", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("code_hash", String(128), nullable=False),
    Column("description", String(100), nullable=False),
    Column("instance_name", String(64), nullable=False),
    Column("instance_count", Integer, nullable=False),
    Column("registered_count", Integer, nullable=False),
    Column("deregistered_count", Integer, nullable=False),
    Column("ip_address_range", String(1024), nullable=False),
    Column("time_to_live_in_hours", BigInteger, nullable=False),
    Column("resource_group_id", String(64), nullable=False),
    Column("creation_time", Time, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Index(None, "account_id", "region_id", "creation_time"),
)

managed_instances = Table(
    "managed_instances",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("activation_id", String(64), nullable=False),
    Column("instance_name", String(128), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("machine_id", String(128), nullable=False),
    Column("os_type", String(32), nullable=False),
    Column("os_version", String(255), nullable=False),
    Column("agent_version", String(64), nullable=False),
    Column("intranet_ip", String(64), nullable=False),
    Column("internet_ip", String(64), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("resource_group_id", String(64), nullable=False),
    Column("registration_time", Time, nullable=False),
    Column("last_heartbeat_time", Time, nullable=True),
    Column("last_invoked_time", Time, nullable=True),
    Column("invocation_count", BigInteger, nullable=False),
    Column("deregistered", Boolean, nullable=False),
    #: When this server last saw the agent's websocket close (with no sign of life after): offline until it beats.
    Column("disconnected_time", Time, nullable=True),
    Index(None, "account_id", "region_id", "registration_time"),
    Index(None, "activation_id"),
)

#: SendFile tasks (`f-…`): the file travels inline, so its bytes are kept with the task.
file_tasks = Table(
    "file_tasks",
    metadata,
    Column("invoke_id", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", String(512), nullable=False),
    Column("target_dir", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("content_type", String(16), nullable=False),
    Column("file_owner", String(64), nullable=False),
    Column("file_group", String(64), nullable=False),
    Column("file_mode", String(8), nullable=False),
    Column("overwrite", Boolean, nullable=False),
    Column("timeout", BigInteger, nullable=False),
    Column("resource_group_id", String(64), nullable=False),
    Column("creation_time", Time, nullable=False),
    #: The account's task sequence number (shared with command tasks): the listing order and paging key.
    Column("seq", BigInteger, nullable=False),
    #: The roll-up of the task's records, kept current by the service.
    Column("status", String(16), nullable=False),
    Index(None, "account_id", "region_id", "seq", "creation_time"),
    Index(None, "account_id", "region_id", "status", "seq", "creation_time"),
)

#: One row per instance of a file task.
file_results = Table(
    "file_results",
    metadata,
    Column("result_id", Id, primary_key=True, autoincrement=True),
    Column("invoke_id", String(64), ForeignKey("file_tasks.invoke_id"), nullable=False, index=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("instance_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_code", String(64), nullable=False),
    Column("error_info", String(255), nullable=False),
    Column("creation_time", Time, nullable=False),
    Column("update_time", Time, nullable=False),
    Column("start_time", Time, nullable=True),
    Column("finish_time", Time, nullable=True),
    #: When the instance's agent fetched the file.
    Column("delivered_time", Time, nullable=True),
    Index(None, "status", "instance_id"),
    Index(None, "account_id", "region_id", "instance_id"),
)

#: Tasks (RunCommand/InvokeCommand) created per account, region and UTC day: the daily invocation quota.
daily_invocations = Table(
    "daily_invocations",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.account_id"), primary_key=True),
    Column("region_id", String(64), primary_key=True),
    #: The UTC day, `YYYY-MM-DD`.
    Column("day", String(10), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

#: Results of requests made with a ClientToken, so a retry returns the same answer.
client_tokens = Table(
    "client_tokens",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.account_id"), primary_key=True),
    Column("action", String(64), primary_key=True),
    Column("token", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("creation_time", Time, nullable=False, index=True),
)

#: Signed-in browser sessions of the web console: the SHA-256 of the cookie's token (the token itself is never
#: stored), whose account and key it acts as, its CSRF token and the region it looks at; deleted on sign-out.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("access_key_id", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("creation_time", Time, nullable=False),
    Column("expires_at", Time, nullable=False, index=True),
)

#: Each account's Cloud Assistant settings (ModifyCloudAssistantSettings), one JSON document per account
#: (domain/assistant_settings.py reads and writes it); an account with no row has the defaults.
assistant_settings = Table(
    "assistant_settings",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.account_id"), primary_key=True),
    Column("document", Text, nullable=False),
    Column("update_time", Time, nullable=False),
)

#: The plug-ins each instance's agent reports (`/luban/api/v1/plugin/report_status`), one row per plug-in.
plugin_statuses = Table(
    "plugin_statuses",
    metadata,
    Column("instance_id", String(64), ForeignKey("managed_instances.instance_id"), primary_key=True),
    Column("plugin_name", String(255), primary_key=True),
    Column("plugin_version", String(64), nullable=False),
    #: The API's value (Installed, Running, Stopped, Crashed, Removed, Unknown).
    Column("status", String(16), nullable=False),
    Column("first_heartbeat_time", Time, nullable=False),
    Column("last_heartbeat_time", Time, nullable=False),
)


#: Session Manager sessions (`s-…`): what StartTerminalSession asked for, who asked, and the URL's token (its hash).
terminal_sessions = Table(
    "terminal_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("region_id", String(64), nullable=False),
    #: The instances the session may reach, space-separated (at most 10).
    Column("instance_ids", Text, nullable=False),
    Column("port_number", Integer, nullable=True),
    Column("target_server", String(128), nullable=False),
    Column("command_line", String(512), nullable=False),
    Column("username", String(64), nullable=False),
    Column("password_name", String(255), nullable=False),
    Column("connection_type", String(16), nullable=False),
    #: Who started it: the AccessKeyId of the signed call, and from which address.
    Column("access_key_id", String(64), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("creation_time", Time, nullable=False),
    #: SHA-256 of the WebSocketUrl's token, its expiry, and when it was spent (shell sessions: single use).
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_expires", Time, nullable=False),
    Column("token_used_time", Time, nullable=True),
    #: Set by EndTerminalSession: the session and its URL are closed for good.
    Column("ended_time", Time, nullable=True),
    Index(None, "account_id", "region_id", "creation_time"),
)

#: One row per client websocket of a session (its agent channel): the audit record of that connection.
terminal_connections = Table(
    "terminal_connections",
    metadata,
    Column("channel_id", String(32), primary_key=True),
    Column("session_id", String(64), ForeignKey("terminal_sessions.session_id"), nullable=False, index=True),
    Column("account_id", Id, ForeignKey("accounts.account_id"), nullable=False),
    Column("instance_id", String(64), nullable=False),
    #: Connecting, Connected, Terminated or Failed.
    Column("status", String(16), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("start_time", Time, nullable=False),
    Column("connected_time", Time, nullable=True),
    #: Refreshed by the server process holding the client's websocket while it is open: an open connection not
    #: seen for long lost its process (a crash) and is ended by the sweep (api/session/relay.py).
    Column("seen_time", Time, nullable=False),
    Column("end_time", Time, nullable=True),
    Column("closed_reason", String(64), nullable=False),
    Column("failed_detail", String(255), nullable=False),
    #: What the agent reported on v1/session/status (`errorcode`), verbatim.
    Column("agent_status", String(64), nullable=False),
    Column("bytes_in", BigInteger, nullable=False),
    Column("bytes_out", BigInteger, nullable=False),
    #: What the terminal showed (agent output), when the account keeps transcripts; cut at the size cap.
    Column("transcript", LargeBinary, nullable=True),
    Column("transcript_truncated", Boolean, nullable=False),
    Index(None, "instance_id", "status"),
)
