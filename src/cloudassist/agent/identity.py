"""Who this agent is: its state directory, its registered identity, its key, and the signing headers.

The state directory (default /var/lib/cloudassist-agent, mode 0700) holds:

* `identity.json`: {instance_id, machine_id, region_id, server, ca_file, name}; its existence means
  "registered", so it is written last, after the key. `server` is one HOST:PORT, or several separated by
  commas (servers behind one database, used in that order: see client.ServerClient);
* `private-key.pem` (mode 0600, PKCS#8; a PKCS#1 key written by hand is read too) and `public-key.pem`;
* `machine-id`: only when the host has no usable /etc/machine-id;
* `ca.pem`: a copy of the CA given at registration, so the agent trusts exactly that CA (pinned);
* `journal/` and `spool/` (see journal.py and spool.py).

Every request after registration carries `X-Acs-Instance-Id`, `X-Acs-Timestamp` (ms), `X-Acs-Request-Id`
(a UUIDv4) and `X-Acs-Signature` = base64(RSA PKCS#1 v1.5 over MD5(instance id + machine id + timestamp +
request id)), as the official agent signs them (agent-protocol §1.2). The server checks the key, the
timestamp window and that the request id is new.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cloudassist.agent import keys

DEFAULT_STATE_DIR = Path("/var/lib/cloudassist-agent")
IDENTITY_FILE = "identity.json"
PRIVATE_KEY_FILE = "private-key.pem"
PUBLIC_KEY_FILE = "public-key.pem"
MACHINE_ID_FILE = "machine-id"
CA_FILE = "ca.pem"
KEY_BITS = 2048
RUNTIME_DIR_ENV = "CLOUDASSIST_AGENT_RUNTIME_DIR"
_MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")


class IdentityError(Exception):
    """The state directory holds no usable identity (not registered, unreadable, or unsafe)."""


@dataclass(frozen=True)
class Identity:
    """A registered agent: what identity.json says, and the private key that proves it."""

    instance_id: str
    machine_id: str
    region_id: str
    server: str  #: HOST:PORT of the agent face (https); several, separated by commas, to fail over
    ca_file: str  #: PEM file of the CA to trust; "" = the system's CAs
    name: str
    private_key: keys.PrivateKey = field(repr=False, compare=False)

    @property
    def servers(self) -> list[str]:
        """The server addresses, in the order they are tried."""
        return split_servers(self.server)

    def public_record(self) -> dict[str, str]:
        """The fields of identity.json."""
        record = asdict(self)
        del record["private_key"]
        return record


def split_servers(text: str) -> list[str]:
    """`a:8443,b:8443` (spaces allowed) → the addresses, in order, each once."""
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def generate() -> keys.PrivateKey:
    """A new RSA-2048 key pair, as the official agent makes at registration."""
    return keys.generate(KEY_BITS)


def public_key_pem(key: keys.PrivateKey) -> bytes:
    """The public half as a PEM `PUBLIC KEY` (PKIX)."""
    return keys.public_pem(key)


def ensure_state_dir(state_dir: Path) -> None:
    """Create the state directory (and parents) and make it 0700: it holds a private key."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)


def host_machine_id() -> str | None:
    """/etc/machine-id (or the D-Bus copy) when it holds a well-formed id."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip().lower()
        except OSError:
            continue
        if _MACHINE_ID.match(text):
            return text
    return None


def machine_id(state_dir: Path) -> str:
    """The host's machine id; else one generated once and kept in the state directory.

    Several agents on one host (several state directories) may share it: the instance id tells them apart.
    """
    found = host_machine_id()
    if found:
        return found
    path = state_dir / MACHINE_ID_FILE
    try:
        text = path.read_text().strip()
        if _MACHINE_ID.match(text):
            return text
    except OSError:
        pass
    ensure_state_dir(state_dir)
    generated = uuid.uuid4().hex
    write_atomic(path, (generated + "\n").encode(), mode=0o644)
    return generated


def cold_start(state_dir: Path) -> bool:
    """True on the first agent start since boot: a flag in RAM (/dev/shm) is absent (agent-protocol §1.9).

    The flag's name is derived from the state directory, so each agent on a host has its own. The
    environment variable CLOUDASSIST_AGENT_RUNTIME_DIR names another directory for it (tests use this)."""
    tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    override = os.environ.get(RUNTIME_DIR_ENV, "")
    bases = (override,) if override else ("/dev/shm", "/run")  # noqa: S108 - tmpfs, wiped at boot: the point
    for base in bases:
        if os.path.isdir(base) and os.access(base, os.W_OK):
            try:
                os.close(os.open(f"{base}/cloudassist-agent-{tag}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                return False
            except OSError:
                continue
            return True
    return False


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so a rename or unlink in it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write `data` to `path` all or nothing: temp file (created with `mode`), fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def is_registered(state_dir: Path) -> bool:
    return (state_dir / IDENTITY_FILE).exists()


def save(state_dir: Path, identity: Identity) -> None:
    """Store `identity`: the key pair first, identity.json last (its presence means registered)."""
    ensure_state_dir(state_dir)
    write_atomic(state_dir / PRIVATE_KEY_FILE, keys.private_pem(identity.private_key), mode=0o600)
    write_atomic(state_dir / PUBLIC_KEY_FILE, public_key_pem(identity.private_key), mode=0o644)
    record = json.dumps(identity.public_record(), indent=2, sort_keys=True) + "\n"
    write_atomic(state_dir / IDENTITY_FILE, record.encode(), mode=0o600)


def load(state_dir: Path) -> Identity:
    """The identity stored in `state_dir`; IdentityError if there is none or it is not safe to use.

    A private key readable by group or others is refused (as ssh refuses one): fix it with chmod 600.
    """
    path = state_dir / IDENTITY_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise IdentityError(f"not registered: {path} does not exist (run `agent register` first)") from None
    except (OSError, ValueError) as exc:
        raise IdentityError(f"cannot read {path}: {exc}") from None
    key_path = state_dir / PRIVATE_KEY_FILE
    try:
        mode = stat.S_IMODE(key_path.stat().st_mode)
        if mode & 0o077:
            raise IdentityError(f"{key_path} is accessible by others (mode {mode:o}); chmod 600 it")
        key = keys.load_private_pem(key_path.read_bytes())
    except OSError as exc:
        raise IdentityError(f"cannot read {key_path}: {exc}") from None
    except keys.NotRSAKey:
        raise IdentityError(f"{key_path} is not an RSA key") from None
    except ValueError as exc:
        raise IdentityError(f"{key_path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(record, dict) or not split_servers(str(record.get("server") or "")):
        raise IdentityError(f"{path} names no server")
    try:
        return Identity(
            instance_id=str(record["instance_id"]),
            machine_id=str(record["machine_id"]),
            region_id=str(record["region_id"]),
            server=str(record["server"]),
            ca_file=str(record.get("ca_file") or ""),
            name=str(record.get("name") or ""),
            private_key=key,
        )
    except (KeyError, TypeError) as exc:
        raise IdentityError(f"{path} lacks a field: {exc}") from None


def forget(state_dir: Path) -> None:
    """Remove the identity (identity.json first, then the keys and the pinned CA)."""
    for name in (IDENTITY_FILE, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, CA_FILE):
        (state_dir / name).unlink(missing_ok=True)
    if state_dir.exists():
        fsync_dir(state_dir)


def signature(identity: Identity, timestamp: str, request_id: str) -> str:
    """base64(RSA PKCS#1 v1.5 signature over MD5(instance id + machine id + timestamp + request id))."""
    message = (identity.instance_id + identity.machine_id + timestamp + request_id).encode()
    return base64.b64encode(keys.sign_md5(identity.private_key, message)).decode("ascii")


def sign_headers(identity: Identity) -> dict[str, str]:
    """Fresh signing headers for one request (a new request id and the current time every call)."""
    timestamp = str(int(time.time() * 1000))
    request_id = str(uuid.uuid4())
    return {
        "X-Acs-Instance-Id": identity.instance_id,
        "X-Acs-Timestamp": timestamp,
        "X-Acs-Request-Id": request_id,
        "X-Acs-Signature": signature(identity, timestamp, request_id),
    }
