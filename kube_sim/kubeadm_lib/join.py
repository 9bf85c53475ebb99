"""`kubeadm join` for worker nodes: token discovery, CA pinning, TLS bootstrap, kubelet start."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from kube_sim.common import kubeconfig, paths, pki, services, yamlsubset
from kube_sim.common.rest import ApiClient, ApiError, quote
from kube_sim.kubeadm_lib import certs, cluster, control_plane, kubelet_files, preflight, tokens
from kube_sim.kubeadm_lib.config import JoinSettings
from kube_sim.kubeadm_lib.errors import KubeadmError, PhaseError
from kube_sim.kubeadm_lib.init import kubelet_healthz, say, warn
from kube_sim.kubeadm_lib.tokenops import CLUSTER_INFO

KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
RETRY_INTERVAL = 2.0


@dataclass
class ClusterIdentity:
    server: str
    ca_pem: str


class _Retry(Exception):
    """A discovery failure worth retrying until the discovery timeout."""


def _cluster_from_kubeconfig(text: str) -> ClusterIdentity:
    doc = kubeconfig.parse(text, "cluster-info")
    clusters = doc.get("clusters") or []
    if not clusters:
        raise KubeadmError("the cluster-info ConfigMap holds a kubeconfig without clusters")
    entry = clusters[0].get("cluster") or {}
    ca_b64 = entry.get("certificate-authority-data")
    if not ca_b64 or not entry.get("server"):
        raise KubeadmError("the cluster-info kubeconfig lacks the server or the CA data")
    return ClusterIdentity(entry["server"], base64.b64decode(ca_b64).decode())


def _fetch_cluster_info(endpoint: str, token_id: str) -> tuple[str, str]:
    client = ApiClient(f"https://{endpoint}", insecure=True, timeout=10)
    try:
        info = client.get(cluster.configmap_path(*CLUSTER_INFO))
    except ApiError as exc:
        raise _Retry(
            f"failed to request the cluster-info ConfigMap from https://{endpoint}: {exc}"
        ) from exc
    data = info.get("data") or {}
    payload = data.get("kubeconfig")
    if not payload:
        raise _Retry("the cluster-info ConfigMap has no kubeconfig")
    signature = data.get(tokens.JWS_PREFIX + token_id)
    if not signature:
        raise _Retry(
            "there is no JWS signed token in the cluster-info ConfigMap. This token id "
            f'"{token_id}" is invalid for this cluster, can\'t connect'
        )
    return payload, signature


def discover(settings: JoinSettings) -> ClusterIdentity:
    """Find and validate the cluster's identity through kube-public/cluster-info."""
    token_id, token_secret = tokens.split(settings.discovery_token)
    endpoint = settings.api_server_endpoint
    deadline = time.monotonic() + settings.timeouts["discovery"]
    while True:
        try:
            payload, signature = _fetch_cluster_info(endpoint, token_id)
            break
        except _Retry as exc:
            if time.monotonic() >= deadline:
                raise PhaseError(
                    "preflight",
                    f"couldn't validate the identity of the API Server: {exc}",
                ) from exc
            warn(f'[discovery] Failed to connect to API Server "{endpoint}": {exc}')
            time.sleep(RETRY_INTERVAL)
    if not tokens.jws_verify(signature, payload, token_id, token_secret):
        raise PhaseError(
            "preflight",
            "couldn't validate the identity of the API Server: failed to verify JWS signature of "
            "received cluster info object, can't trust this API Server",
        )
    identity = _cluster_from_kubeconfig(payload)
    if settings.unsafe_skip_ca_verification and not settings.ca_cert_hashes:
        return identity
    found = pki.ca_cert_hash(identity.ca_pem)
    if found not in settings.ca_cert_hashes:
        raise PhaseError(
            "preflight",
            "couldn't validate the identity of the API Server: cluster CA found in cluster-info "
            f'ConfigMap is invalid: none of the public keys "{found}" are pinned',
        )
    # Fetch it again over a connection that trusts the pinned CA, and compare.
    secure = ApiClient(f"https://{endpoint}", ca_pem=identity.ca_pem, timeout=10)
    try:
        again = secure.get(cluster.configmap_path(*CLUSTER_INFO))
    except ApiError as exc:
        raise PhaseError(
            "preflight", f"couldn't validate the identity of the API Server: {exc}"
        ) from exc
    if (again.get("data") or {}).get("kubeconfig") != payload:
        raise PhaseError(
            "preflight",
            "couldn't validate the identity of the API Server: cluster info in the secure "
            "connection differs from the one signed with the bootstrap token",
        )
    return identity


def tls_bootstrap(identity: ClusterIdentity, settings: JoinSettings) -> tuple[str, str]:
    """Get a kubelet client certificate through a CSR the API server signs: (cert, key)."""
    name = settings.node.name
    client = ApiClient(
        identity.server, ca_pem=identity.ca_pem, token=settings.tls_bootstrap_token, timeout=10
    )
    key_pem = pki.generate_key("ECDSA-P256")
    csr_pem = pki.make_csr(key_pem, f"system:node:{name}", ["system:nodes"])
    csr_name = f"node-csr-{secrets.token_hex(8)}"
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": csr_name},
        "spec": {
            "request": base64.b64encode(csr_pem.encode()).decode(),
            "signerName": KUBELET_SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }
    path = f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{quote(csr_name)}"
    try:
        created = client.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", body)
    except ApiError as exc:
        raise PhaseError(
            "kubelet-start",
            f"TLS bootstrap failed: the API server refused the bootstrap token ({exc.status} "
            f"{exc.reason or exc}). Is the token valid and unexpired?",
        ) from exc

    def signed(obj: dict[str, Any] | None) -> str | None:
        status = (obj or {}).get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") in ("Denied", "Failed") and condition.get("status") != "False":
                raise PhaseError(
                    "kubelet-start",
                    f"the certificate signing request {csr_name} was "
                    f"{condition['type'].lower()}: {condition.get('message', '')}",
                )
        cert = status.get("certificate")
        return base64.b64decode(cert).decode() if cert else None

    cert_pem = signed(created)
    if cert_pem is None:
        cert_pem, _ = cluster.poll(
            lambda: signed(client.get(path)), settings.timeouts["tlsBootstrap"], 0.5
        )
    if cert_pem is None:
        raise PhaseError(
            "kubelet-start",
            f"timed out waiting for the certificate signing request {csr_name} to be signed",
        )
    return cert_pem, key_pem


def preflight_checks(settings: JoinSettings, ignored: list[str]) -> None:
    say("[preflight] Running pre-flight checks")
    checks = [preflight.privileged_user()]
    for path in (paths.KUBELET_CONF, paths.BOOTSTRAP_KUBELET_CONF, f"{paths.PKI_DIR}/ca.crt"):
        checks.append(preflight.file_available(path))
    checks.append(preflight.cri(settings.node.cri_socket))
    checks.append(preflight.ip_forward())
    warning = preflight.kubelet_service_warning()
    if warning:
        warn("\t" + warning)
    preflight.run(checks, [*ignored, *settings.node.ignore_preflight_errors], warn)


def _kubelet_config(node_client: ApiClient) -> dict[str, Any]:
    try:
        configmap = node_client.get(cluster.configmap_path("kube-system", "kubelet-config"))
        text = (configmap.get("data") or {}).get("kubelet")
        doc = yamlsubset.load(text or "", "kubelet-config")
        if isinstance(doc, dict):
            return doc
    except (ApiError, yamlsubset.YAMLError) as exc:
        warn(
            f"[kubelet-start] WARNING: could not read the kubelet-config ConfigMap ({exc}); "
            "using defaults"
        )
    return kubelet_files.kubelet_configuration({}, "10.96.0.10", "cluster.local")


def _check_existing_node(node_client: ApiClient, name: str) -> None:
    node = cluster.get_or_none(node_client, f"/api/v1/nodes/{quote(name)}")
    if node is None:
        return
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            raise PhaseError(
                "kubelet-start",
                f'a Node with name "{name}" and status "Ready" already exists in the cluster. '
                "You must delete the existing Node or change the name of this new joining Node",
            )


def run(settings: JoinSettings, ignored: list[str]) -> None:
    for line in settings.warnings:
        warn(line)
    if settings.control_plane:
        raise KubeadmError(
            "kube-sim: joining additional control-plane nodes is not supported (the API server "
            "stand-in runs on the first control-plane host only); join this host as a worker"
        )
    preflight_checks(settings, ignored)
    identity = discover(settings)
    say(
        '[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
        '"kube-system"...'
    )
    say(
        "[preflight] Use 'kubeadm init phase upload-config --config your-config-file' to "
        "re-upload it."
    )
    cert_pem, key_pem = tls_bootstrap(identity, settings)
    node_client = ApiClient(
        identity.server, ca_pem=identity.ca_pem, cert_pem=cert_pem, key_pem=key_pem, timeout=10
    )
    _check_existing_node(node_client, settings.node.name)
    kubelet_config = _kubelet_config(node_client)

    paths.write_file(f"{paths.PKI_DIR}/ca.crt", identity.ca_pem, 0o644)
    paths.host(paths.MANIFESTS_DIR).mkdir(parents=True, exist_ok=True)
    say(f'[kubelet-start] Writing kubelet configuration to file "{paths.KUBELET_CONFIG}"')
    kubelet_files.write_kubelet_config(kubelet_config, settings.node.cri_socket)
    say(
        f"[kubelet-start] Writing kubelet environment file with flags to file "
        f'"{paths.KUBELET_FLAGS_ENV}"'
    )
    kubelet_files.write_flags_env(settings.node, register_taints=True)
    certs.write_kubelet_client_pem(cert_pem, key_pem)
    kubeconfig.write(paths.KUBELET_CONF, certs.kubelet_kubeconfig(identity.server, identity.ca_pem))

    say("[kubelet-start] Starting the kubelet")
    manager = control_plane.service_manager()
    try:
        manager.restart(control_plane.KUBELET_SERVICE)
    except services.ServiceError as exc:
        raise PhaseError("kubelet-start", str(exc)) from exc
    timeout = settings.timeouts["kubeletHealthCheck"]
    healthz_port = int(kubelet_config.get("healthzPort") or 0)
    if healthz_port:
        say(
            f"[kubelet-check] Waiting for a healthy kubelet at "
            f"http://127.0.0.1:{healthz_port}/healthz. This can take up to {timeout:.0f}s"
        )
        waited = kubelet_healthz(healthz_port, timeout)
        if waited is None:
            raise PhaseError(
                "kubelet-start",
                f"The kubelet is not healthy after {timeout:.0f}s: see `systemctl status kubelet`",
            )
        say(f"[kubelet-check] The kubelet is healthy after {waited:.9f}s")
    say("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    node_path = f"/api/v1/nodes/{quote(settings.node.name)}"

    def registered() -> bool | None:
        try:
            return True if cluster.get_or_none(node_client, node_path) else None
        except ApiError:
            return None

    ok, _ = cluster.poll(registered, timeout)
    if not ok:
        raise PhaseError(
            "kubelet-start",
            f"timed out waiting for Node {settings.node.name} to register: see "
            "`journalctl -u kubelet`",
        )
    say("")
    say("This node has joined the cluster:")
    say("* Certificate signing request was sent to apiserver and a response was received.")
    say("* The Kubelet was informed of the new secure connection details.")
    say("")
    say("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.")
    say("")
