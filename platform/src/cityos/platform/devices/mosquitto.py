"""mosquitto's password file and ACL from the device registry, written atomically; reload."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cityos.platform.devices.credentials import hash_password
from cityos.platform.domain.errors import CityosError, InvalidInput
from cityos.platform.domain.ids import check_device_id
from cityos.platform.ports import DeviceCredential
from cityos.platform.secrets import read_secret_file

FILE_MODE = 0o640  # the broker's group reads it; nobody else
UPLINK = "cityos/v1/devices/{}/up"
# A username goes into `user <name>` lines of the ACL: no whitespace, nothing MQTT wildcards
# or mosquitto's `%u`/`%c` patterns could turn into more than one name, no ':' (password file).
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class WorkerAccount:
    """The ingest workers' MQTT account: may read every device's uplink topic."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What `mosquitto sync` writes: the two files' text and which devices are in them."""

    password_file: str
    acl_file: str
    devices: list[str]
    revoked: list[str]
    without_password: list[str]


def check_username(username: str) -> str:
    """Return `username` if it is safe in mosquitto's password and ACL files."""
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            f"MQTT username {username[:70]!r} must be 1..64 letters, digits, '.', '_' or '-'",
            field="username",
        )
    return username


def plan_sync(credentials: Sequence[DeviceCredential], worker: WorkerAccount | None) -> SyncPlan:
    """Render the password file and ACL for the active devices (and the worker account)."""
    devices = [c for c in credentials if not c.revoked and c.credential_hash]
    for credential in devices:
        check_device_id(credential.device_id)
        if "\n" in (credential.credential_hash or "") or ":" in credential.device_id:
            raise InvalidInput(f"device {credential.device_id!r}: malformed credential hash")
    if worker is not None and any(c.device_id == worker.username for c in credentials):
        raise InvalidInput(f"worker username {worker.username!r} is also a device id")
    passwords = [f"{c.device_id}:{c.credential_hash}" for c in devices]
    acl = [
        "# Written by `cityos mosquitto sync`; edits are overwritten at the next sync.",
        "# Each device may publish only to its own uplink topic and read nothing; clients",
        "# without a `user` block below (anonymous ones included) may do nothing.",
    ]
    for credential in devices:
        acl += [
            "",
            f"user {credential.device_id}",
            f"topic write {UPLINK.format(credential.device_id)}",
        ]
    if worker is not None:
        check_username(worker.username)
        passwords.append(f"{worker.username}:{hash_password(worker.password)}")
        # mosquitto 2.0 checks a `$share/<group>/...` subscription against the topic filter
        # after the share prefix, so this line covers the workers' shared subscription too.
        acl += [
            "",
            "# the ingest workers (shared subscription $share/<group>/cityos/v1/devices/+/up)",
            f"user {worker.username}",
            f"topic read {UPLINK.format('+')}",
        ]
    return SyncPlan(
        password_file="".join(f"{line}\n" for line in passwords),
        acl_file="".join(f"{line}\n" for line in acl),
        devices=[c.device_id for c in devices],
        revoked=[c.device_id for c in credentials if c.revoked],
        without_password=[
            c.device_id for c in credentials if not c.revoked and not c.credential_hash
        ],
    )


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (mode 0640) so a reader sees the old or the new file, whole."""
    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def reload_broker(pid_file: Path) -> int:
    """Send SIGHUP to the mosquitto whose pid is in `pid_file`; return the pid."""
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise CityosError(f"cannot read pid file {pid_file}: {exc.strerror}") from None
    if not text.isdigit() or int(text) <= 1:
        raise CityosError(f"pid file {pid_file} holds no process id: {text[:40]!r}")
    pid = int(text)
    comm = Path(f"/proc/{pid}/comm")
    try:
        name = comm.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CityosError(
            f"no process {pid} (from {pid_file}): is mosquitto running? nothing reloaded"
        ) from None
    except OSError:
        name = "mosquitto"  # no /proc here: rely on the kill below
    if name != "mosquitto":  # a stale pid file; SIGHUP would kill most other programs
        raise CityosError(f"process {pid} (from {pid_file}) is {name!r}, not mosquitto")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise CityosError(f"no process {pid} (from {pid_file}): is mosquitto running?") from None
    except PermissionError:
        raise CityosError(
            f"not allowed to signal process {pid} (run as mosquitto's user)"
        ) from None
    return pid


def worker_password(
    *,
    username: str,
    password: str | None,
    password_file: Path | None,
    url_username: str | None,
    url_password: str | None,
) -> str:
    """The worker's password: configured, from a secret file, or from the worker's MQTT URL."""
    if password:
        return password
    if password_file is not None:
        return read_secret_file(password_file, "worker password")
    if url_password and url_username == username:
        return url_password
    raise CityosError(
        f"no password for worker {username!r}: set CITYOS__MQTT__WORKER_PASSWORD or "
        "CITYOS__MQTT__WORKER_PASSWORD_FILE (or put it in CITYOS__MQTT__URL as that user)"
    )
