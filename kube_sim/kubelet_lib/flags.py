"""The kubelet's command-line flags (Go pflag style: --name=value, --name value, --bool)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

VALUE_FLAGS = {
    "kubeconfig",
    "bootstrap-kubeconfig",
    "config",
    "node-labels",
    "hostname-override",
    "node-ip",
    "container-runtime-endpoint",
    "image-service-endpoint",
    "pod-infra-container-image",
    "register-with-taints",
    "cert-dir",
    "root-dir",
    "provider-id",
    "cgroup-driver",
    "runtime-cgroups",
    "kubelet-cgroups",
    "max-pods",
    "cluster-dns",
    "cluster-domain",
    "resolv-conf",
    "address",
    "port",
    "v",
    "feature-gates",
    "runtime-request-timeout",
    "volume-plugin-dir",
    "log-flush-frequency",
}
BOOL_FLAGS = {"fail-swap-on", "rotate-certificates", "register-node", "version", "help"}

# Labels a kubelet may set on its own Node in the kubernetes.io / k8s.io namespaces.
ALLOWED_LABELS = {
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
}
ALLOWED_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
TAINT_RE = re.compile(r"^([^=:]+)(=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$")


class FlagError(ValueError):
    pass


@dataclass
class Flags:
    values: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def flag(self, name: str) -> bool:
        return self.values.get(name, "false").lower() in ("true", "1", "")


def parse(argv: list[str]) -> Flags:
    flags = Flags()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError(f"unknown command {arg!r} for kubelet")
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq:
            if name in VALUE_FLAGS:
                if i >= len(argv):
                    raise FlagError(f"flag needs an argument: --{name}")
                value = argv[i]
                i += 1
            else:
                value = "true"
        if name not in VALUE_FLAGS and name not in BOOL_FLAGS:
            flags.unknown.append(name)
        flags.values[name] = value
    return flags


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise FlagError(f"invalid label {item!r} in --node-labels (expected key=value)")
        labels[key.strip()] = value.strip()
    return labels


def forbidden_labels(labels: dict[str, str]) -> list[str]:
    """Labels in kubernetes.io/k8s.io namespaces a kubelet may not set (the real check)."""
    bad = []
    for key in labels:
        if "/" not in key:
            continue
        namespace = key.split("/", 1)[0]
        restricted = any(
            namespace == d or namespace.endswith("." + d) for d in ("kubernetes.io", "k8s.io")
        )
        if not restricted or key in ALLOWED_LABELS:
            continue
        if any(namespace == d or namespace.endswith("." + d) for d in ALLOWED_LABEL_NAMESPACES):
            continue
        bad.append(key)
    return sorted(bad)


def parse_taints(text: str) -> list[dict[str, str]]:
    taints = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        match = TAINT_RE.match(item)
        if not match:
            raise FlagError(f"invalid taint spec {item!r} in --register-with-taints")
        taint = {"key": match.group(1), "effect": match.group(4)}
        if match.group(3):
            taint["value"] = match.group(3)
        taints.append(taint)
    return taints
