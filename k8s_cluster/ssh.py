"""SSH to the hosts with Fabric: verified host keys, bounded timeouts, redacted output."""

from __future__ import annotations

import base64
import errno
import secrets
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Connection
from invoke.exceptions import CommandTimedOut

from .hosts import Host
from .redact import redact

CONNECT_TIMEOUT = 10  # TCP connect
BANNER_TIMEOUT = 10  # a frozen machine accepts TCP but never sends its banner
AUTH_TIMEOUT = 10
KEEPALIVE_INTERVAL = 5  # detect a machine that dies mid-command
COMMAND_TIMEOUT = 1200


class RemoteError(Exception):
    """A command failed on a host. The message is already redacted. reason: the failure in a
    few plain words (failure_words for a connection that failed; else the detail)."""

    def __init__(
        self, host: str, what: str, detail: str, exit_code: int | None = None, reason: str = ""
    ):
        self.host = host
        self.exit_code = exit_code
        self.reason = reason or detail
        super().__init__(f"{host}: {what}: {detail}".rstrip(": "))


NO_ROUTE = (errno.EHOSTUNREACH, errno.ENETUNREACH)
# paramiko's words when the peer accepted TCP but never spoke SSH in time (a hung machine)
SILENT_PEER = ("Error reading SSH protocol banner", "No existing session", "timed out")


def failure_words(err: BaseException) -> str:
    """Why an SSH connection failed, in a user's words: timed out, connection refused, no route
    to host, authentication refused or host key mismatch; else the library's own message."""
    if isinstance(err, paramiko.BadHostKeyException):
        return "host key mismatch"
    if isinstance(err, paramiko.AuthenticationException):
        return "authentication refused"
    if isinstance(err, paramiko.ssh_exception.NoValidConnectionsError):
        err = next(iter(err.errors.values()))  # one address: the error connecting to it
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, OSError) and err.errno in NO_ROUTE:
        return "no route to host"
    text = str(err)
    if any(words in text for words in SILENT_PEER):
        return "timed out"
    return text


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def known_hosts_name(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def parse_host_key(line: str) -> paramiko.PKey:
    """'ssh-ed25519 AAAA... [comment]' -> key; raises ValueError on anything else."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError(f"not an SSH public host key: {line!r}")
    return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))


def _verifying_client(host: Host) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    key = parse_host_key(host.host_key)
    client.get_host_keys().add(known_hosts_name(host), key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


class Remote:
    """One SSH session to one host. Commands that need root run through sudo for other users."""

    def __init__(self, host: Host, secrets: Iterable[str] = (), timeout: float | None = None):
        """timeout: a shorter bound for connect, banner and authentication (health checks)."""
        self.host = host
        self.secrets = list(secrets)
        self._conn = Connection(
            host=host.address,
            user=host.user,
            port=host.port,
            connect_timeout=timeout or CONNECT_TIMEOUT,
            connect_kwargs={
                "key_filename": host.key_file,
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": timeout or BANNER_TIMEOUT,
                "auth_timeout": timeout or AUTH_TIMEOUT,
            },
        )
        # Replace Fabric's client: it would trust unknown keys and ~/.ssh/known_hosts entries.
        self._conn.client = _verifying_client(host)

    def __enter__(self) -> Remote:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        try:
            self._conn.open()
        except paramiko.BadHostKeyException as err:
            raise RemoteError(
                self.host.name,
                "SSH host key mismatch (refusing to connect)",
                str(err),
                reason=failure_words(err),
            ) from err
        except (paramiko.SSHException, OSError) as err:
            what = f"cannot SSH to {self.host.address}"
            words = failure_words(err)
            detail = words if words == str(err) else f"{words} ({err})"
            raise RemoteError(self.host.name, what, detail, reason=words) from err
        self._conn.transport.set_keepalive(KEEPALIVE_INTERVAL)

    def close(self) -> None:
        self._conn.close()

    def _as_root(self, command: str) -> str:
        if self.host.user == "root":
            return command
        return f"sudo -n -- bash -c {shlex.quote(command)}"

    def run(
        self,
        command: str,
        *,
        what: str,
        env: Mapping[str, str] | None = None,
        timeout: int = COMMAND_TIMEOUT,
        check: bool = True,
    ) -> Result:
        """Run `command` as root. `what` names the step in errors; output is redacted."""
        prefix = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
        try:
            raw = self._conn.run(  # in_stream=False: never forward cfy's own stdin
                self._as_root(prefix + command),
                hide=True,
                warn=True,
                timeout=timeout,
                pty=False,
                in_stream=False,
            )
        except CommandTimedOut as err:
            raise RemoteError(self.host.name, what, f"timed out after {timeout} s") from err
        except (paramiko.SSHException, OSError, EOFError) as err:
            reason = failure_words(err)
            raise RemoteError(self.host.name, what, f"SSH failed: {err}", reason=reason) from err
        result = Result(
            raw.exited, redact(raw.stdout, self.secrets), redact(raw.stderr, self.secrets)
        )
        if check and not result.ok:
            raise RemoteError(self.host.name, what, tail(result), result.exit_code)
        return result

    def upload(self, data: bytes, staging: str) -> None:
        """Write `data` as the login user to a private staging file (mode 0600)."""
        with self._conn.sftp().open(staging, "wb") as handle:
            handle.chmod(0o600)
            handle.write(data)

    def upload_file(self, local_path: Path, staging: str) -> None:
        """Copy a local file, as the login user, to `staging` (its folders made, mode 0600)."""
        folder = shlex.quote(staging.rsplit("/", 1)[0] or "/")
        self._conn.run(f"mkdir -p -m 0700 {folder}", hide=True)
        sftp = self._conn.sftp()
        sftp.put(str(local_path), staging)
        sftp.chmod(staging, 0o600)

    def put_text(self, content: str, remote_path: str, mode: int = 0o644) -> None:
        """Write a file as root with `mode`; it never exists with a wider mode."""
        staging = f"/tmp/.k8s-upload-{secrets.token_hex(8)}"
        self.upload(content.encode(), staging)
        directory = shlex.quote(remote_path.rsplit("/", 1)[0] or "/")
        self.run(
            f"mkdir -p {directory} && install -m {mode:o} {staging} {shlex.quote(remote_path)}"
            f" && rm -f {staging}",
            what=f"write {remote_path}",
        )

    def get_text(self, remote_path: str) -> str:
        """Read a file as root (it may be 0600 root-owned)."""
        command = self._as_root(f"cat {shlex.quote(remote_path)}")
        result = self._conn.run(command, hide=True, warn=True)
        if not result.ok:
            raise RemoteError(self.host.name, f"read {remote_path}", redact(result.stderr))
        return result.stdout


def tail(result: Result, lines: int = 15) -> str:
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return f"exit {result.exit_code}: " + "\n".join(text[-lines:])
