"""kubeadm's systemd calls (the mode used on hosts), checked with a recording `systemctl`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  is-enabled) echo disabled; exit 1 ;;
  is-active) exit 3 ;;
esac
exit 0
"""


def setup(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL.format(log=log))
    systemctl.chmod(0o755)
    root = tmp_path / "root"
    env = dict(os.environ)
    env.pop("KUBE_SIM_NO_SYSTEMD", None)
    env.update(
        KUBE_SIM_ROOT=str(root),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),
    )
    return root, env, log


def kubeadm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kube_sim.kubeadm", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_reset_stops_services_and_removes_the_apiserver_unit(tmp_path: Path) -> None:
    root, env, log = setup(tmp_path)
    unit = root / "etc/systemd/system/kube-apiserver-sim.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/bin/python3 -m kube_sim.apiserver\n")
    for path in (
        "etc/kubernetes/admin.conf",
        "var/lib/kubelet/config.yaml",
        "var/lib/kube-sim/state.json",
        "etc/cni/net.d/10-flannel.conflist",
        "etc/kubernetes/pki/ca.crt",
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x")
    result = kubeadm(env, "reset", "-f")
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert "stop kubelet" in calls
    assert "stop kube-apiserver-sim" in calls
    assert "disable kube-apiserver-sim.service" in calls
    assert "daemon-reload" in calls
    assert not unit.exists()
    for path in (
        "etc/kubernetes/admin.conf",
        "var/lib/kubelet/config.yaml",
        "var/lib/kube-sim/state.json",
        "etc/cni/net.d/10-flannel.conflist",
        "etc/kubernetes/pki/ca.crt",
    ):
        assert not (root / path).exists(), path
    assert (root / "etc/cni/net.d").is_dir()  # contents removed, like real reset


def test_reset_without_force_asks(tmp_path: Path) -> None:
    _root, env, _log = setup(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "kube_sim.kubeadm", "reset"],
        cwd=REPO,
        env=env,
        input="n\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1 and "Are you sure you want to proceed?" in proc.stdout
    assert "aborted reset operation" in proc.stderr


def test_join_warns_when_kubelet_is_not_enabled(tmp_path: Path) -> None:
    root, env, log = setup(tmp_path)
    config = tmp_path / "join.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
        "discovery:\n  bootstrapToken:\n    apiServerEndpoint: 127.0.0.1:1\n"
        "    token: abcdef.0123456789abcdef\n    unsafeSkipCAVerification: true\n"
        "nodeRegistration:\n  name: w-1\n  ignorePreflightErrors: [all]\n"
        "timeouts: {discovery: 1s}\n"
    )
    result = kubeadm(env, "join", "--config", str(config))
    assert result.returncode == 1
    assert "[WARNING Service-Kubelet]: kubelet service is not enabled" in result.stderr
    assert "[WARNING CRI]" in result.stderr  # ignored through ignorePreflightErrors: [all]
    assert "couldn't validate the identity of the API Server" in result.stderr
    assert "is-enabled kubelet.service" in log.read_text()
    assert not (root / "etc/kubernetes/kubelet.conf").exists()
