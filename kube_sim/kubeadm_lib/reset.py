"""`kubeadm reset`: undo what init or join did on this host (the Node object stays)."""

from __future__ import annotations

import shutil
import sys

from kube_sim.common import paths
from kube_sim.kubeadm_lib import control_plane
from kube_sim.kubeadm_lib.errors import KubeadmError
from kube_sim.kubeadm_lib.init import say, warn

DIRECTORIES = [
    paths.MANIFESTS_DIR,
    paths.KUBELET_DIR,
    paths.PKI_DIR,
    paths.STATE_DIR,
    paths.CNI_DIR,
]
FILES = [
    paths.ADMIN_CONF,
    paths.SUPER_ADMIN_CONF,
    paths.KUBELET_CONF,
    paths.BOOTSTRAP_KUBELET_CONF,
    paths.CONTROLLER_MANAGER_CONF,
    paths.SCHEDULER_CONF,
]


def _clear_directory(path: str) -> None:
    target = paths.host(path)
    if not target.is_dir():
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def run(force: bool) -> None:
    if not force:
        warn(
            "W [reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' "
            "will be reverted."
        )
        print("[reset] Are you sure you want to proceed? [y/N]: ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise KubeadmError("aborted reset operation")
    say("[preflight] Running pre-flight checks")
    manager = control_plane.service_manager()
    say("[reset] Stopping the kubelet service")
    manager.stop(control_plane.KUBELET_SERVICE)
    unit = paths.host(control_plane.unit_path())
    if unit.exists() or manager.is_active(control_plane.APISERVER_SERVICE):
        say(
            f"[reset] Stopping and removing {control_plane.APISERVER_SERVICE}.service "
            "(the API server stand-in)"
        )
        manager.stop(control_plane.APISERVER_SERVICE)
        manager.disable(f"{control_plane.APISERVER_SERVICE}.service")
        unit.unlink(missing_ok=True)
        try:
            manager.daemon_reload()
        except Exception as exc:
            warn(f"[reset] WARNING: systemctl daemon-reload failed: {exc}")
    say(f'[reset] Unmounting mounted directories in "{paths.KUBELET_DIR}"')
    say(f"[reset] Deleting contents of directories: [{' '.join(DIRECTORIES)}]")
    for directory in DIRECTORIES:
        _clear_directory(directory)
    say(f"[reset] Deleting files: [{' '.join(FILES)}]")
    for name in FILES:
        paths.host(name).unlink(missing_ok=True)
    say("")
    say(f"The reset process removed the CNI configuration in {paths.CNI_DIR}; it does not clean")
    say("network filtering rules or kubeconfig files in $HOME/.kube.")
    say("")
    say("For information on how to perform this cleanup manually, please see:")
    say("    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/")
