"""kubelet STAND-IN (kube-sim): for end-to-end tests and offline rehearsals, never real clusters.

Installed as /usr/bin/kubelet by the kube-sim `kubelet` package and run by kubelet.service with
kubeadm's drop-in. It registers its Node, heartbeats (Lease + Ready condition), reports the pods
bound to it Running and Ready (no container runs) and deletes terminating pods once their grace
period is over. Like the real kubelet it exits with an error until kubeadm has written its
config and kubeconfig, and systemd restarts it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from kube_sim.common import kubeconfig, netinfo, paths, timeutil, version, yamlsubset
from kube_sim.common.rest import ApiClient, ApiError
from kube_sim.kubelet_lib import flags as flagmod
from kube_sim.kubelet_lib.hostinfo import internal_ip
from kube_sim.kubelet_lib.node import NodeAgent, NodeSpec
from kube_sim.kubelet_lib.pods import PodAgent

log = logging.getLogger("kubelet")

LEASE_INTERVAL = 3.0
STATUS_INTERVAL = 5.0
PODS_INTERVAL = 1.0
REGISTER_RETRY = 1.0
USER_AGENT = f"kubelet/{version.git_version()} (linux) kubernetes/sim"


class StartupError(Exception):
    """Configuration problems that make the kubelet exit 1 (systemd restarts it)."""


class _KlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = time.strftime("%m%d %H:%M:%S", time.localtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        return (
            f"{record.levelname[0]}{moment}.{micros:06d} {record.process:>7} kubelet.py] "
            f"{record.getMessage()}"
        )


def _load_config(path: str) -> dict[str, Any]:
    try:
        text = paths.host(path).read_text()
    except OSError as exc:
        raise StartupError(
            f'"command failed" err="failed to load kubelet config file, path: {path}, error: '
            f"failed to load Kubelet config file {path}, error failed to read kubelet config "
            f'file \\"{path}\\", error: open {path}: {exc.strerror.lower()}"'
        ) from exc
    try:
        doc = yamlsubset.load(text, path) or {}
    except yamlsubset.YAMLError as exc:
        raise StartupError(
            f'"command failed" err="failed to decode kubelet config: {exc}"'
        ) from exc
    if not isinstance(doc, dict) or doc.get("kind") != "KubeletConfiguration":
        raise StartupError(f'"command failed" err="{path} is not a KubeletConfiguration"')
    return doc


def _load_credentials(flags: flagmod.Flags) -> kubeconfig.Credentials:
    path = flags.get("kubeconfig") or paths.KUBELET_CONF
    if not paths.host(path).exists():
        bootstrap = flags.get("bootstrap-kubeconfig")
        if bootstrap and paths.host(bootstrap).exists():
            raise StartupError(
                f'"command failed" err="kube-sim kubelet does not perform TLS bootstrap from '
                f'{bootstrap}: kubeadm join writes {path} itself"'
            )
        raise StartupError(
            f'"command failed" err="failed to run Kubelet: unable to load bootstrap kubeconfig: '
            f'stat {bootstrap or path}: no such file or directory"'
        )
    try:
        return kubeconfig.load(path)
    except (kubeconfig.KubeconfigError, OSError, ValueError) as exc:
        raise StartupError(f'"command failed" err="invalid kubeconfig {path}: {exc}"') from exc


def _cluster_pod_subnet(client: ApiClient) -> str | None:
    """The cluster's pod subnet from kubeadm-config (for fake pod IPs when nodes lack podCIDR)."""
    try:
        configmap = client.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        text = (configmap.get("data") or {}).get("ClusterConfiguration") or ""
        doc = yamlsubset.load(text) or {}
        return ((doc.get("networking") or {}).get("podSubnet")) or None
    except (ApiError, yamlsubset.YAMLError, AttributeError):
        return None


def _start_healthz(config: dict[str, Any]) -> None:
    port = int(config.get("healthzPort", 10248) or 0)
    if not port:
        return
    address = str(config.get("healthzBindAddress") or "127.0.0.1")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"ok" if self.path.split("?")[0] in ("/healthz", "/healthz/") else b"not found"
            self.send_response(200 if body == b"ok" else 404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    try:
        server = ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:
        log.error('"Failed to start healthz server" err="%s:%d: %s"', address, port, exc.strerror)
        return
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()


def build_agents(flags: flagmod.Flags) -> tuple[NodeAgent, PodAgent, dict[str, Any]]:
    for name in flags.unknown:
        log.warning('"kube-sim kubelet ignores an unknown flag" flag="--%s"', name)
    labels = flagmod.parse_labels(flags.get("node-labels") or "")
    bad = flagmod.forbidden_labels(labels)
    if bad:
        raise StartupError(
            '"command failed" err="failed to validate kubelet flags: unknown \'kubernetes.io\' '
            f"or 'k8s.io' labels specified with --node-labels: [{' '.join(bad)}]\n"
            "--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix "
            "(kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set "
            f'({", ".join(sorted(flagmod.ALLOWED_LABELS))})"'
        )
    taints = flagmod.parse_taints(flags.get("register-with-taints") or "")
    config = _load_config(flags.get("config") or paths.KUBELET_CONFIG)
    creds = _load_credentials(flags)
    taints += [
        {k: v for k, v in t.items() if k in ("key", "value", "effect") and v}
        for t in config.get("registerWithTaints") or []
    ]
    name = (flags.get("hostname-override") or netinfo.hostname()).strip().lower()
    host_ip = internal_ip(flags.get("node-ip"))
    client = ApiClient.from_credentials(creds, timeout=5, user_agent=USER_AGENT)
    spec = NodeSpec(
        name=name,
        internal_ip=host_ip,
        hostname=name,
        labels=labels,
        taints=taints,
        max_pods=int(config.get("maxPods") or 110),
        lease_seconds=int(config.get("nodeLeaseDurationSeconds") or 40),
    )
    return NodeAgent(client, spec), PodAgent(client, name, host_ip), config


def run(node: NodeAgent, pods: PodAgent) -> None:
    """Register, then heartbeat and sync pods until terminated."""
    while not node.register():
        time.sleep(REGISTER_RETRY)
    pods.cluster_pod_subnet = _cluster_pod_subnet(node.client)
    next_lease = next_status = next_pods = 0.0
    status_interval = STATUS_INTERVAL
    while True:
        now = time.monotonic()
        if now >= next_lease:
            next_lease = now + (LEASE_INTERVAL if node.renew_lease() else REGISTER_RETRY)
        if now >= next_status:
            next_status = now + (status_interval if node.update_status() else REGISTER_RETRY)
            pods.pod_cidr = node.pod_cidr
        if now >= next_pods:
            try:
                pods.sync()
            except ApiError as exc:
                log.error('"Failed to list pods" err="%s"', exc)
            next_pods = time.monotonic() + PODS_INTERVAL
        time.sleep(max(0.05, min(next_lease, next_status, next_pods) - time.monotonic()))


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # Real kubelet stops without a goodbye: no NotReady is posted, heartbeats just stop.
    log.info('"Shutting down kubelet" signal=%d', signum)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KlogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        flags = flagmod.parse(list(sys.argv[1:] if argv is None else argv))
    except flagmod.FlagError as exc:
        log.error("%s", exc)
        return 1
    if flags.flag("version") and "version" in flags.values:
        print(f"Kubernetes {version.git_version()}")
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        node, pods, config = build_agents(flags)
    except (StartupError, flagmod.FlagError) as exc:
        log.error("%s", exc)
        return 1
    log.info(
        '"kube-sim kubelet STAND-IN starting" version="%s" node="%s" time="%s"',
        version.git_version(),
        node.spec.name,
        timeutil.rfc3339(),
    )
    _start_healthz(config)
    try:
        run(node, pods)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
