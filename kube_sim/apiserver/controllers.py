"""The controller loop: scheduler, Deployments, ReplicaSets, DaemonSets, node lifecycle,
garbage collection, namespaces/service accounts, bootstrap token cleaner, PDB status and the
CSR approver/signer. One thread, a ~1 s tick, woken early by API writes."""

from __future__ import annotations

import base64
import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..kubeadm_lib import tokens
from . import certs, timeutil
from .api import Api
from .auth import BOOTSTRAP_TYPE, User, _b64
from .objects import (
    condition,
    controller_ref,
    deleting,
    labels_of,
    name_of,
    node_ready,
    ns_of,
    owner_ref,
    pdb_status,
    pod_active,
    pod_ready,
    scaled_value,
    set_condition,
    template_hash,
    uid_of,
)
from .registry import by_key
from .selectors import labelselector_matches, node_affinity_matches, tolerates
from .volume_binding import bound_pair, choose_volumes, pod_claims, pv_phase

log = logging.getLogger("kube_sim.apiserver.controllers")

SYSTEM = User("system:kube-controller-manager", ["system:masters"], "x509")
HASH_LABEL = "pod-template-hash"
DS_HASH_LABEL = "controller-revision-hash"
REVISION = "deployment.kubernetes.io/revision"

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

# what the DaemonSet controller adds to its pods
DAEMON_TOLERATIONS = [
    {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
]


class Controllers:
    def __init__(
        self,
        api: Api,
        node_monitor_grace: float = 40.0,
        signing_cert: str | None = None,
        signing_key: str | None = None,
        signing_duration: float = 365 * 86400.0,
        root_ca_pem: str | None = None,
        tick: float = 1.0,
    ) -> None:
        self.api = api
        self.store = api.store
        self.grace = node_monitor_grace
        self.signing_cert = signing_cert
        self.signing_key = signing_key
        self.signing_duration = signing_duration
        self.root_ca_pem = root_ca_pem
        self.tick = tick
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.steps: list[Callable[[], None]] = [
            self.namespaces,
            self.token_cleaner,
            self.bootstrap_signer,
            self.node_lifecycle,
            self.pod_gc,
            self.garbage_collector,
            self.deployments,
            self.replicasets,
            self.daemonsets,
            self.scheduler,
            self.persistent_volumes,
            self.deployments,
            self.disruption_budgets,
            self.endpoints,
            self.certificates,
            self.expire_events,
        ]

    # --- loop ---------------------------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            self.run_once()
            time.sleep(0.05)

    def run_once(self) -> None:
        for step in self.steps:
            try:
                step()
            except Exception:  # a broken step must not stop the others
                log.exception("controller step %s failed", step.__name__)

    # --- helpers ------------------------------------------------------------------------

    def _put(self, key: str, obj: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return self.api.write(by_key(key), obj, old, SYSTEM)

    def _put_status(self, key: str, obj: dict[str, Any], old: dict[str, Any]) -> None:
        if obj.get("status") != old.get("status"):
            self.api.write(by_key(key), obj, old, SYSTEM, "status")

    def _delete(self, key: str, obj: dict[str, Any], **options: Any) -> None:
        current = self.store.get(key, ns_of(obj), name_of(obj))
        if current is not None and uid_of(current) == uid_of(obj):
            self.api.delete_object(by_key(key), current, options)

    def event(
        self, obj: dict[str, Any], etype: str, reason: str, message: str, component: str
    ) -> None:
        """Record a core/v1 Event about ``obj`` (caller holds the lock)."""
        ns = ns_of(obj) or "default"
        if self.store.get("/namespaces", "", ns) is None or deleting(
            self.store.get("/namespaces", "", ns) or {}
        ):
            return
        stamp = timeutil.rfc3339()
        self.api.create_object(
            by_key("/events"),
            {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {"name": f"{name_of(obj)}.{int(time.time() * 1e9):x}", "namespace": ns},
                "involvedObject": {
                    "kind": obj.get("kind", ""),
                    "apiVersion": obj.get("apiVersion"),
                    "name": name_of(obj),
                    "namespace": ns_of(obj),
                    "uid": uid_of(obj),
                },
                "reason": reason,
                "message": message,
                "type": etype,
                "source": {"component": component},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "reportingComponent": component,
                "reportingInstance": "",
            },
            SYSTEM,
        )

    def expire_events(self) -> None:
        """Events live one hour, as with the real --event-ttl."""
        horizon = timeutil.now() - EVENT_TTL
        with self.store.lock:
            for ev in self.store.list("/events"):
                created = timeutil.parse_time(ev["metadata"].get("creationTimestamp")) or 0.0
                if created < horizon:
                    self.store.remove("/events", ev)

    def _owned(self, key: str, owner: dict[str, Any]) -> list[dict[str, Any]]:
        uid = uid_of(owner)
        return [
            o
            for o in self.store.list(key, ns_of(owner))
            if (controller_ref(o) or {}).get("uid") == uid
        ]

    def _adopt(
        self,
        key: str,
        owner: dict[str, Any],
        selector: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Take over orphans (no controller) that match the owner's selector, as the real
        controllers do after ``--cascade=orphan``."""
        adopted = []
        for obj in self.store.list(key, ns_of(owner)):
            if controller_ref(obj) is not None or deleting(obj):
                continue
            if key == "/pods" and not pod_active(obj):
                continue
            if not labelselector_matches(selector, labels_of(obj)):
                continue
            new = copy.deepcopy(obj)
            new["metadata"].setdefault("ownerReferences", []).append(owner_ref(owner))
            adopted.append(self._put(key, new, obj))
        return adopted

    # --- namespaces, service accounts, root CA ------------------------------------------

    def namespaces(self) -> None:
        with self.store.lock:
            for ns in self.store.list("/namespaces"):
                if deleting(ns):
                    # the real namespace controller is not instantaneous either: give
                    # `kubectl delete -f` time to delete the namespace's objects itself
                    since = timeutil.parse_time(ns["metadata"]["deletionTimestamp"]) or 0.0
                    if timeutil.now() - since >= 2:
                        self.api.finalize_namespace(ns)
                    continue
                name = name_of(ns)
                if self.store.get("/serviceaccounts", name, "default") is None:
                    self.api.create_object(
                        by_key("/serviceaccounts"),
                        {
                            "kind": "ServiceAccount",
                            "apiVersion": "v1",
                            "metadata": {"name": "default", "namespace": name},
                        },
                        SYSTEM,
                    )
                if (
                    self.root_ca_pem
                    and self.store.get("/configmaps", name, "kube-root-ca.crt") is None
                ):
                    self.api.create_object(
                        by_key("/configmaps"),
                        {
                            "kind": "ConfigMap",
                            "apiVersion": "v1",
                            "metadata": {
                                "name": "kube-root-ca.crt",
                                "namespace": name,
                                "annotations": {
                                    "kubernetes.io/description": "Contains a CA bundle "
                                    "that can be used to verify the kube-apiserver when "
                                    "using internal endpoints such as the internal "
                                    "service IP or kubernetes.default.svc. No other "
                                    "usage is guaranteed across distributions of "
                                    "Kubernetes clusters."
                                },
                            },
                            "data": {"ca.crt": self.root_ca_pem},
                        },
                        SYSTEM,
                    )

    # --- bootstrap tokens ---------------------------------------------------------------

    def token_cleaner(self) -> None:
        now = timeutil.now()
        with self.store.lock:
            for secret in self.store.list("/secrets", "kube-system"):
                if secret.get("type") != BOOTSTRAP_TYPE:
                    continue
                expiration = _b64(secret.get("data") or {}, "expiration")
                expires = timeutil.parse_time(expiration) if expiration else None
                if expires is not None and expires <= now:
                    log.info("deleting expired bootstrap token secret %s", name_of(secret))
                    self.store.remove("/secrets", secret)

    def bootstrap_signer(self) -> None:
        """As the controller manager's bootstrap signer: sign kube-public/cluster-info for every
        bootstrap token allowed to sign (however the token was made: kubeadm or the API), and
        drop the signatures of tokens that are gone."""
        with self.store.lock:
            info = self.store.get("/configmaps", "kube-public", "cluster-info")
            payload = ((info or {}).get("data") or {}).get("kubeconfig")
            if not payload:
                return
            signatures = {}
            for secret in self.store.list("/secrets", "kube-system"):
                data = secret.get("data") or {}
                if secret.get("type") != BOOTSTRAP_TYPE:
                    continue
                if _b64(data, "usage-bootstrap-signing") != "true":
                    continue
                token_id, token_secret = _b64(data, "token-id"), _b64(data, "token-secret")
                signatures[tokens.JWS_PREFIX + token_id] = tokens.jws_sign(
                    payload, token_id, token_secret
                )
            old = info["data"]
            new = {k: v for k, v in old.items() if not k.startswith(tokens.JWS_PREFIX)}
            new.update(signatures)
            if new != old:
                self._put("/configmaps", {**info, "data": new}, info)

    # --- nodes --------------------------------------------------------------------------

    def _last_heartbeat(self, node: dict[str, Any]) -> float:
        times = [timeutil.parse_time(node["metadata"].get("creationTimestamp")) or 0.0]
        lease = self.store.get("coordination.k8s.io/leases", "kube-node-lease", name_of(node))
        if lease:
            times.append(timeutil.parse_time((lease.get("spec") or {}).get("renewTime")) or 0.0)
        ready = condition(node, "Ready")
        if ready:
            times.append(timeutil.parse_time(ready.get("lastHeartbeatTime")) or 0.0)
        return max(times)

    def node_lifecycle(self) -> None:
        now = timeutil.now()
        stamp = timeutil.rfc3339(now)
        with self.store.lock:
            for node in self.store.list("/nodes"):
                new = copy.deepcopy(node)
                became_unknown = False
                if now - self._last_heartbeat(node) > self.grace:
                    ready = condition(node, "Ready")
                    if ready is None or ready.get("status") != "Unknown":
                        became_unknown = True
                        never = ready is None
                        for ctype in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
                            existing = condition(node, ctype)
                            if existing is None and ctype != "Ready":
                                continue
                            set_condition(
                                new,
                                {
                                    "type": ctype,
                                    "status": "Unknown",
                                    "reason": "NodeStatusUnknown",
                                    "message": "Kubelet never posted node status."
                                    if never
                                    else "Kubelet stopped posting node status.",
                                    "lastHeartbeatTime": (existing or {}).get(
                                        "lastHeartbeatTime", stamp
                                    ),
                                },
                                stamp,
                            )
                        log.info("node %s stopped heartbeating: Ready=Unknown", name_of(node))
                        self.event(
                            node,
                            "Normal",
                            "NodeNotReady",
                            f"Node {name_of(node)} status is now: NodeNotReady",
                            "node-controller",
                        )
                self._reconcile_taints(new, stamp)
                if new.get("status") != node.get("status"):
                    node = self.api.write(by_key("/nodes"), new, node, SYSTEM, "status")
                    new = copy.deepcopy(node)
                    self._reconcile_taints(new, stamp)
                if new.get("spec") != node.get("spec"):
                    self._put("/nodes", new, node)
                if became_unknown:
                    self._mark_pods_not_ready(name_of(node), stamp)

    @staticmethod
    def _reconcile_taints(node: dict[str, Any], stamp: str) -> None:
        state = node_ready(node)
        if condition(node, "Ready") is None:
            wanted = [(NOT_READY, "NoSchedule")]
        elif state == "True":
            wanted = []
        elif state == "False":
            wanted = [(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
        else:
            wanted = [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
        spec = node.setdefault("spec", {})
        taints = list(spec.get("taints") or [])
        managed = {NOT_READY, UNREACHABLE}
        kept = [
            t
            for t in taints
            if t.get("key") not in managed or (t.get("key"), t.get("effect")) in wanted
        ]
        for key, effect in wanted:
            if not any(t.get("key") == key and t.get("effect") == effect for t in kept):
                taint = {"key": key, "effect": effect}
                if effect == "NoExecute":
                    taint["timeAdded"] = stamp
                kept.append(taint)
        if kept != taints:
            if kept:
                spec["taints"] = kept
            else:
                spec.pop("taints", None)

    def _mark_pods_not_ready(self, node_name: str, stamp: str) -> None:
        for pod in self.store.list("/pods"):
            if (pod.get("spec") or {}).get("nodeName") != node_name or not pod_ready(pod):
                continue
            new = copy.deepcopy(pod)
            set_condition(new, {"type": "Ready", "status": "False"}, stamp)
            self._put_status("/pods", new, pod)

    # --- garbage collection -------------------------------------------------------------

    def pod_gc(self) -> None:
        with self.store.lock:
            nodes = {name_of(n) for n in self.store.list("/nodes")}
            for pod in self.store.list("/pods"):
                node = (pod.get("spec") or {}).get("nodeName")
                if node and node not in nodes:
                    log.info(
                        "deleting pod %s/%s bound to missing node %s",
                        ns_of(pod),
                        name_of(pod),
                        node,
                    )
                    self.store.remove("/pods", pod)
                elif not node and deleting(pod):
                    self.store.remove("/pods", pod)

    def garbage_collector(self) -> None:
        with self.store.lock:
            uids = self.store.all_uids()
            for key, bucket in list(self.store.objects.items()):
                for obj in list(bucket.values()):
                    refs = obj.get("metadata", {}).get("ownerReferences") or []
                    if refs and not any(r.get("uid") in uids for r in refs) and not deleting(obj):
                        self._delete(key, obj, propagationPolicy="Background")

    # --- deployments --------------------------------------------------------------------

    def deployments(self) -> None:
        with self.store.lock:
            for deploy in self.store.list("apps/deployments"):
                if not deleting(deploy):
                    self._sync_deployment(deploy)

    def _sync_deployment(self, deploy: dict[str, Any]) -> None:
        spec = deploy.get("spec") or {}
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        digest = template_hash(template)
        owned = self._owned("apps/replicasets", deploy)
        owned += self._adopt("apps/replicasets", deploy, spec.get("selector"))
        new_rs = next((rs for rs in owned if labels_of(rs).get(HASH_LABEL) == digest), None)
        revisions = [
            int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for rs in owned
        ]
        created = False
        if new_rs is None:
            revision = str(max(revisions, default=0) + 1)
            rs_template = copy.deepcopy(template)
            rs_template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
            new_rs = self.api.create_object(
                by_key("apps/replicasets"),
                {
                    "kind": "ReplicaSet",
                    "apiVersion": "apps/v1",
                    "metadata": {
                        "name": f"{name_of(deploy)}-{digest}",
                        "namespace": ns_of(deploy),
                        "labels": dict(rs_template["metadata"]["labels"]),
                        "annotations": {
                            REVISION: revision,
                            "deployment.kubernetes.io/desired-replicas": str(desired),
                            "deployment.kubernetes.io/max-replicas": str(desired),
                        },
                        "ownerReferences": [owner_ref(deploy)],
                    },
                    "spec": {
                        "replicas": desired,
                        "minReadySeconds": spec.get("minReadySeconds", 0),
                        "selector": selector,
                        "template": rs_template,
                    },
                },
                SYSTEM,
            )
            created = True
            self.event(
                deploy,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {name_of(new_rs)} from 0 to {desired}",
                "deployment-controller",
            )
        elif (new_rs.get("spec") or {}).get("replicas") != desired:
            new = copy.deepcopy(new_rs)
            new["spec"]["replicas"] = desired
            new["metadata"].setdefault("annotations", {})[
                "deployment.kubernetes.io/desired-replicas"
            ] = str(desired)
            new_rs = self._put("apps/replicasets", new, new_rs)
        old_rss = [rs for rs in owned if uid_of(rs) != uid_of(new_rs)]
        available_new = int((new_rs.get("status") or {}).get("availableReplicas", 0))
        remaining = max(0, desired - available_new)
        for rs in sorted(old_rss, key=lambda r: r["metadata"].get("creationTimestamp", "")):
            current = int((rs.get("spec") or {}).get("replicas", 0))
            target = min(current, remaining)
            remaining -= target
            if target != current:
                new = copy.deepcopy(rs)
                new["spec"]["replicas"] = target
                self._put("apps/replicasets", new, rs)
        history = int(spec.get("revisionHistoryLimit", 10))
        idle = [
            rs
            for rs in old_rss
            if not (rs.get("spec") or {}).get("replicas")
            and not (rs.get("status") or {}).get("replicas")
        ]
        idle.sort(key=lambda r: r["metadata"].get("creationTimestamp", ""))
        for rs in idle[: max(0, len(idle) - history)]:
            self._delete("apps/replicasets", rs)
        revision = (new_rs["metadata"].get("annotations") or {}).get(REVISION, "1")
        owned = self._owned("apps/replicasets", deploy)
        self._deployment_status(deploy, owned, new_rs, desired, revision, created)

    def _deployment_status(
        self,
        deploy: dict[str, Any],
        owned: list[dict[str, Any]],
        new_rs: dict[str, Any],
        desired: int,
        revision: str,
        created: bool,
    ) -> None:
        current = self.store.get("apps/deployments", ns_of(deploy), name_of(deploy))
        if current is None:
            return
        if (current["metadata"].get("annotations") or {}).get(REVISION) != revision:
            new = copy.deepcopy(current)
            new["metadata"].setdefault("annotations", {})[REVISION] = revision
            current = self._put("apps/deployments", new, current)

        def total(field: str) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in owned)

        new_status = new_rs.get("status") or {}
        available = total("availableReplicas")
        replicas = total("replicas")
        updated = int(new_status.get("replicas", 0))
        strategy = (current.get("spec") or {}).get("strategy") or {}
        max_unavailable = 0
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            max_unavailable = scaled_value(
                (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%"), desired, False
            )
        status = copy.deepcopy(current.get("status") or {})
        status.update(
            observedGeneration=current["metadata"].get("generation", 1),
            replicas=replicas,
            updatedReplicas=updated,
            readyReplicas=total("readyReplicas"),
            availableReplicas=available,
        )
        unavailable = max(0, desired - available)
        if unavailable:
            status["unavailableReplicas"] = unavailable
        else:
            status.pop("unavailableReplicas", None)
        for field in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if not status.get(field):
                status.pop(field, None)
        new = copy.deepcopy(current)
        new["status"] = status
        stamp = timeutil.rfc3339()
        ok = available >= desired - max_unavailable
        _set_cond(
            new,
            {
                "type": "Available",
                "status": "True" if ok else "False",
                "reason": "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if ok
                else "Deployment does not have minimum availability.",
            },
            stamp,
        )
        rs_name = name_of(new_rs)
        complete = updated == desired and replicas == desired and available >= desired
        if complete:
            progressing = (
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif created:
            progressing = ("NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        else:
            progressing = ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        _set_cond(
            new,
            {
                "type": "Progressing",
                "status": "True",
                "reason": progressing[0],
                "message": progressing[1],
            },
            stamp,
        )
        self._put_status("apps/deployments", new, current)

    # --- replica sets -------------------------------------------------------------------

    def replicasets(self) -> None:
        with self.store.lock:
            for rs in self.store.list("apps/replicasets"):
                if not deleting(rs):
                    self._sync_replicaset(rs)

    def _sync_replicaset(self, rs: dict[str, Any]) -> None:
        spec = rs.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        pods = [p for p in self._owned("/pods", rs) if pod_active(p)]
        pods += self._adopt("/pods", rs, spec.get("selector"))
        if len(pods) < desired:
            for _ in range(desired - len(pods)):
                pod = self._create_pod_from(rs, spec.get("template") or {})
                pods.append(pod)
                self.event(
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created pod: {name_of(pod)}",
                    "replicaset-controller",
                )
        elif len(pods) > desired:

            def rank(p: dict[str, Any]) -> tuple:
                return (
                    bool((p.get("spec") or {}).get("nodeName")),
                    (p.get("status") or {}).get("phase") == "Running",
                    pod_ready(p),
                    _neg_time(p["metadata"].get("creationTimestamp")),
                )

            pods.sort(key=rank)
            for pod in pods[: len(pods) - desired]:
                self._delete("/pods", pod)
                self.event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {name_of(pod)}",
                    "replicaset-controller",
                )
            pods = [p for p in self._owned("/pods", rs) if pod_active(p)]
        selector = spec.get("selector")
        ready = sum(1 for p in pods if pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1 for p in pods if labelselector_matches(selector, labels_of(p))
            ),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas",)}
        current = self.store.get("apps/replicasets", ns_of(rs), name_of(rs))
        if current is not None:
            new = copy.deepcopy(current)
            new["status"] = status
            self._put_status("apps/replicasets", new, current)

    def _create_pod_from(
        self,
        owner: dict[str, Any],
        template: dict[str, Any],
        extra_tolerations: list[dict[str, Any]] | None = None,
        node: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        meta = copy.deepcopy(template.get("metadata") or {})
        spec = copy.deepcopy(template.get("spec") or {})
        meta.pop("name", None)
        meta["generateName"] = name_of(owner) + "-"
        meta["namespace"] = ns_of(owner)
        meta["ownerReferences"] = [owner_ref(owner)]
        if labels:
            meta.setdefault("labels", {}).update(labels)
        if extra_tolerations:
            tolerations = spec.setdefault("tolerations", [])
            for tol in extra_tolerations:
                if tol not in tolerations:
                    tolerations.append(dict(tol))
        if node:
            affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
            affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]
            }
        return self.api.create_object(
            by_key("/pods"),
            {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": meta,
                "spec": spec,
            },
            SYSTEM,
        )

    # --- daemon sets --------------------------------------------------------------------

    def daemonsets(self) -> None:
        with self.store.lock:
            nodes = [n for n in self.store.list("/nodes") if not deleting(n)]
            for ds in self.store.list("apps/daemonsets"):
                if not deleting(ds):
                    self._sync_daemonset(ds, nodes)

    def _sync_daemonset(self, ds: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
        template = (ds.get("spec") or {}).get("template") or {}
        pod_spec = template.get("spec") or {}
        digest = template_hash(template)
        tolerations = list(pod_spec.get("tolerations") or []) + DAEMON_TOLERATIONS
        eligible = {
            name_of(n)
            for n in nodes
            if node_affinity_matches(pod_spec, n)
            and tolerates(tolerations, (n.get("spec") or {}).get("taints"))
        }
        pods = [p for p in self._owned("/pods", ds) if pod_active(p)]
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            by_node.setdefault(_daemon_target(pod), []).append(pod)
        for node_name, node_pods in by_node.items():
            node_pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
            surplus = node_pods[1:] if node_name in eligible else node_pods
            for pod in surplus:
                self._delete("/pods", pod)
            if (
                node_name in eligible
                and node_pods
                and labels_of(node_pods[0]).get(DS_HASH_LABEL) != digest
            ):
                self._delete("/pods", node_pods[0])
        generation = str(ds["metadata"].get("generation", 1))
        for node_name in sorted(eligible):
            alive = [
                p
                for p in by_node.get(node_name, [])
                if self.store.get("/pods", ns_of(p), name_of(p)) is not None
                and not deleting(self.store.get("/pods", ns_of(p), name_of(p)) or {})
            ]
            if not alive:
                self._create_pod_from(
                    ds,
                    template,
                    DAEMON_TOLERATIONS,
                    node=node_name,
                    labels={DS_HASH_LABEL: digest, "pod-template-generation": generation},
                )
        pods = [p for p in self._owned("/pods", ds) if pod_active(p)]
        on_eligible = [p for p in pods if _daemon_target(p) in eligible]
        ready = [p for p in on_eligible if pod_ready(p)]
        status = {
            "currentNumberScheduled": len(
                {_daemon_target(p) for p in on_eligible if (p.get("spec") or {}).get("nodeName")}
            ),
            "desiredNumberScheduled": len(eligible),
            "numberMisscheduled": len([p for p in pods if _daemon_target(p) not in eligible]),
            "numberReady": len(ready),
            "numberAvailable": len(ready),
            "updatedNumberScheduled": len(
                [p for p in on_eligible if labels_of(p).get(DS_HASH_LABEL) == digest]
            ),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        unavailable = len(eligible) - len(ready)
        if unavailable > 0:
            status["numberUnavailable"] = unavailable
        if not status["numberAvailable"]:
            status.pop("numberAvailable")
        current = self.store.get("apps/daemonsets", ns_of(ds), name_of(ds))
        if current is not None:
            new = copy.deepcopy(current)
            new["status"] = status
            self._put_status("apps/daemonsets", new, current)

    # --- scheduler ----------------------------------------------------------------------

    def scheduler(self) -> None:
        with self.store.lock:
            nodes = [n for n in self.store.list("/nodes") if not deleting(n)]
            pods = self.store.list("/pods")
            load: dict[str, int] = {name_of(n): 0 for n in nodes}
            for pod in pods:
                node = (pod.get("spec") or {}).get("nodeName")
                if node in load and pod_active(pod):
                    load[node] += 1
            for pod in pods:
                spec = pod.get("spec") or {}
                if spec.get("nodeName") or not pod_active(pod):
                    continue
                if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                    continue
                fits, reasons, volumes = [], {}, {}
                claims, claim_problem = pod_claims(pod, self.store.list("/persistentvolumeclaims"))
                pvs = self.store.list("/persistentvolumes")
                for node in nodes:
                    why = claim_problem or unschedulable_reason(pod, node)
                    if not why:
                        volumes[name_of(node)], why = choose_volumes(claims, pvs, node)
                    if why:
                        reasons[why] = reasons.get(why, 0) + 1
                    else:
                        fits.append(node)
                if fits:
                    best = min(fits, key=lambda n: (load[name_of(n)], name_of(n)))
                    self._bind_claims(claims, volumes[name_of(best)])
                    self.api.bind_pod(pod, name_of(best))
                    load[name_of(best)] += 1
                    self.event(
                        pod,
                        "Normal",
                        "Scheduled",
                        f"Successfully assigned {ns_of(pod)}/{name_of(pod)} to {name_of(best)}",
                        "default-scheduler",
                    )
                    continue
                detail = ", ".join(f"{count} {why}" for why, count in sorted(reasons.items()))
                message = f"0/{len(nodes)} nodes are available" + (
                    f": {detail}." if detail else "."
                )
                if nodes:
                    message += (
                        " preemption: 0/{0} nodes are available: {0} Preemption is not "
                        "helpful for scheduling."
                    ).format(len(nodes))
                new = copy.deepcopy(pod)
                set_condition(
                    new,
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                    },
                    timeutil.rfc3339(),
                )
                if new.get("status") != pod.get("status"):
                    self._put_status("/pods", new, pod)
                    self.event(pod, "Warning", "FailedScheduling", message, "default-scheduler")

    def _bind_claims(self, claims: list[dict[str, Any]], chosen: dict[str, dict[str, Any]]) -> None:
        """Bind each unbound claim of a pod being scheduled to the PV chosen for it."""
        for pvc in claims:
            pv = chosen.get(name_of(pvc))
            if pv is None:
                continue
            new_pv, new_pvc = bound_pair(pv, pvc)
            status = new_pvc.pop("status")  # a main-resource write keeps the old status
            self._put("/persistentvolumes", new_pv, pv)
            written = self._put("/persistentvolumeclaims", new_pvc, pvc)
            self._put_status("/persistentvolumeclaims", {**written, "status": status}, written)

    # --- persistent volumes -------------------------------------------------------------

    def persistent_volumes(self) -> None:
        """The PV controller's phases: Available, Bound, Released (claim gone; Retain)."""
        with self.store.lock:
            pvcs = self.store.list("/persistentvolumeclaims")
            for pv in self.store.list("/persistentvolumes"):
                phase = pv_phase(pv, pvcs)
                if (pv.get("status") or {}).get("phase") != phase:
                    self._put_status("/persistentvolumes", {**pv, "status": {"phase": phase}}, pv)

    # --- disruption budgets -------------------------------------------------------------

    def disruption_budgets(self) -> None:
        with self.store.lock:
            for pdb in self.store.list("policy/poddisruptionbudgets"):
                ns = ns_of(pdb)
                status = pdb_status(
                    pdb, self.store.list("/pods", ns), self.api.controller_replicas(ns)
                )
                status.pop("disruptedPods", None)
                new = copy.deepcopy(pdb)
                new["status"] = status
                allowed = status["disruptionsAllowed"] > 0
                _set_cond(
                    new,
                    {
                        "type": "DisruptionAllowed",
                        "status": "True" if allowed else "False",
                        "reason": "SufficientPods" if allowed else "InsufficientPods",
                        "message": "",
                        "observedGeneration": status["observedGeneration"],
                    },
                    timeutil.rfc3339(),
                )
                self._put_status("policy/poddisruptionbudgets", new, pdb)

    # --- endpoints ----------------------------------------------------------------------

    def endpoints(self) -> None:
        """Endpoints for Services with a selector, from the pods that have an IP."""
        with self.store.lock:
            services = {(ns_of(s), name_of(s)): s for s in self.store.list("/services")}
            for ep in self.store.list("/endpoints"):
                svc = services.get((ns_of(ep), name_of(ep)))
                orphaned = svc is None or not (svc.get("spec") or {}).get("selector")
                if orphaned and labels_of(ep).get(MANAGED_BY) == ENDPOINTS_CTRL:
                    self.store.remove("/endpoints", ep)
            for svc in services.values():
                selector = (svc.get("spec") or {}).get("selector")
                if selector:
                    self._sync_endpoints(svc, selector)

    def _sync_endpoints(self, svc: dict[str, Any], selector: dict[str, str]) -> None:
        ns = ns_of(svc)
        pods = [
            p
            for p in self.store.list("/pods", ns)
            if all(labels_of(p).get(k) == v for k, v in selector.items())
            and (p.get("status") or {}).get("podIP")
            and not deleting(p)
        ]
        ready, not_ready = [], []
        for pod in pods:
            address = {
                "ip": pod["status"]["podIP"],
                "nodeName": (pod.get("spec") or {}).get("nodeName", ""),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": name_of(pod),
                    "uid": uid_of(pod),
                },
            }
            (ready if pod_ready(pod) else not_ready).append(address)
        ports = []
        for port in (svc.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str) and not target.isdigit():
                target = _named_port(pods, target)
                if target is None:
                    continue
            entry = {"port": int(target), "protocol": port.get("protocol", "TCP")}
            if port.get("name"):
                entry["name"] = port["name"]
            ports.append(entry)
        subset: dict[str, Any] = {"ports": ports}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subsets = [subset] if pods and ports else []
        labels = dict(labels_of(svc), **{MANAGED_BY: ENDPOINTS_CTRL})
        current = self.store.get("/endpoints", ns, name_of(svc))
        if current is None:
            body = {
                "kind": "Endpoints",
                "apiVersion": "v1",
                "metadata": {"name": name_of(svc), "namespace": ns, "labels": labels},
            }
            if subsets:
                body["subsets"] = subsets
            self.api.create_object(by_key("/endpoints"), body, SYSTEM)
        elif (current.get("subsets") or []) != subsets or labels_of(current) != labels:
            new = copy.deepcopy(current)
            new["metadata"]["labels"] = labels
            if subsets:
                new["subsets"] = subsets
            else:
                new.pop("subsets", None)
            self._put("/endpoints", new, current)

    # --- certificate signing requests ---------------------------------------------------

    def certificates(self) -> None:
        key = "certificates.k8s.io/certificatesigningrequests"
        with self.store.lock:
            pending = []
            for csr in self.store.list(key):
                status = csr.get("status") or {}
                types = {c.get("type") for c in status.get("conditions") or []}
                if status.get("certificate") or types & {"Denied", "Failed"}:
                    continue
                pending.append(copy.deepcopy(csr))
        for csr in pending:
            self._process_csr(key, csr)

    def _process_csr(self, key: str, csr: dict[str, Any]) -> None:
        spec = csr.get("spec") or {}
        signer = spec.get("signerName", "")
        approved = any(
            c.get("type") == "Approved" and c.get("status", "True") == "True"
            for c in (csr.get("status") or {}).get("conditions") or []
        )
        stamp = timeutil.rfc3339()
        conditions: list[dict[str, Any]] = []
        certificate = None
        try:
            pem = certs.decode_request(spec.get("request") or "")
            if signer == certs.KUBELET_CLIENT:
                cn, orgs = certs.csr_subject(pem)
                bad = _kubelet_client_problem(cn, orgs, spec.get("usages") or [])
                if bad:
                    conditions.append(_csr_cond("Failed", "SignerValidationFailure", bad, stamp))
                elif not approved:
                    approved = True
                    conditions.append(
                        _csr_cond(
                            "Approved",
                            "AutoApproved",
                            "Auto approving kubelet client certificate after SubjectAccessReview.",
                            stamp,
                        )
                    )
            failed = any(c["type"] == "Failed" for c in conditions)
            can_sign = signer in certs.SIGNERS and self.signing_cert and self.signing_key
            if approved and not failed and can_sign:
                seconds = int(spec.get("expirationSeconds") or self.signing_duration)
                seconds = min(seconds, int(self.signing_duration))
                certificate = certs.sign(
                    pem, self.signing_cert, self.signing_key, spec.get("usages") or [], seconds
                )
        except certs.SigningError as exc:
            conditions.append(_csr_cond("Failed", "SignerValidationFailure", str(exc), stamp))
        if not conditions and certificate is None:
            return
        with self.store.lock:
            current = self.store.get(key, "", name_of(csr))
            if current is None or uid_of(current) != uid_of(csr):
                return
            new = copy.deepcopy(current)
            status = new.setdefault("status", {})
            status.setdefault("conditions", []).extend(conditions)
            if certificate is not None:
                status["certificate"] = base64.b64encode(certificate).decode()
                log.info("signed CSR %s for %s", name_of(csr), spec.get("username"))
            self._put_status(key, new, current)


EVENT_TTL = 3600.0
MANAGED_BY = "endpoints.kubernetes.io/managed-by"
ENDPOINTS_CTRL = "endpoint-controller"


def _named_port(pods: list[dict[str, Any]], name: str) -> int | None:
    for pod in pods:
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == name:
                    return int(port["containerPort"])
    return None


def _csr_cond(ctype: str, reason: str, message: str, stamp: str) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }


def _kubelet_client_problem(cn: str, orgs: list[str], usages: list[str]) -> str:
    if orgs != ["system:nodes"]:
        return f"subject organization is not system:nodes (got {orgs})"
    if not cn.startswith("system:node:") or cn == "system:node:":
        return f'subject common name does not begin with "system:node:" (got {cn!r})'
    allowed = {"digital signature", "key encipherment", "client auth"}
    if not set(usages) <= allowed or "client auth" not in usages:
        return f"usages did not match {sorted(allowed)}"
    return ""


def _set_cond(obj: dict[str, Any], cond: dict[str, Any], stamp: str) -> None:
    existing = condition(obj, cond["type"])
    same = existing is not None and all(existing.get(k) == v for k, v in cond.items())
    if not same:
        cond = dict(cond, lastUpdateTime=stamp)
        set_condition(obj, cond, stamp)


def _neg_time(text: str | None) -> float:
    return -(timeutil.parse_time(text) or 0.0)


def _daemon_target(pod: dict[str, Any]) -> str:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    terms = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return field["values"][0]
    return ""


def effective_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Node taints plus the ones implied by its conditions and spec.unschedulable."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    state = node_ready(node)
    keys = {(t.get("key"), t.get("effect")) for t in taints}
    implied = []
    if state == "False":
        implied.append((NOT_READY, "NoSchedule"))
    elif state != "True":
        implied.append((UNREACHABLE if condition(node, "Ready") else NOT_READY, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        implied.append((UNSCHEDULABLE, "NoSchedule"))
    for key, effect in implied:
        if (key, effect) not in keys:
            taints.append({"key": key, "effect": effect})
    return taints


def unschedulable_reason(pod: dict[str, Any], node: dict[str, Any]) -> str:
    """Why ``pod`` cannot go to ``node`` ('' when it can), in the scheduler's words."""
    spec = pod.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    for taint in effective_taints(node):
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerates(tolerations, [taint]):
            if taint.get("key") == UNSCHEDULABLE:
                return "node(s) were unschedulable"
            return "node(s) had untolerated taint {{{}: {}}}".format(
                taint.get("key"),
                taint.get("value", ""),
            )
    if not node_affinity_matches(spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return ""
