"""The Kubernetes API, through the kubernetes client: readiness, labels, cordon, drain, delete."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kubernetes import client, config
from kubernetes.client import ApiException

from . import drain_policy
from .drain_policy import STRICT, DrainOptions, DrainRefused

POLL_INTERVAL = 2.0
API_TIMEOUT = 30  # seconds any one API request may take
BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"
JOIN_OF_LABEL = "k8s-cluster.io/join-of"  # on the suite's join tokens: the host joining
WORKER_ROLE_LABEL = "node-role.kubernetes.io/worker"


def core_api(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def apps_api(core: client.CoreV1Api) -> client.AppsV1Api:
    """The apps API over the same connection."""
    return client.AppsV1Api(core.api_client)


def node_ready(node: client.V1Node) -> tuple[bool, str]:
    """(Ready?, a short reason for the log)."""
    for condition in node.status.conditions or []:
        if condition.type == "Ready":
            return condition.status == "True", f"Ready={condition.status} ({condition.reason})"
    return False, "no Ready condition yet"


def wait_until(
    check: Callable[[], tuple[bool, str]], timeout: float, what: str, sleep=time.sleep
) -> None:
    """Poll `check` until it says done; TimeoutError names `what` and the last state seen."""
    deadline = time.monotonic() + timeout
    state = "not checked"
    while True:
        try:
            done, state = check()
        except ApiException as err:
            done, state = False, f"API answered {err.status} {err.reason}"
        except OSError as err:  # API server restarting, connection refused
            done, state = False, f"API unreachable: {err}"
        if done:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s; last seen: {state}")
        sleep(POLL_INTERVAL)


def wait_node_ready(api: client.CoreV1Api, name: str, timeout: float = 300) -> None:
    def check() -> tuple[bool, str]:
        try:
            return node_ready(api.read_node(name))
        except ApiException as err:
            if err.status == 404:
                return False, "Node not registered yet"
            raise

    wait_until(check, timeout, f"Node {name} Ready")


def pod_ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


FLANNEL = "k8s-app=flannel"  # the label of flannel's DaemonSet, in its manifest and the bundle's
FLANNEL_CONTAINER = "kube-flannel"


def point_flannel_at_api_server(api: client.CoreV1Api, host: str, port: int) -> list[str]:
    """flannel finds the API server at the `kubernetes` Service's address, which a node routes
    only once kube-proxy has programmed it: until then a new node's flannel fails and restarts,
    and the node's pods wait for their network. Give it the API server's own address instead,
    as kube-proxy has it (Calico and Cilium take the same setting for the same reason): an env
    the container declares wins over the one the kubelet injects. Returns the DaemonSets set."""
    apps = apps_api(api)
    env = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(port)},
    ]
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": FLANNEL_CONTAINER, "env": env}]}}}
    }
    changed = []
    for daemon_set in apps.list_daemon_set_for_all_namespaces(label_selector=FLANNEL).items:
        names = [c.name for c in daemon_set.spec.template.spec.containers]
        if FLANNEL_CONTAINER not in names:
            continue
        meta = daemon_set.metadata
        apps.patch_namespaced_daemon_set(
            meta.name, meta.namespace, patch, _content_type="application/strategic-merge-patch+json"
        )
        changed.append(f"{meta.namespace}/{meta.name}")
    return changed


def daemon_pods_ready(api: client.CoreV1Api, name: str) -> tuple[bool, str]:
    """Whether the DaemonSet pods on Node `name` (its pod network, kube-proxy) run and are
    Ready: until then, pods there cannot reach the rest of the cluster. The DaemonSet
    controller makes them as the Node registers, before it turns Ready."""
    daemons = [
        pod for pod in _pods_on(api, name, PodFilter()) if drain_policy.owned_by(pod, "DaemonSet")
    ]
    waiting = sorted(drain_policy.pod_key(pod) for pod in daemons if not pod_ready(pod))
    if not daemons:
        return False, "no DaemonSet pod on it yet"
    if waiting:
        return False, "not Ready yet: " + ", ".join(waiting)
    return True, f"{len(daemons)} DaemonSet pod(s) Ready"


def deployment_available(apps: client.AppsV1Api, namespace: str, name: str) -> tuple[bool, str]:
    """Whether every replica of a Deployment is updated and available."""
    deployment = apps.read_namespaced_deployment(name, namespace, _request_timeout=API_TIMEOUT)
    wanted = deployment.spec.replicas or 0
    available = (deployment.status and deployment.status.available_replicas) or 0
    return available >= wanted, f"{available} of {wanted} replicas available"


def label_node(api: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    api.patch_node(name, {"metadata": {"labels": labels}})


def set_unschedulable(api: client.CoreV1Api, name: str, unschedulable: bool) -> None:
    api.patch_node(name, {"spec": {"unschedulable": unschedulable}})


def delete_node(api: client.CoreV1Api, name: str) -> bool:
    """Delete the Node object; False if it was already gone."""
    try:
        api.delete_node(name)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


# --- bootstrap tokens ------------------------------------------------------------------------


@contextmanager
def bootstrap_token(
    api: client.CoreV1Api, token: str, host: str, ttl_seconds: int
) -> Iterator[str]:
    """A kubeadm bootstrap token for one join of `host`, made as `kubeadm token create` makes it
    (a Secret in kube-system), through the API rather than an SSH session to a control plane.
    Deleted on exit. A join killed before its exit leaves its token, so the tokens of earlier
    joins of the same host are deleted first; its expiry bounds the life of the last one."""
    token_id, token_secret = token.split(".", 1)
    delete_join_tokens(api, host)
    expiration = datetime.now(timezone.utc) + timedelta(seconds=ttl_seconds)
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=f"bootstrap-token-{token_id}",
            namespace="kube-system",
            labels={JOIN_OF_LABEL: host},
        ),
        type=BOOTSTRAP_TOKEN_TYPE,
        string_data={
            "token-id": token_id,
            "token-secret": token_secret,
            "description": f"join of {host}, made by the suite",
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": BOOTSTRAP_GROUP,
        },
    )
    api.create_namespaced_secret("kube-system", secret)
    try:
        yield token
    finally:
        try:
            api.delete_namespaced_secret(f"bootstrap-token-{token_id}", "kube-system")
        except ApiException as err:
            if err.status != 404:
                raise


def delete_join_tokens(api: client.CoreV1Api, host: str) -> list[str]:
    """Delete the suite's join tokens for `host`; returns the names of those deleted."""
    found = api.list_namespaced_secret("kube-system", label_selector=f"{JOIN_OF_LABEL}={host}")
    deleted = []
    for secret in found.items:
        try:
            api.delete_namespaced_secret(secret.metadata.name, "kube-system")
        except ApiException as err:
            if err.status != 404:
                raise
        deleted.append(secret.metadata.name)
    return deleted


# --- drain -----------------------------------------------------------------------------------


@dataclass
class DrainResult:
    evicted: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)  # pod -> why it could not go

    @property
    def complete(self) -> bool:
        return not self.blocked


@dataclass(frozen=True)
class PodFilter:
    """Which pods of a node to drain: all (the default), or one namespace's with labels."""

    namespace: str = ""
    label_selector: str = ""


def _pods_on(api: client.CoreV1Api, node: str, pods: PodFilter) -> list[client.V1Pod]:
    """The pods bound to the Node that `pods` selects (default: every pod there)."""
    on_node = f"spec.nodeName={node}"
    labels = pods.label_selector or None
    if pods.namespace:
        return api.list_namespaced_pod(
            pods.namespace,
            field_selector=on_node,
            label_selector=labels,
            _request_timeout=API_TIMEOUT,
        ).items
    return api.list_pod_for_all_namespaces(
        field_selector=on_node, label_selector=labels, _request_timeout=API_TIMEOUT
    ).items


def drain(
    api: client.CoreV1Api,
    name: str,
    timeout: float,
    grace_period: int | None = None,
    pods: PodFilter | None = None,
    options: DrainOptions = STRICT,
) -> DrainResult:
    """Cordon, then evict through the Eviction API (PodDisruptionBudgets hold) until the node
    has no pods left to evict or `timeout` passes. Blocked pods are reported, not deleted.
    `pods` limits the drain to some pods (one workload's), the node's others stay.
    Pods that `options` do not allow to lose (drain_policy) raise DrainRefused first, with the
    node not even cordoned."""
    chosen = pods or PodFilter()
    refused = drain_policy.refusals(_pods_on(api, name, chosen), options)
    if refused:
        raise DrainRefused({name: refused})
    set_unschedulable(api, name, True)
    result = DrainResult()
    deadline = time.monotonic() + timeout
    while True:
        pending = drain_policy.to_evict(_pods_on(api, name, chosen))
        result.blocked = {}
        for pod in pending:
            if pod.metadata.deletion_timestamp:
                result.blocked[drain_policy.pod_key(pod)] = "terminating"
                continue
            _evict(api, pod, grace_period, result)
        if not pending:
            return result
        if time.monotonic() >= deadline:
            return result
        time.sleep(POLL_INTERVAL)


def drain_refusals(
    api: client.CoreV1Api, names: Iterable[str], options: DrainOptions
) -> dict[str, dict[str, str]]:
    """What draining each Node would refuse to evict under `options`, by Node (see drain);
    empty when every drain may go ahead."""
    by_node = {}
    for name in names:
        refused = drain_policy.refusals(_pods_on(api, name, PodFilter()), options)
        if refused:
            by_node[name] = refused
    return by_node


def _evict(api: client.CoreV1Api, pod: client.V1Pod, grace: int | None, result: DrainResult):
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace),
        delete_options=client.V1DeleteOptions(grace_period_seconds=grace),
    )
    try:
        api.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)
    except ApiException as err:
        if err.status == 404:
            return
        if err.status == 429:
            result.blocked[drain_policy.pod_key(pod)] = (
                "a PodDisruptionBudget does not allow it now"
            )
            return
        raise
    result.evicted.append(drain_policy.pod_key(pod))
    result.blocked[drain_policy.pod_key(pod)] = "terminating"


# --- health and lost nodes -------------------------------------------------------------------


def ready_condition(node: client.V1Node) -> tuple[str, float | None]:
    """The Ready condition's status (True, False, Unknown) and when it last changed (epoch s)."""
    for condition in node.status.conditions or []:
        if condition.type == "Ready":
            changed = condition.last_transition_time
            return condition.status, changed.timestamp() if changed else None
    return "Unknown", None


def delete_pods_of_lost_node(
    api: client.CoreV1Api, name: str, grace_period: int | None, sleep=time.sleep
) -> list[client.V1Pod]:
    """A Node whose kubelet does not answer never confirms that its pods stopped, and nothing
    else removes them. Cordon it and delete its pods gracefully (their controllers replace them
    at once, elsewhere); after the grace period (None: the longest of the pods' own), delete
    those still there without grace, as the kubelet would have. Returns the pods deleted.
    The Node may be gone already (a heal cut short after deleting it): its pods are still
    bound to its name, and still deleted."""
    try:
        set_unschedulable(api, name, True)
    except ApiException as err:
        if err.status != 404:
            raise
    every_pod = PodFilter()  # DaemonSet and static ones included: the Node goes
    pods = _pods_on(api, name, every_pod)
    own = (pod.spec.termination_grace_period_seconds for pod in pods)
    wait = grace_period if grace_period is not None else max(own, default=0)
    for pod in pods:
        _delete_pod(api, pod, grace_period)
    deadline = time.monotonic() + (wait or 0)
    while _pods_on(api, name, every_pod) and time.monotonic() < deadline:
        sleep(POLL_INTERVAL)
    for pod in _pods_on(api, name, every_pod):
        _delete_pod(api, pod, 0)
    return pods


def _delete_pod(api: client.CoreV1Api, pod: client.V1Pod, grace: int | None) -> None:
    try:
        api.delete_namespaced_pod(
            pod.metadata.name, pod.metadata.namespace, grace_period_seconds=grace
        )
    except ApiException as err:
        if err.status != 404:
            raise
