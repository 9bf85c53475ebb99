"""The kubelet stand-in: flags, start-up failures, signals, healthz, pod bookkeeping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kube_sim.common import kubeconfig, pki, unitfiles, yamlsubset
from kube_sim.kubelet_lib import flags, pods

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kubelet(root: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, KUBE_SIM_ROOT=str(root), PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "kube_sim.kubelet", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_node_files(root: Path, healthz_port: int = 0) -> None:
    """config.yaml and a kubelet.conf pointing at a port nothing listens on."""
    ca_key = pki.generate_key("ECDSA-P256")
    ca = pki.create_ca(ca_key)
    key, cert = pki.issue(ca, ca_key, "system:node:n1", ["system:nodes"], algorithm="ECDSA-P256")
    conf = kubeconfig.build(
        cluster_name="default-cluster",
        server=f"https://127.0.0.1:{free_port()}",
        ca_pem=ca,
        user="default-auth",
        cert_pem=cert,
        key_pem=key,
    )
    (root / "etc/kubernetes").mkdir(parents=True)
    (root / "etc/kubernetes/kubelet.conf").write_text(kubeconfig.dumps(conf))
    (root / "var/lib/kubelet").mkdir(parents=True)
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "healthzPort": healthz_port,
        "healthzBindAddress": "127.0.0.1",
    }
    (root / "var/lib/kubelet/config.yaml").write_text(yamlsubset.dump(config))


def test_flags_parsing() -> None:
    parsed = flags.parse(
        [
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config",
            "/var/lib/kubelet/config.yaml",
            "--node-labels=a=b,example.com/c=d",
            "--fail-swap-on=false",
            "--rotate-certificates",
            "--some-new-flag=1",
        ]
    )
    assert parsed.get("kubeconfig") == "/etc/kubernetes/kubelet.conf"
    assert parsed.get("config") == "/var/lib/kubelet/config.yaml"
    assert flags.parse_labels(parsed.get("node-labels") or "") == {"a": "b", "example.com/c": "d"}
    assert not parsed.flag("fail-swap-on") and parsed.flag("rotate-certificates")
    assert parsed.unknown == ["some-new-flag"]
    with pytest.raises(flags.FlagError):
        flags.parse(["--config"])
    with pytest.raises(flags.FlagError):
        flags.parse_labels("novalue")


def test_node_label_restrictions_like_the_real_kubelet() -> None:
    labels = {
        "node-role.kubernetes.io/worker": "",
        "node.kubernetes.io/pool": "a",
        "kubelet.kubernetes.io/x": "y",
        "topology.kubernetes.io/zone": "z",
        "example.com/team": "t",
        "foo.k8s.io/bar": "b",
    }
    assert flags.forbidden_labels(labels) == ["foo.k8s.io/bar", "node-role.kubernetes.io/worker"]


def test_register_with_taints() -> None:
    assert flags.parse_taints("a=b:NoSchedule,c:NoExecute") == [
        {"key": "a", "value": "b", "effect": "NoSchedule"},
        {"key": "c", "effect": "NoExecute"},
    ]
    with pytest.raises(flags.FlagError):
        flags.parse_taints("a=b:Sometimes")


def test_exits_until_kubeadm_wrote_its_files(tmp_path: Path) -> None:
    proc = kubelet(tmp_path, "--config=/var/lib/kubelet/config.yaml")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "failed to load kubelet config file, path: /var/lib/kubelet/config.yaml" in err
    (tmp_path / "var/lib/kubelet").mkdir(parents=True)
    (tmp_path / "var/lib/kubelet/config.yaml").write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
    )
    proc = kubelet(
        tmp_path,
        "--config=/var/lib/kubelet/config.yaml",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    )
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "unable to load bootstrap kubeconfig" in err


def test_forbidden_node_labels_stop_the_kubelet(tmp_path: Path) -> None:
    proc = kubelet(tmp_path, "--node-labels=node-role.kubernetes.io/worker=")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "node-role.kubernetes.io/worker" in err


def test_version_flag(tmp_path: Path) -> None:
    proc = kubelet(tmp_path, "--version")
    out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.startswith("Kubernetes v1.") and "-sim" in out


def test_sigterm_exits_promptly_and_healthz_answers(tmp_path: Path) -> None:
    port = free_port()
    write_node_files(tmp_path, healthz_port=port)
    proc = kubelet(
        tmp_path,
        "--config=/var/lib/kubelet/config.yaml",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--hostname-override=n1",
    )
    try:
        deadline = time.monotonic() + 20
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = r.read()
                    break
            except OSError:
                time.sleep(0.1)
        assert body == b"ok"
        time.sleep(1.5)  # registering against an API server that is not there: retrying
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
        assert time.monotonic() - started < 3
        assert proc.returncode == 0
        assert "Unable to register node" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pod_addresses_and_qos() -> None:
    cidr = pods.node_pod_cidr("w-1", None, "10.244.0.0/16")
    assert cidr.startswith("10.244.") and cidr.endswith("/24")
    assert pods.node_pod_cidr("w-1", "10.244.7.0/24", "10.244.0.0/16") == "10.244.7.0/24"
    agent = pods.PodAgent(
        client=None,
        node_name="w-1",
        host_ip="10.0.3.7",  # type: ignore[arg-type]
        pod_cidr="10.244.7.0/24",
    )
    used = {"10.244.7.2"}
    assert agent.allocate_ip(used) == "10.244.7.3"
    assert agent.allocate_ip(used) == "10.244.7.4"
    assert pods.qos_class({"containers": [{"name": "a"}]}) == "BestEffort"
    limits = {"cpu": "1", "memory": "1Gi"}
    assert (
        pods.qos_class(
            {"containers": [{"name": "a", "resources": {"limits": limits, "requests": limits}}]}
        )
        == "Guaranteed"
    )
    assert (
        pods.qos_class({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]})
        == "Burstable"
    )


def test_needs_update() -> None:
    agent = pods.PodAgent(client=None, node_name="w-1", host_ip="10.0.3.7")  # type: ignore[arg-type]
    pod = {"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}}
    assert agent.needs_update(pod)
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.244.7.2",
        "conditions": [{"type": c, "status": "True"} for c in pods.POD_CONDITIONS],
        "containerStatuses": [{"name": "a", "ready": True}],
    }
    assert not agent.needs_update(pod)


def test_unit_files_are_shaped_like_the_real_ones() -> None:
    assert "Restart=always" in unitfiles.KUBELET_SERVICE
    assert "RestartSec=2" in unitfiles.KUBELET_SERVICE
    dropin = unitfiles.KUBEADM_DROPIN
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin
    assert "--kubeconfig=/etc/kubernetes/kubelet.conf" in dropin
    assert "--config=/var/lib/kubelet/config.yaml" in dropin
    assert dropin.splitlines()[-1] == (
        "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
        "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS"
    )
    env = unitfiles.parse_env_file('KUBELET_KUBEADM_ARGS="--a=1 --b=2"\n# comment\n')
    assert env == {"KUBELET_KUBEADM_ARGS": "--a=1 --b=2"}
    unit = unitfiles.render_apiserver_unit(["--bind", "0.0.0.0", "--port", "6443"])
    assert "ExecStart=/usr/bin/python3 -m kube_sim.apiserver --bind 0.0.0.0 --port 6443" in unit
    assert "Environment=PYTHONPATH=/usr/lib/kube-sim" in unit
