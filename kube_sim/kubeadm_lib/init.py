"""`kubeadm init`: from a config file to a running API server stand-in and a registered node."""

from __future__ import annotations

import contextlib
import secrets
import sys
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from kube_sim.common import netinfo, paths, services, yamlsubset
from kube_sim.common.rest import ApiClient, ApiError, quote
from kube_sim.kubeadm_lib import certs, cluster, control_plane, kubelet_files, preflight, tokenops
from kube_sim.kubeadm_lib.config import InitSettings
from kube_sim.kubeadm_lib.errors import PhaseError

Say = Callable[[str], None]

CONTROL_PLANE_LABELS = {
    "node-role.kubernetes.io/control-plane": "",
    "node.kubernetes.io/exclude-from-external-load-balancers": "",
}
CONF_FILES = [
    paths.ADMIN_CONF,
    paths.SUPER_ADMIN_CONF,
    paths.KUBELET_CONF,
    paths.CONTROLLER_MANAGER_CONF,
    paths.SCHEDULER_CONF,
]
IMAGES = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]


def say(line: str) -> None:
    print(line, flush=True)


def warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def preflight_checks(settings: InitSettings, ignored: list[str]) -> None:
    say("[preflight] Running pre-flight checks")
    checks = [preflight.privileged_user()]
    checks += [preflight.file_available(f) for f in CONF_FILES]
    checks.append(preflight.port_open(settings.bind_port))
    checks.append(preflight.dir_available(paths.STATE_DIR))
    checks.append(preflight.cri(settings.node.cri_socket))
    checks.append(preflight.ip_forward())
    warning = preflight.kubelet_service_warning()
    if warning:
        warn("\t" + warning)
    preflight.run(checks, [*ignored, *settings.node.ignore_preflight_errors], warn)
    say("[preflight] Pulling images required for setting up a Kubernetes cluster")
    say(
        "[preflight] This might take a minute or two, depending on the speed of your internet "
        "connection"
    )
    say(
        "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
    )
    say(
        "[preflight] kube-sim: no images are pulled; the control plane is a stand-in ("
        + ", ".join(IMAGES)
        + " are simulated)"
    )


def kubelet_healthz(port: int, timeout: float) -> float | None:
    """Wait for the kubelet's /healthz; returns seconds waited (None when it never answered)."""
    url = f"http://127.0.0.1:{port}/healthz"

    def attempt() -> bool | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return True if response.status == 200 else None
        except OSError:
            return None

    ok, waited = cluster.poll(attempt, timeout)
    return waited if ok else None


def start_kubelet(manager: control_plane.Manager) -> None:
    say("[kubelet-start] Starting the kubelet")
    try:
        manager.restart(control_plane.KUBELET_SERVICE)
    except services.ServiceError as exc:
        raise PhaseError("kubelet-start", str(exc)) from exc


def wait_for_apiserver(
    manager: control_plane.Manager, server: str, ca_pem: str, timeout: float
) -> float:
    say(
        f"[wait-control-plane] Waiting for the API server stand-in at {server}/readyz. "
        f"This can take up to {int(timeout // 60)}m{int(timeout % 60)}s"
    )
    ok, waited = cluster.poll(lambda: control_plane.readyz(server, ca_pem), timeout)
    if not ok:
        logs = manager.logs(control_plane.APISERVER_SERVICE, 20)
        raise PhaseError(
            "wait-control-plane",
            f"the API server stand-in ({control_plane.APISERVER_SERVICE}.service) did not become "
            f"ready at {server}/readyz within {timeout:.0f}s. Its last log lines:\n{logs}",
        )
    say(f"[api-check] The API server is healthy after {waited:.9f}s")
    return waited


def upload_config(client: ApiClient, settings: InitSettings, kubelet_config: dict) -> None:
    say(
        '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the '
        '"kube-system" Namespace'
    )
    for namespace in ("kube-system", "kube-public", "kube-node-lease"):
        cluster.ensure_namespace(client, namespace)
    cluster.create_or_update(
        client,
        cluster.configmap_path("kube-system"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": yamlsubset.dump(settings.cluster_configuration)},
        },
    )
    say(
        '[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the '
        "configuration for the kubelets in the cluster"
    )
    cluster.create_or_update(
        client,
        cluster.configmap_path("kube-system"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
            "data": {"kubelet": yamlsubset.dump(kubelet_config)},
        },
    )


def mark_control_plane(client: ApiClient, settings: InitSettings) -> None:
    name = settings.node.name
    taints = settings.node.taints or []
    say(
        f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: "
        f"[{' '.join(CONTROL_PLANE_LABELS)}]"
    )
    if taints:
        say(
            f"[mark-control-plane] Marking the node {name} as control-plane by adding the taints "
            f"[{' '.join(_taint_text(t) for t in taints)}]"
        )
    path = f"/api/v1/nodes/{quote(name)}"
    node, _waited = cluster.poll(
        lambda: cluster.get_or_none(client, path), settings.timeouts["kubeletHealthCheck"]
    )
    if node is None:
        raise PhaseError(
            "mark-control-plane",
            f'error patching node "{name}" through apiserver: timed out waiting for the Node to '
            "register (is kubelet running? see `journalctl -u kubelet`)",
        )
    existing = (node.get("spec") or {}).get("taints") or []
    merged = list(existing)
    for taint in taints:
        wanted = {k: v for k, v in taint.items() if k in ("key", "value", "effect") and v}
        if not any(
            t.get("key") == wanted["key"] and t.get("effect") == wanted["effect"] for t in merged
        ):
            merged.append(wanted)
    patch: dict[str, Any] = {"metadata": {"labels": dict(CONTROL_PLANE_LABELS)}}
    if merged != existing:
        patch["spec"] = {"taints": merged}
    client.patch(path, patch)


def _taint_text(taint: dict[str, Any]) -> str:
    if taint.get("value"):
        return f"{taint['key']}={taint['value']}:{taint['effect']}"
    return f"{taint['key']}:{taint['effect']}"


def bootstrap_tokens(client: ApiClient, settings: InitSettings, ca_pem: str) -> None:
    for token in settings.tokens:
        say(f"[bootstrap-token] Using token: {token.token}")
    say("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    say("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes")
    say(
        "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in "
        "order for nodes to get long term certificate credentials"
    )
    say(
        "[bootstrap-token] Configured RBAC rules to allow the csrapprover controller "
        "automatically approve CSRs from a Node Bootstrap Token"
    )
    say(
        "[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node "
        "client certificates in the cluster"
    )
    for token in settings.tokens:
        tokenops.store_token(client, token, allow_update=True)
    say('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    tokenops.publish_cluster_info(
        client, f"https://{settings.api_endpoint}", ca_pem, settings.tokens
    )
    _admin_binding(client)


def _admin_binding(client: ApiClient) -> None:
    """ClusterRoleBinding kubeadm:cluster-admins -> cluster-admin, as real kubeadm creates it."""
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": certs.ADMIN_GROUP},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": certs.ADMIN_GROUP}
        ],
    }
    try:
        client.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body)
    except ApiError as exc:
        if exc.status not in (404, 405, 409):
            warn(f"[bootstrap-token] WARNING: could not create ClusterRoleBinding: {exc}")


def success_message(settings: InitSettings, ca_pem: str, certificate_key: str | None) -> None:
    endpoint = settings.api_endpoint
    token = settings.tokens[0].token
    command = tokenops.join_command(endpoint, token, ca_pem)
    parts = command.split(" --discovery-token-ca-cert-hash ")
    say("")
    say("Your Kubernetes control-plane has initialized successfully!")
    say("")
    say("To start using your cluster, you need to run the following as a regular user:")
    say("")
    say("  mkdir -p $HOME/.kube")
    say(f"  sudo cp -i {paths.ADMIN_CONF} $HOME/.kube/config")
    say("  sudo chown $(id -u):$(id -g) $HOME/.kube/config")
    say("")
    say("Alternatively, if you are the root user, you can run:")
    say("")
    say(f"  export KUBECONFIG={paths.ADMIN_CONF}")
    say("")
    say("You should now deploy a pod network to the cluster.")
    say('Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:')
    say("  https://kubernetes.io/docs/concepts/cluster-administration/addons/")
    say("")
    if settings.control_plane_endpoint and certificate_key:
        say(
            "You can now join any number of control-plane nodes running the following command "
            "on each as root:"
        )
        say("")
        say(f"  {parts[0]} \\")
        say(f"\t--discovery-token-ca-cert-hash {parts[1].strip()} \\")
        say(f"\t--control-plane --certificate-key {certificate_key}")
        say("")
    say("Then you can join any number of worker nodes by running the following on each as root:")
    say("")
    say(f"{parts[0]} \\")
    say(f"\t--discovery-token-ca-cert-hash {parts[1].strip()} ")


@contextlib.contextmanager
def api_phase(phase: str) -> Iterator[None]:
    """Report a failed API call as a failure of the phase, like kubeadm does."""
    try:
        yield
    except ApiError as exc:
        raise PhaseError(phase, f"API call failed: {exc}") from exc


def run(settings: InitSettings, ignored: list[str], upload_certs: bool) -> None:
    for line in settings.warnings:
        warn(line)
    say(f"[init] Using Kubernetes version: {settings.kubernetes_version}")
    preflight_checks(settings, ignored)
    manager = control_plane.service_manager()

    ca = certs.create_certificates(settings, say)
    certs.write_kubeconfigs(settings, ca, say)
    paths.host(paths.MANIFESTS_DIR).mkdir(parents=True, exist_ok=True)

    say(f"[etcd] kube-sim: no etcd; the API server stand-in keeps its state in {paths.STATE_DIR}")
    say(f'[control-plane] Using manifest folder "{paths.MANIFESTS_DIR}"')
    say(f'[control-plane] Creating the API server stand-in unit "{control_plane.unit_path()}"')
    control_plane.write_apiserver_unit(settings)
    paths.host(paths.STATE_DIR).mkdir(parents=True, exist_ok=True)

    kubelet_config = kubelet_files.kubelet_configuration(
        settings.kubelet_config, settings.cluster_dns_ip, settings.dns_domain
    )
    say(
        f"[kubelet-start] Writing kubelet environment file with flags to file "
        f'"{paths.KUBELET_FLAGS_ENV}"'
    )
    kubelet_files.write_flags_env(settings.node, register_taints=False)
    say(f'[kubelet-start] Writing kubelet configuration to file "{paths.KUBELET_CONFIG}"')
    kubelet_files.write_kubelet_config(kubelet_config, settings.node.cri_socket)
    start_kubelet(manager)

    say(f"[control-plane] Starting {control_plane.APISERVER_SERVICE}.service")
    try:
        manager.daemon_reload()
        manager.enable(f"{control_plane.APISERVER_SERVICE}.service")
        manager.restart(control_plane.APISERVER_SERVICE)
    except services.ServiceError as exc:
        raise PhaseError("control-plane", str(exc)) from exc

    healthz_port = int(kubelet_config.get("healthzPort") or 0)
    if healthz_port:
        timeout = settings.timeouts["kubeletHealthCheck"]
        say(
            f"[kubelet-check] Waiting for a healthy kubelet at "
            f"http://127.0.0.1:{healthz_port}/healthz. This can take up to {timeout:.0f}s"
        )
        waited = kubelet_healthz(healthz_port, timeout)
        if waited is None:
            raise PhaseError(
                "wait-control-plane",
                "The kubelet is not healthy after "
                f"{timeout:.0f}s: see `systemctl status kubelet` and `journalctl -xeu kubelet`",
            )
        say(f"[kubelet-check] The kubelet is healthy after {waited:.9f}s")

    local = "https://" + netinfo.join_host_port(settings.advertise_address, settings.bind_port)
    wait_for_apiserver(
        manager, local, ca.cert_pem, settings.timeouts["controlPlaneComponentHealthCheck"]
    )
    client = cluster.client_from_kubeconfig(paths.ADMIN_CONF)
    with api_phase("upload-config"):
        upload_config(client, settings, kubelet_config)
    certificate_key = None
    if upload_certs:
        certificate_key = secrets.token_hex(32)
        say(
            "[upload-certs] kube-sim: control-plane certificates are not shared (a single "
            "API server stand-in); the key below is not usable for control-plane joins"
        )
        say("[upload-certs] Using certificate key:")
        say(certificate_key)
    else:
        say("[upload-certs] Skipping phase. Please see --upload-certs")
    with api_phase("mark-control-plane"):
        mark_control_plane(client, settings)
    with api_phase("bootstrap-token"):
        bootstrap_tokens(client, settings, ca.cert_pem)
    say(
        '[kubelet-finalize] Updating "/etc/kubernetes/kubelet.conf" to point to a rotatable '
        "kubelet client certificate and key"
    )
    say("[addons] kube-sim: CoreDNS and kube-proxy are not simulated")
    success_message(settings, ca.cert_pem, certificate_key)
