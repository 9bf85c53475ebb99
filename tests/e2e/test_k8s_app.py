"""The app blueprint (blueprints/k8s-app.yaml) against a cluster built by k8s-cluster.yaml,
through cfy: objects and their specs, the database host outside the cluster published as a
Service, NodePort URLs, update_resources, a re-addressed then healed machine, migrate_pods
within the PodDisruptionBudget, and an uninstall that removes exactly what it created.

The tests run in order on the session's shared cluster and one app deployment. The outside
database host is this machine, at its address on the cluster's network, where a TCP listener
stands in for the database: the app's pods reach it by the Service's name, through DNS."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time

import pytest
import yaml

from tests import testbed
from tests.testbed import SHARED_GATEWAY, kubectl

APP = "app"
NAMESPACE = "shop"
SNAPSHOT_KINDS = (
    "namespaces,configmaps,secrets,serviceaccounts,services,endpointslices,deployments,"
    "replicasets,poddisruptionbudgets,roles,rolebindings,storageclasses,daemonsets"
)


class Database:
    """A TCP listener on this machine standing in for the database host; counts connections."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("0.0.0.0", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


@pytest.fixture(scope="module")
def database():
    db = Database()
    yield db
    db.listener.close()


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    return shared_cluster


@pytest.fixture(scope="module")
def kubeconfig(cluster) -> str:
    return cluster["kubeconfig_path"]


def get_json(kubeconfig: str, *args: str) -> dict:
    return json.loads(kubectl(kubeconfig, "get", *args, "-o", "json"))


def snapshot(kubeconfig: str) -> set[tuple[str, str, str]]:
    """Every object of the kinds the app uses, anywhere in the cluster."""
    items = get_json(kubeconfig, SNAPSHOT_KINDS, "-A")["items"]
    return {(i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items}


@pytest.fixture(scope="module")
def before_app(kubeconfig):
    """The cluster before the app, with an object of the user's the app must never touch."""
    kubectl(kubeconfig, "create", "configmap", "keep-me", "-n", "default", "--from-literal=a=b")
    return snapshot(kubeconfig)


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_hex(12)


@pytest.fixture(scope="module")
def app(cfy, kubeconfig, before_app, password, database, bundle, tmp_path_factory):
    inputs = tmp_path_factory.mktemp("app") / "inputs.yaml"
    inputs.write_text(
        yaml.safe_dump(
            {
                "kubeconfig": kubeconfig,
                "namespace": NAMESPACE,
                "app_replicas": 2,
                "app_min_available": 1,
                "app_image": bundle.test_image,
                "database_address": SHARED_GATEWAY,
                "database_port": database.port,
                "database_password": password,
            }
        )
    )
    try:
        cfy("install", "blueprints/k8s-app.yaml", "-b", APP, "-i", str(inputs))
        yield cfy.outputs(APP)
    finally:
        cfy("uninstall", "-b", APP, check=False)


def app_pods(kubeconfig: str) -> list[dict]:
    """The app's pods that are not terminating."""
    pods = get_json(kubeconfig, "pods", "-n", NAMESPACE, "-l", "app=web")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def endpoint_addresses(kubeconfig: str, service: str) -> list[str]:
    slices = get_json(
        kubeconfig, "endpointslices", "-n", NAMESPACE, "-l", f"kubernetes.io/service-name={service}"
    )["items"]
    return [a for s in slices for e in s["endpoints"] for a in e["addresses"]]


def instance_of(cfy, node: str) -> str:
    listed = json.loads(cfy("node-instances", "-b", APP).stdout)
    return next(i["id"] for i in listed if i["node_id"] == node)


def test_objects_exist_with_the_right_specs(app, kubeconfig, cfy, password, database, bundle):
    deployment = get_json(kubeconfig, "deployment", "web", "-n", NAMESPACE)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == bundle.test_image
    assert container["envFrom"] == [
        {"configMapRef": {"name": "app-settings"}},
        {"secretRef": {"name": "app-credentials"}},
    ]
    assert spec["template"]["spec"]["serviceAccountName"] == "web"
    assert deployment["status"]["availableReplicas"] == 2
    assert all(ready(p) for p in app_pods(kubeconfig)) and len(app_pods(kubeconfig)) == 2

    settings = get_json(kubeconfig, "configmap", "app-settings", "-n", NAMESPACE)["data"]
    assert settings == {
        "DATABASE_HOST": f"database.{NAMESPACE}.svc.cluster.local",
        "DATABASE_PORT": str(database.port),
    }
    secret = get_json(kubeconfig, "secret", "app-credentials", "-n", NAMESPACE)
    assert base64.b64decode(secret["data"]["DATABASE_PASSWORD"]).decode() == password
    assert password not in "\n".join(cfy.transcript), "the Secret's value reached cfy's output"

    budget = get_json(kubeconfig, "pdb", "web", "-n", NAMESPACE)["spec"]
    assert budget == {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    # the three documents of manifests/app-access.yaml
    for kind in ("serviceaccount", "role", "rolebinding"):
        name = "web" if kind == "serviceaccount" else "web-read-config"
        assert get_json(kubeconfig, kind, name, "-n", NAMESPACE)["metadata"]["name"] == name
    service = get_json(kubeconfig, "service", "web", "-n", NAMESPACE)["spec"]
    assert service["type"] == "NodePort" and service["selector"] == {"app": "web"}


def test_external_service_resolves_to_the_outside_host(app, kubeconfig, database):
    service = get_json(kubeconfig, "service", "database", "-n", NAMESPACE)["spec"]
    assert "selector" not in service  # no pods behind it: the EndpointSlice names the host
    port = database.port
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(port, port)]
    assert endpoint_addresses(kubeconfig, "database") == [SHARED_GATEWAY]
    assert app["database_service"] == f"database.{NAMESPACE}.svc.cluster.local:{port}"


def test_the_apps_pods_reach_the_database_host_by_its_service_name(app, kubeconfig, database):
    before = database.connections
    for pod in app_pods(kubeconfig):
        name = pod["metadata"]["name"]
        address = f"database.{NAMESPACE}.svc.cluster.local:{database.port}"
        kubectl(kubeconfig, "exec", "-n", NAMESPACE, name, "--", "/testapp", "dial", address)
    assert database.connections - before == len(app_pods(kubeconfig)) == 2


def test_app_url_on_every_nodes_address(app, cluster, kubeconfig):
    node_port = get_json(kubeconfig, "service", "web", "-n", NAMESPACE)["spec"]["ports"][0][
        "nodePort"
    ]
    nodes = [cluster["control_plane_node"], *cluster["worker_nodes"]]
    expected = {f"http://{node['address']}:{node_port}" for node in nodes}
    assert set(app["app_urls"]) == expected
    assert app["app_url"] in expected
    pods = {p["metadata"]["name"] for p in app_pods(kubeconfig)}
    for url in app["app_urls"]:  # kube-proxy on every node forwards to the app's pods
        assert testbed.get_json(url)["hostname"] in pods


def test_update_changes_the_replica_count(app, kubeconfig, cfy):
    changes = {"app": {"spec": {"replicas": 3}}, "app_budget": {"spec": {"minAvailable": 2}}}
    result = cfy(
        "executions",
        "start",
        "update_resources",
        "-b",
        APP,
        "-p",
        json.dumps({"overrides": changes}),
    )
    assert "Deployment shop/web configured (spec.replicas)" in result.stdout
    assert "ConfigMap shop/app-settings unchanged" in result.stdout
    deployment = get_json(kubeconfig, "deployment", "web", "-n", NAMESPACE)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["status"]["availableReplicas"] == 3  # update waits until ready
    assert get_json(kubeconfig, "pdb", "web", "-n", NAMESPACE)["spec"]["minAvailable"] == 2
    # another run changes nothing: the overrides are kept
    again = cfy("executions", "start", "update_resources", "-b", APP)
    assert "Deployment shop/web unchanged" in again.stdout
    assert get_json(kubeconfig, "deployment", "web", "-n", NAMESPACE)["spec"]["replicas"] == 3


def test_new_machine_address_is_published_again(app, kubeconfig, cfy):
    moved = "10.82.0.250"
    cfy(
        "executions",
        "start",
        "execute_operation",
        "-b",
        APP,
        "-p",
        json.dumps(
            {
                "operation": "cloudify.interfaces.lifecycle.create",
                "operation_kwargs": {"address": moved},
                "allow_kwargs_override": True,
                "node_ids": ["database_host"],
            }
        ),
    )
    cfy("executions", "start", "update_resources", "-b", APP, "-p", "node_ids=[database]")
    assert endpoint_addresses(kubeconfig, "database") == [moved]
    # heal reinstalls the machine (back at its input address); routes_to's establish publishes it
    cfy(
        "executions",
        "start",
        "heal",
        "-b",
        APP,
        "-p",
        f"node_instance_id={instance_of(cfy, 'database_host')}",
    )
    assert endpoint_addresses(kubeconfig, "database") == [SHARED_GATEWAY]


class AvailabilityWatch:
    """Counts the app's ready pods every 0.2 s in the background; remembers the lowest."""

    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.lowest: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.is_set():
            count = sum(ready(p) for p in app_pods(self.kubeconfig))
            self.lowest = count if self.lowest is None else min(self.lowest, count)
            time.sleep(0.2)


def pods_by_node(kubeconfig: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in app_pods(kubeconfig):
        counts[pod["spec"]["nodeName"]] = counts.get(pod["spec"]["nodeName"], 0) + 1
    return counts


def migrate(cfy, **parameters) -> None:
    cfy("executions", "start", "migrate_pods", "-b", APP, "-p", json.dumps(parameters))


def test_migrate_pods_refuses_to_lose_emptydir_data_unless_told(app, cluster, kubeconfig, cfy):
    before = pods_by_node(kubeconfig)
    source = max(before, key=before.get)
    target = next(w["name"] for w in cluster["worker_nodes"] if w["name"] != source)
    parameters = {"workload": "app", "from_node": source, "to_node": target}
    refused = cfy(
        "executions", "start", "migrate_pods", "-b", APP, "-p", json.dumps(parameters),
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert f"{source}: {NAMESPACE}/web-" in refused.stdout, refused.stdout[-3000:]
    assert "emptyDir volume(s) cache" in refused.stdout
    assert pods_by_node(kubeconfig) == before
    nodes = get_json(kubeconfig, "nodes")["items"]
    assert not [n["metadata"]["name"] for n in nodes if n["spec"].get("unschedulable")]


@pytest.mark.parametrize("method", ["evict", "affinity"])
def test_migrate_pods_moves_them_and_keeps_min_available(app, cluster, kubeconfig, cfy, method):
    workers = sorted(w["name"] for w in cluster["worker_nodes"])
    before = pods_by_node(kubeconfig)
    source = max(workers, key=lambda w: before.get(w, 0))  # the worker holding most pods
    target = next(w for w in workers if w != source)
    assert before.get(source), before
    with AvailabilityWatch(kubeconfig) as watch:
        migrate(
            cfy,
            workload="app",
            from_node=source,
            to_node=target,
            method=method,
            grace_period=1,
            delete_emptydir_data=True,
        )
    print(f"\n{method}: fewest ready pods seen during the move: {watch.lowest}")
    assert pods_by_node(kubeconfig) == {target: 3}
    assert watch.lowest is not None and watch.lowest >= 2, f"minAvailable 2 broken: {watch.lowest}"
    nodes = get_json(kubeconfig, "nodes")["items"]
    assert not [n["metadata"]["name"] for n in nodes if n["spec"].get("unschedulable")]


def test_uninstall_deletes_what_it_created_and_nothing_else(app, kubeconfig, cfy, before_app):
    result = cfy("uninstall", "-b", APP)
    assert "existed before this deployment" not in result.stdout  # every object was its own
    namespaces = [n["metadata"]["name"] for n in get_json(kubeconfig, "namespaces")["items"]]
    assert NAMESPACE not in namespaces
    assert snapshot(kubeconfig) == before_app
    assert get_json(kubeconfig, "configmap", "keep-me", "-n", "default")["data"] == {"a": "b"}
