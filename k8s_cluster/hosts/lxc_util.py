"""Small system helpers shared by the local (LXC) provider: commands and file locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class LocalHostError(RuntimeError):
    """Something the local (LXC) provider tried on this machine failed."""


class CommandError(LocalHostError):
    """A command exited non-zero; the message carries the command and the tail of its output."""

    def __init__(self, what: str, argv: Sequence[str], returncode: int, output: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        super().__init__(
            f"{what}: `{shlex.join(self.argv)}` exited {returncode}: "
            + (tail(output) or "(no output)")
        )


def tail(text: str, lines: int = 15) -> str:
    """The last lines of a command's output, for error messages."""
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    what: str,
    *,
    check: bool = True,
    timeout: float = 120,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing stdout and stderr together; raise CommandError on failure."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LocalHostError(f"{what}: command not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode()
        raise CommandError(what, argv, -1, f"timed out after {timeout:g} s\n{output}") from exc
    if check and proc.returncode != 0:
        raise CommandError(what, argv, proc.returncode, proc.stdout)
    return proc


class FileLock:
    """An exclusive flock(2) on a lock file, usable across threads and processes.

    Each acquisition opens the file anew, so two threads of one process exclude each other too.
    `remove()` deletes the lock file while holding it; a waiter that then gets the stale inode
    notices and retries on the new file, so lock files can be cleaned up safely.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:  # parent removed between mkdir and open
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Delete the lock file (call while holding the lock, just before release)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file atomically (temporary file + rename) with the given mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{id(text)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this mount namespace, deepest first."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        for line in handle:
            target = line.split()[1].encode().decode("unicode_escape")
            if target == prefix or target.startswith(prefix + "/"):
                found.append(target)
    return sorted(found, key=len, reverse=True)


def unmount_under(path: Path) -> None:
    """Lazily unmount everything mounted below `path` (e.g. left over by a failed debootstrap)."""
    for target in mounts_under(path):
        try:
            run(["umount", "-l", target], f"unmount {target}")
        except CommandError as exc:
            if "not mounted" not in exc.output:
                raise


def remove_tree(path: Path) -> None:
    """Remove a directory tree that may hold mount points, without following them."""
    if not path.exists() and not path.is_symlink():
        return
    unmount_under(path)
    # rm -rf --one-file-system refuses to cross into anything still mounted.
    run(["rm", "-rf", "--one-file-system", "--", str(path)], f"remove {path}", timeout=600)


def machine_lock_dir() -> Path:
    """Where locks shared by every deployment on this machine live."""
    return Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())


class Slots:
    """At most `count` holders at once across threads and processes: one flock per slot file.
    Used to admit only a few container boots at a time, as a hypervisor does."""

    def __init__(self, directory: Path, name: str, count: int) -> None:
        self.paths = [directory / f"{name}-{i}.lock" for i in range(count)]
        self._fd: int | None = None

    def __enter__(self) -> Self:
        while self._fd is None:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._fd = fd
                break
            else:
                time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
