"""systemd unit files of the stand-ins, and the environment files kubeadm writes for kubelet."""

from __future__ import annotations

import shlex

from kube_sim.common import paths

KUBELET_SERVICE = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent (kube-sim STAND-IN, for tests only)
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROPIN = "\n".join(
    [
        "# Note: This dropin only works with kubeadm and kubelet v1.11+",
        "[Service]",
        'Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/'
        'bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"',
        'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"',
        '# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, '
        "populating the KUBELET_KUBEADM_ARGS variable dynamically",
        "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env",
        "# This is a file that the user can use for overrides of the kubelet args as a last "
        "resort. Preferably, the user should use",
        "# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. "
        "KUBELET_EXTRA_ARGS should be sourced from this file.",
        "EnvironmentFile=-/etc/default/kubelet",
        "ExecStart=",
        "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
        "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS",
        "",
    ]
)

APISERVER_UNIT_TEMPLATE = """\
[Unit]
Description=kube-apiserver STAND-IN (kube-sim: for tests and rehearsals, never for real clusters)
Documentation=file:///usr/lib/kube-sim/kube_sim/CONTRACT.md
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Environment=PYTHONPATH=/usr/lib/kube-sim
Environment=PYTHONDONTWRITEBYTECODE=1
ExecStart={exec_start}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def render_apiserver_unit(args: list[str]) -> str:
    exec_start = " ".join(["/usr/bin/python3", "-m", "kube_sim.apiserver", *args])
    return APISERVER_UNIT_TEMPLATE.format(exec_start=exec_start)


def parse_env_file(text: str) -> dict[str, str]:
    """Parse a systemd EnvironmentFile (KEY=VALUE lines, optional quotes, # comments)."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def read_env_file(path: str) -> dict[str, str]:
    try:
        return parse_env_file(paths.host(path).read_text())
    except OSError:
        return {}


def render_env_file(variable: str, args: list[str]) -> str:
    return f'{variable}="{" ".join(args)}"\n'


def kubelet_argv() -> list[str]:
    """The kubelet arguments systemd would pass with the kubeadm drop-in (test mode only)."""
    kubeadm_args = read_env_file(paths.KUBELET_FLAGS_ENV).get("KUBELET_KUBEADM_ARGS", "")
    extra_args = read_env_file(paths.KUBELET_DEFAULTS).get("KUBELET_EXTRA_ARGS", "")
    return [
        f"--bootstrap-kubeconfig={paths.BOOTSTRAP_KUBELET_CONF}",
        f"--kubeconfig={paths.KUBELET_CONF}",
        f"--config={paths.KUBELET_CONFIG}",
        *shlex.split(kubeadm_args),
        *shlex.split(extra_args),
    ]
