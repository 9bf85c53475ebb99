"""What a bundle holds for one Kubernetes version: which modules, at which versions.

Kubernetes itself gives the version of etcd, CoreDNS and pause (kubeadm's own image list); the
rest is pinned here per minor, to releases the Go module proxy serves and that support it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .gobuild import GoBuild

SUPPORTED_MINORS = ("1.36", "1.37")
_VERSION = re.compile(r"v?(1)\.(\d+)\.(\d+)")
ZERO_COMMIT = "0" * 40  # built from a module, not a git checkout: there is no commit to stamp


@dataclass(frozen=True)
class Pins:
    containerd: str
    runc: str
    cni_plugins: str
    flannel: str
    cri_tools: str


# containerd 2.x answers the kubelet's RuntimeConfig call (its cgroup driver); runc at the
# version containerd's own release ships with; the CNI plugins and crictl at their newest.
_PINS = Pins(
    containerd="2.4.2",
    runc="1.5.2",
    cni_plugins="1.10.0",
    flannel="0.28.10",
    cri_tools="1.37.0",
)
PINS = {minor: _PINS for minor in SUPPORTED_MINORS}

# The flannel CNI plugin (the node side of flannel: it hands each pod to the bridge plugin with
# an address of the node's flannel subnet) moved out of containernetworking/plugins into a
# repository the proxy does not serve; v0.9.1 is the last plugins release that carries it.
FLANNEL_CNI_PLUGINS = "0.9.1"

KUBERNETES_COMMANDS = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
)
CNI_PLUGINS = (
    "main/bridge",
    "main/ptp",
    "main/loopback",
    "main/host-device",
    "main/macvlan",
    "main/ipvlan",
    "main/vlan",
    "main/dummy",
    "main/tap",
    "ipam/host-local",
    "ipam/static",
    "ipam/dhcp",
    "meta/portmap",
    "meta/bandwidth",
    "meta/firewall",
    "meta/tuning",
    "meta/sbr",
    "meta/vrf",
)


def parse_version(text: str) -> tuple[int, int, int]:
    """'1.37.2' or 'v1.37.2' -> (1, 37, 2), for a supported minor; ValueError otherwise."""
    match = _VERSION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"Kubernetes version {text!r} is not X.Y.Z (for example 1.37.2)")
    version = (int(match[1]), int(match[2]), int(match[3]))
    if f"1.{version[1]}" not in PINS:
        raise ValueError(
            f"Kubernetes version {text!r}: bundles are built for {', '.join(SUPPORTED_MINORS)}"
        )
    return version


def closest_served(wanted: str, served: list[str]) -> str:
    """`wanted` ("v1.14.2") if the proxy serves it, else the nearest later patch of the same
    minor it serves; ValueError when there is none."""
    if wanted in served:
        return wanted
    major_minor = wanted.rsplit(".", 1)[0] + "."
    patch = int(wanted.rsplit(".", 1)[1])
    later = [
        v
        for v in served
        if v.startswith(major_minor)
        and v[len(major_minor) :].isdigit()
        and int(v[len(major_minor) :]) > patch
    ]
    if not later:
        raise ValueError(
            f"{wanted} is not served by the Go module proxy, nor any later patch of it "
            f"(served: {', '.join(served[-8:]) or 'none'})"
        )
    return min(later, key=lambda v: int(v[len(major_minor) :]))


def kubernetes(version: tuple[int, int, int]) -> GoBuild:
    major, minor, patch = version
    tag = f"v{major}.{minor}.{patch}"
    stamp = {
        "gitVersion": tag,
        "gitMajor": str(major),
        "gitMinor": str(minor),
        "gitCommit": ZERO_COMMIT,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    variables = {
        f"{package}.{name}": value
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in stamp.items()
    }
    return GoBuild(
        name="kubernetes",
        module="k8s.io/kubernetes",
        version=tag,
        packages=tuple(f"k8s.io/kubernetes/cmd/{command}" for command in KUBERNETES_COMMANDS),
        sibling_version=f"v0.{minor}.{patch}",  # staging modules are tagged v0.Y.Z
        variables=variables,
    )


def etcd(version: str) -> GoBuild:
    """etcd's server, at the version kubeadm's image list asks for ("3.7.0" of "3.7.0-0")."""
    tag = f"v{version}"
    return GoBuild(
        name="etcd",
        module="go.etcd.io/etcd/server/v3",
        version=tag,
        main="etcd",
        binary="etcd",
        sibling_version=tag,
        variables={"go.etcd.io/etcd/api/v3/version.GitSHA": "module"},
    )


def coredns(version: str) -> GoBuild:
    return GoBuild(
        name="coredns",
        module="github.com/coredns/coredns",
        version=version,
        main="coredns",
        binary="coredns",
        variables={"github.com/coredns/coredns/coremain.GitCommit": "module"},
    )


def containerd(pins: Pins) -> GoBuild:
    tag = f"v{pins.containerd}"
    package = "github.com/containerd/containerd/v2"
    return GoBuild(
        name="containerd",
        module=package,
        version=tag,
        packages=tuple(
            f"{package}/cmd/{command}"
            for command in ("containerd", "containerd-shim-runc-v2", "ctr")
        ),
        tags=("urfave_cli_no_docs", "no_btrfs", "osusergo", "netgo"),
        variables={
            f"{package}/version.Version": tag,
            f"{package}/version.Revision": "module",
            f"{package}/version.Package": "github.com/containerd/containerd/v2",
        },
    )


def runc(pins: Pins) -> GoBuild:
    """runc needs cgo (its namespace setup is C) and libseccomp, linked statically."""
    return GoBuild(
        name="runc",
        module="github.com/opencontainers/runc",
        version=f"v{pins.runc}",
        packages=("github.com/opencontainers/runc",),
        cgo=True,
        tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
        variables={"main.version": pins.runc, "main.gitCommit": "module"},
        extldflags="-static",
    )


def cni_plugins(pins: Pins) -> GoBuild:
    package = "github.com/containernetworking/plugins"
    return GoBuild(
        name="cni-plugins",
        module=package,
        version=f"v{pins.cni_plugins}",
        packages=tuple(f"{package}/plugins/{plugin}" for plugin in CNI_PLUGINS),
        variables={f"{package}/pkg/utils/buildversion.BuildVersion": f"v{pins.cni_plugins}"},
    )


def flannel_cni_plugin() -> GoBuild:
    package = "github.com/containernetworking/plugins"
    return GoBuild(
        name="flannel-cni-plugin",
        module=package,
        version=f"v{FLANNEL_CNI_PLUGINS}",
        packages=(f"{package}/plugins/meta/flannel",),
    )


def cri_tools(pins: Pins) -> GoBuild:
    return GoBuild(
        name="cri-tools",
        module="sigs.k8s.io/cri-tools",
        version=f"v{pins.cri_tools}",
        packages=("sigs.k8s.io/cri-tools/cmd/crictl",),
        variables={"sigs.k8s.io/cri-tools/pkg/version.Version": pins.cri_tools},
    )


def flannel(pins: Pins) -> GoBuild:
    """flanneld, linked statically (its UDP backend is C on amd64), with a stand-in for the
    Tencent Cloud client that the proxy does not serve (so without the tencent-vpc backend)."""
    return GoBuild(
        name="flannel",
        module="github.com/flannel-io/flannel",
        version=f"v{pins.flannel}",
        packages=("github.com/flannel-io/flannel",),
        cgo=True,
        tags=("netgo", "osusergo"),
        extldflags="-static",
        variables={"github.com/flannel-io/flannel/pkg/version.Version": f"v{pins.flannel}"},
        stubs={"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc": "tencentcloud-vpc"},
    )


def testapp() -> GoBuild:
    return GoBuild(
        name="testapp", module="", version=TESTAPP_VERSION, main="testapp", binary="testapp"
    )


TESTAPP_VERSION = "1.0"
