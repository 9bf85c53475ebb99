"""Starting and stopping the stand-ins' services: systemd on hosts, plain processes in tests.

On hosts kubeadm drives systemd (`systemctl restart kubelet`, the kube-apiserver-sim unit).

TEST ONLY: with KUBE_SIM_NO_SYSTEMD=1 (development machines whose PID 1 is not systemd) the
services run as plain background processes instead, with pid files and logs under
$KUBE_SIM_ROOT/run/kube-sim. The command lines are the ones the systemd units would run.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kube_sim.common import paths

NO_SYSTEMD_ENV = "KUBE_SIM_NO_SYSTEMD"
APISERVER_CMD_ENV = "KUBE_SIM_APISERVER_CMD"


def no_systemd() -> bool:
    return os.environ.get(NO_SYSTEMD_ENV, "") not in ("", "0")


def package_parent() -> str:
    """The directory that holds the kube_sim package (what PYTHONPATH must contain)."""
    return str(Path(__file__).resolve().parent.parent.parent)


class ServiceError(RuntimeError):
    pass


class Systemd:
    """Services managed by systemctl."""

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise ServiceError(f"systemctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def daemon_reload(self) -> None:
        self._run("daemon-reload")

    def enable(self, name: str) -> None:
        self._run("enable", name)

    def disable(self, name: str) -> None:
        self._run("disable", name, check=False)

    def restart(self, name: str) -> None:
        self._run("restart", name)

    def stop(self, name: str) -> None:
        self._run("stop", name, check=False)

    def is_enabled(self, name: str) -> bool:
        return self._run("is-enabled", name, check=False).stdout.strip() == "enabled"

    def is_active(self, name: str) -> bool:
        return self._run("is-active", name, check=False).returncode == 0

    def exists(self, name: str) -> bool:
        proc = self._run("cat", name, check=False)
        return proc.returncode == 0

    def logs(self, name: str, lines: int = 20) -> str:
        proc = subprocess.run(
            ["journalctl", "-u", name, "-n", str(lines), "--no-pager", "-o", "cat"],
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout


class Processes:
    """TEST ONLY: services as plain background processes (see the module docstring)."""

    def __init__(self, commands: dict[str, Callable[[], list[str]]]) -> None:
        self.commands = commands
        self.run_dir = paths.host("/run/kube-sim")

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def daemon_reload(self) -> None:
        pass

    def enable(self, name: str) -> None:
        pass

    def disable(self, name: str) -> None:
        pass

    def is_enabled(self, name: str) -> bool:
        return True

    def exists(self, name: str) -> bool:
        return name in self.commands

    def is_active(self, name: str) -> bool:
        return self._pid(name) is not None

    def restart(self, name: str) -> None:
        self.stop(name)
        if name not in self.commands:
            raise ServiceError(f"unknown service {name}")
        argv = self.commands[name]()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = package_parent() + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        with open(self.logfile(name), "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._pidfile(name).write_text(f"{proc.pid}\n")

    def stop(self, name: str) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                finished, _status = os.waitpid(pid, os.WNOHANG)
                if finished == pid:
                    break
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self._pidfile(name).unlink(missing_ok=True)

    def logs(self, name: str, lines: int = 20) -> str:
        try:
            text = self.logfile(name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def python_module_command(module: str, args: list[str]) -> list[str]:
    """The test-mode command line for `python3 -m module args` (this interpreter)."""
    return [sys.executable, "-m", module, *args]


def apiserver_command(args: list[str]) -> list[str]:
    """TEST ONLY override: KUBE_SIM_APISERVER_CMD replaces `python3 -m kube_sim.apiserver`."""
    override = os.environ.get(APISERVER_CMD_ENV)
    if override:
        return [*shlex.split(override), *args]
    return python_module_command("kube_sim.apiserver", args)
