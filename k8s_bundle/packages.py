"""The bundle's Debian packages: the official names and file places, from the built binaries.

kubeadm, kubelet, kubectl, kubernetes-cni and cri-tools as pkgs.k8s.io names them; containerd and
runc as Debian names them (so they replace Debian's older builds on upgrade).
"""

from __future__ import annotations

from pathlib import Path

from k8s_cluster.render import render

from .debs import Deb

KUBELET_SERVICE = """\
[Unit]
Description=kubelet: the Kubernetes node agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
RestartSec=10
StartLimitInterval=0

[Install]
WantedBy=multi-user.target
"""

# kubeadm init and join write the kubelet's configuration and flags; this drop-in hands them to
# the kubelet. The variable and file names are the ones kubeadm writes.
KUBEADM_DROPIN = """\
# Installed by kubeadm: start the kubelet with what kubeadm init or join wrote for it.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# Last-resort flags of the machine's administrator (KUBELET_EXTRA_ARGS).
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS \
$KUBELET_EXTRA_ARGS
"""


SOURCE_NOTE = (
    "Built from upstream source ({module} {version}) by the k8s-cluster offline bundle\n"
    "builder, not the official release binaries."
)


def _binary(path: Path) -> tuple[int, bytes]:
    return 0o755, path.read_bytes()


def kubernetes_debs(
    version: str, bin_dir: Path, cni_version: str, crictl_version: str
) -> list[Deb]:
    note = SOURCE_NOTE.format(module="k8s.io/kubernetes", version=f"v{version}")
    minor = ".".join(version.split(".")[:2])
    return [
        Deb(
            "kubelet",
            version,
            "Kubernetes node agent",
            "Runs the pods of its node and reports them to the API server.\n\n" + note,
            files={
                "usr/bin/kubelet": _binary(bin_dir / "kubelet"),
                "usr/lib/systemd/system/kubelet.service": (0o644, KUBELET_SERVICE.encode()),
            },
            depends=(f"iptables, iproute2, mount, util-linux, kubernetes-cni (>= {cni_version})"),
            reloads_systemd=True,
        ),
        Deb(
            "kubeadm",
            version,
            "Kubernetes cluster bootstrapping tool",
            "Creates a cluster (kubeadm init) and joins nodes to it (kubeadm join).\n\n" + note,
            files={
                "usr/bin/kubeadm": _binary(bin_dir / "kubeadm"),
                "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (
                    0o644,
                    KUBEADM_DROPIN.encode(),
                ),
            },
            depends=(
                f"kubelet (>= {minor}.0), kubectl (>= {minor}.0), "
                f"kubernetes-cni (>= {cni_version}), cri-tools (>= {crictl_version})"
            ),
            reloads_systemd=True,
        ),
        Deb(
            "kubectl",
            version,
            "Kubernetes command-line client",
            "Runs commands against a Kubernetes cluster.\n\n" + note,
            files={"usr/bin/kubectl": _binary(bin_dir / "kubectl")},
        ),
    ]


def cni_deb(version: str, bin_dirs: list[Path], arch: str = "amd64") -> Deb:
    files = {
        f"opt/cni/bin/{binary.name}": _binary(binary)
        for bin_dir in bin_dirs
        for binary in sorted(bin_dir.iterdir())
    }
    return Deb(
        "kubernetes-cni",
        version,
        "Container Network Interface plugins",
        "The standard CNI plugins (bridge, ptp, host-local, portmap, ...) and flannel's,\n"
        "in /opt/cni/bin.\n\n"
        + SOURCE_NOTE.format(
            module="github.com/containernetworking/plugins", version=f"v{version}"
        ),
        files=files,
        arch=arch,
    )


def cri_tools_deb(version: str, bin_dir: Path) -> Deb:
    return Deb(
        "cri-tools",
        version,
        "Command-line client of CRI container runtimes (crictl)",
        "Inspects and debugs the containers and images of a CRI runtime.\n\n"
        + SOURCE_NOTE.format(module="sigs.k8s.io/cri-tools", version=f"v{version}"),
        files={"usr/bin/crictl": _binary(bin_dir / "crictl")},
    )


def runc_deb(version: str, bin_dir: Path) -> Deb:
    return Deb(
        "runc",
        version,
        "Open Container Initiative runtime",
        "Creates and runs containers from OCI bundles; containerd's default runtime.\n\n"
        + SOURCE_NOTE.format(module="github.com/opencontainers/runc", version=f"v{version}"),
        files={"usr/bin/runc": _binary(bin_dir / "runc")},
    )


def containerd_deb(version: str, bin_dir: Path, runc_version: str) -> Deb:
    return Deb(
        "containerd",
        version,
        "Container runtime (containerd 2, with its CRI plugin)",
        "The container runtime the kubelet talks to over CRI.\n\n"
        + SOURCE_NOTE.format(module="github.com/containerd/containerd/v2", version=f"v{version}"),
        files={
            "usr/bin/containerd": _binary(bin_dir / "containerd"),
            "usr/bin/containerd-shim-runc-v2": _binary(bin_dir / "containerd-shim-runc-v2"),
            "usr/bin/ctr": _binary(bin_dir / "ctr"),
            "usr/lib/systemd/system/containerd.service": (
                0o644,
                render("containerd.service.j2", containerd="/usr/bin/containerd").encode(),
            ),
        },
        depends=f"runc (>= {runc_version})",
        extra={"Conflicts": "containerd.io", "Replaces": "containerd.io"},
        reloads_systemd=True,
    )
