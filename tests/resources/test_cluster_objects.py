"""k8s_cluster.resources against a real cluster (the session's shared one): apply, readiness,
external endpoints, delete. Every namespace and cluster-scoped object a test makes is removed
at the end of the module."""

from __future__ import annotations

import datetime

import pytest
import urllib3
from cloudify.exceptions import NonRecoverableError, RecoverableError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8s_cluster import kube
from k8s_cluster.resource_operations import api_failure
from k8s_cluster.resources import (
    Cluster,
    Connection,
    ExternalEndpoint,
    ObjectRef,
    ResourceError,
    check_access,
    load_documents,
    ready_endpoints,
)
from tests.testbed import KUBERNETES_VERSION, wait_for

pytestmark = pytest.mark.e2e
NAMESPACES = ("apply", "claims", "secrets", "lonely", "external", "deleting")
APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: IMAGE, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"""


@pytest.fixture(scope="module")
def cluster(apiserver) -> Cluster:
    cluster = Cluster(Connection(kubeconfig=apiserver.kubeconfig).api_client())
    yield cluster
    for name in NAMESPACES:
        apiserver.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")
    apiserver.kubectl("delete", "storageclass", "late", "--ignore-not-found")


@pytest.fixture(scope="module")
def app(bundle) -> str:
    return APP.replace("IMAGE", bundle.test_image)


def other_ca(folder) -> str:
    """A CA certificate of its own, which signed nothing the cluster serves."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-cluster-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "other-ca.crt"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(path)


def namespace(cluster: Cluster, name: str) -> str:
    assert name in NAMESPACES  # so that the module removes it
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def wait_ready(cluster: Cluster, ref: ObjectRef, timeout: float = 120) -> None:
    kube.wait_until(lambda: cluster.readiness(ref), timeout, str(ref))


def test_apply_creates_then_converges_then_patches(cluster, app, bundle):
    ns = namespace(cluster, "apply")
    docs = load_documents(manifest=app)
    first = [cluster.apply(doc, ns) for doc in docs]
    assert [str(a) for a in first] == ["Deployment apply/web created", "Service apply/web created"]
    assert all(a.ref.created for a in first)
    second = [cluster.apply(doc, ns) for doc in docs]
    assert [a.action for a in second] == ["unchanged", "unchanged"]
    assert not any(a.ref.created for a in second)  # this apply did not create them

    docs[0]["spec"]["replicas"] = 3
    changed = cluster.apply(docs[0], ns)
    assert (changed.action, changed.changed) == ("configured", ["spec.replicas"])
    assert not changed.ref.created  # it existed before this apply
    live = cluster.get(changed.ref)
    assert live["spec"]["replicas"] == 3
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == bundle.test_image
    wait_ready(cluster, changed.ref)
    service = cluster.get(ObjectRef("v1", "Service", "web", ns))
    node_port = service["spec"]["ports"][0]["nodePort"]
    assert cluster.apply(docs[1], ns).action == "unchanged"  # the allocated nodePort stays
    assert (
        cluster.get(ObjectRef("v1", "Service", "web", ns))["spec"]["ports"][0]["nodePort"]
        == node_port
    )


def test_cluster_scoped_objects_lose_a_namespace(cluster):
    storage = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "late", "namespace": "ignored"},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    applied = cluster.apply(storage, "shop")
    assert applied.ref == ObjectRef("storage.k8s.io/v1", "StorageClass", "late", "", True)
    ns = namespace(cluster, "claims")
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {
            "storageClassName": "late",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    ref = cluster.apply(claim, ns).ref
    assert cluster.readiness(ref) == (
        True,
        "Pending until its first consumer (WaitForFirstConsumer)",
    )
    claim["spec"]["storageClassName"] = "immediate"
    claim["metadata"]["name"] = "other"
    other = cluster.apply(claim, ns).ref
    assert cluster.readiness(other) == (False, "phase Pending")


def test_secret_values_never_reach_messages(cluster):
    ns = namespace(cluster, "secrets")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"PASSWORD": "hunter2-first"},
    }
    cluster.apply(secret, ns)
    secret["stringData"]["PASSWORD"] = "hunter2-second"
    applied = cluster.apply(secret, ns)
    assert applied.changed == ["data.PASSWORD"]
    assert "hunter2" not in str(applied)


def test_unknown_kind_and_invalid_object_are_clear_errors(cluster):
    with pytest.raises(ResourceError, match=r"serves no Widget in example\.org/v1"):
        cluster.apply({"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}})
    with pytest.raises(ResourceError, match="ConfigMap nowhere/c: "):
        cluster.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "nowhere"
        )


def test_readiness_times_out_naming_the_object_and_what_was_seen(cluster):
    ns = namespace(cluster, "lonely")
    lonely = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "nobody"},
        "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]},
    }
    ref = cluster.apply(lonely, ns).ref
    with pytest.raises(TimeoutError, match=r"Service lonely/nobody.*last seen: 0 ready endpoint"):
        kube.wait_until(lambda: cluster.readiness(ref), 1, str(ref))


def test_external_endpoint_published_and_moved(cluster):
    ns = namespace(cluster, "external")
    first = [cluster.apply(o) for o in ExternalEndpoint("db", ns, "10.9.0.5", 5432).objects()]
    assert [a.action for a in first] == ["created", "created"]
    service = ObjectRef("v1", "Service", "db", ns)
    assert cluster.readiness(service) == (True, "1 ready endpoint(s)")
    again = [cluster.apply(o) for o in ExternalEndpoint("db", ns, "10.9.0.5", 5432).objects()]
    assert [a.action for a in again] == ["unchanged", "unchanged"]
    moved = [cluster.apply(o) for o in ExternalEndpoint("db", ns, "10.9.0.77", 5432).objects()]
    assert [a.action for a in moved] == ["unchanged", "configured"]
    slices = cluster.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        ns,
        label_selector="kubernetes.io/service-name=db",
    )
    assert [e["addresses"] for s in slices for e in s["endpoints"]] == [["10.9.0.77"]]
    assert ready_endpoints(cluster, ns, "db") == 1


def test_delete_with_propagation_then_gone(cluster, app):
    ns = namespace(cluster, "deleting")
    ref = cluster.apply(load_documents(manifest=app)[0], ns).ref
    wait_ready(cluster, ref)
    assert cluster.delete(ref, "Foreground")
    kube.wait_until(lambda: cluster.gone(ref), 60, f"{ref} deleted")
    wait_for(lambda: not cluster.list("v1", "Pod", ns), "pods deleted with it", timeout=60)
    assert not cluster.delete(ref)  # already gone


def test_access_is_checked_with_the_credentials(apiserver, tmp_path):
    version = check_access(Connection(kubeconfig=apiserver.kubeconfig).api_client())
    assert version == f"v{KUBERNETES_VERSION}"
    ca = str(apiserver.ca_file)
    wrong_token = Connection(api_endpoint=apiserver.url, token="not-a-token", ca_cert=ca)
    with pytest.raises(ResourceError, match="answered 401 Unauthorized: check the kubeconfig"):
        check_access(wrong_token.api_client())


def test_a_certificate_the_ca_does_not_sign_is_a_final_error(apiserver, tmp_path):
    connection = Connection(api_endpoint=apiserver.url, token="t", ca_cert=other_ca(tmp_path))
    api_client = connection.api_client()
    api_client.configuration.retries = 0
    with pytest.raises(urllib3.exceptions.HTTPError) as caught:
        check_access(api_client)
    failure = api_failure(caught.value)
    assert isinstance(failure, NonRecoverableError)
    assert "check ca_cert" in str(failure)
    assert isinstance(api_failure(OSError("connection refused")), RecoverableError)
