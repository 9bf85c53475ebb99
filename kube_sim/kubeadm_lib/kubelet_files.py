"""The kubelet's files kubeadm writes: config.yaml and kubeadm-flags.env."""

from __future__ import annotations

import copy
from typing import Any

from kube_sim.common import netinfo, paths, unitfiles, yamlsubset
from kube_sim.kubeadm_lib.config import NodeRegistration

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def kubelet_configuration(
    user: dict[str, Any], cluster_dns: str, dns_domain: str
) -> dict[str, Any]:
    """The cluster-wide KubeletConfiguration: kubeadm's defaults under the user's document."""
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": f"{paths.PKI_DIR}/ca.crt"},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"},
        },
        "cgroupDriver": "systemd",
        "clusterDNS": [cluster_dns],
        "clusterDomain": dns_domain,
        "containerRuntimeEndpoint": "",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "maxPods": 110,
        "rotateCertificates": True,
        "staticPodPath": paths.MANIFESTS_DIR,
    }
    _merge(config, copy.deepcopy(user))
    return config


def _merge(base: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def write_kubelet_config(config: dict[str, Any], cri_socket: str) -> None:
    node_config = copy.deepcopy(config)
    node_config["containerRuntimeEndpoint"] = cri_socket
    paths.write_file(paths.KUBELET_CONFIG, yamlsubset.dump(node_config), mode=0o644)


def kubeadm_flags(node: NodeRegistration, register_taints: bool) -> list[str]:
    """KUBELET_KUBEADM_ARGS: what kubeadm passes to this node's kubelet on its command line."""
    flags: dict[str, str] = {
        "container-runtime-endpoint": node.cri_socket,
        "pod-infra-container-image": PAUSE_IMAGE,
    }
    if node.name != netinfo.hostname():
        flags["hostname-override"] = node.name
    if register_taints and node.taints:
        flags["register-with-taints"] = ",".join(
            f"{t['key']}={t['value']}:{t['effect']}"
            if t.get("value")
            else f"{t['key']}:{t['effect']}"
            for t in node.taints
        )
    for name, value in node.kubelet_extra_args:
        flags[name.lstrip("-")] = value
    return [f"--{name}={value}" for name, value in sorted(flags.items())]


def write_flags_env(node: NodeRegistration, register_taints: bool) -> list[str]:
    flags = kubeadm_flags(node, register_taints)
    paths.write_file(
        paths.KUBELET_FLAGS_ENV, unitfiles.render_env_file("KUBELET_KUBEADM_ARGS", flags)
    )
    return flags
