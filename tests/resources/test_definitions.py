"""The pure parts of k8s_cluster.resources: documents, merge patches, diffs, Services."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from k8s_cluster.resources import (
    Connection,
    ExternalEndpoint,
    ObjectRef,
    ResourceError,
    carry_created,
    changed_paths,
    load_documents,
    machine_address,
    merge_patch,
    named_object,
    node_port_urls,
    normalized,
)

MANIFEST = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
---
# an empty document, as editors leave them
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {minAvailable: 1}
"""


def test_manifest_documents_in_order_without_empty_ones():
    docs = load_documents(manifest=MANIFEST)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ServiceAccount", "web"),
        ("PodDisruptionBudget", "web"),
    ]


def test_inline_definition_one_or_several_then_manifest():
    one = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    assert load_documents(one) == [one]
    docs = load_documents([one, one], MANIFEST)
    assert [d["kind"] for d in docs] == [
        "ConfigMap",
        "ConfigMap",
        "ServiceAccount",
        "PodDisruptionBudget",
    ]


@pytest.mark.parametrize(
    ("definition", "manifest", "message"),
    [
        (None, "", "no object defined"),
        ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "", "document 1 has no apiVersion"),
        ({"apiVersion": "v1", "kind": "ConfigMap"}, "", "has no metadata.name"),
        (None, "a: [b", "manifest is not valid YAML"),
        (None, "- just\n- a list\n", "document 1 is not a mapping"),
    ],
)
def test_bad_definitions_are_named(definition, manifest, message):
    with pytest.raises(ResourceError, match=message):
        load_documents(definition, manifest)


def test_named_object_takes_metadata_and_the_kinds_fields_only():
    obj = named_object(
        "v1",
        "Secret",
        {
            "name": "creds",
            "namespace": "shop",
            "labels": {"app": "web"},
            "annotations": {},
            "stringData": {"PASSWORD": "x"},
            "type": "Opaque",
            "spec": None,
            "wait": True,
        },
    )
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "shop", "labels": {"app": "web"}},
        "stringData": {"PASSWORD": "x"},
        "type": "Opaque",
    }


def test_merge_patch_follows_rfc_7386():
    target = {"spec": {"replicas": 2, "paused": True, "template": {"a": [1, 2]}}}
    patch = {"spec": {"replicas": 3, "paused": None, "template": {"a": [3]}}}
    assert merge_patch(target, patch) == {"spec": {"replicas": 3, "template": {"a": [3]}}}
    assert target["spec"]["replicas"] == 2  # the target is left alone


def test_secret_string_data_becomes_base64_data():
    secret = {"kind": "Secret", "stringData": {"K": "v"}, "data": {"J": "dw=="}}
    assert normalized(secret) == {
        "kind": "Secret",
        "data": {"J": "dw==", "K": base64.b64encode(b"v").decode()},
    }


def test_changed_paths_names_fields_the_definition_sets_differently():
    live = {
        "metadata": {"labels": {"app": "web"}, "uid": "1"},
        "spec": {"replicas": 2, "template": {"containers": [{"name": "c", "image": "a:1"}]}},
        "status": {"replicas": 2},
    }
    same = {"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 2}}
    assert changed_paths(same, live) == []
    desired = {
        "spec": {"replicas": 3, "template": {"containers": [{"name": "c", "image": "a:2"}]}},
        "data": {"new": "x"},
    }
    assert changed_paths(desired, live) == [
        "spec.replicas",
        "spec.template.containers[0].image",
        "data",
    ]
    longer = {"spec": {"template": {"containers": [{"name": "c"}, {"name": "d"}]}}}
    assert changed_paths(longer, live) == ["spec.template.containers"]


def test_external_endpoint_is_a_selectorless_service_and_its_slice():
    service, endpoint_slice = ExternalEndpoint("db", "shop", "10.1.2.3", 5432).objects()
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"] == [
        {"name": "main", "port": 5432, "protocol": "TCP", "targetPort": 5432}
    ]
    assert endpoint_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "db"
    assert endpoint_slice["addressType"] == "IPv4"
    assert endpoint_slice["endpoints"] == [
        {"addresses": ["10.1.2.3"], "conditions": {"ready": True}}
    ]
    assert endpoint_slice["ports"] == [{"name": "main", "port": 5432, "protocol": "TCP"}]
    v6 = ExternalEndpoint("db", "shop", "fd00::5", 5432).objects()[1]
    assert v6["addressType"] == "IPv6"


def test_external_host_name_becomes_an_external_name_service():
    (service,) = ExternalEndpoint("db", "shop", "db.example.org", 5432).objects()
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "db.example.org"


def test_external_endpoint_problems_are_named():
    with pytest.raises(ResourceError, match=r"has no address.*port 0 is not"):
        ExternalEndpoint("db", "shop", "", 0).objects()


def test_machine_address_prefers_runtime_properties():
    assert machine_address({"ip": "10.0.0.9"}, {"address": "10.0.0.1"}) == "10.0.0.9"
    assert machine_address({}, {"address": "10.0.0.1"}) == "10.0.0.1"
    assert machine_address({}, {}) == ""


def test_node_port_urls_on_every_node():
    service = {"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}
    assert node_port_urls(service, ["10.0.0.2", "fd00::3"]) == [
        "http://10.0.0.2:30080",
        "http://[fd00::3]:30080",
    ]
    assert node_port_urls({"spec": {"ports": [{"port": 80}]}}, ["10.0.0.2"]) == []


def test_connection_problems(tmp_path):
    assert Connection().problems() == ["give kubeconfig, or api_endpoint with token and ca_cert"]
    missing = Connection(kubeconfig=str(tmp_path / "no"))
    assert "not a readable file" in missing.problems()[0]
    both = Connection(kubeconfig="x", api_endpoint="https://a:6443")
    assert "not both" in both.problems()[0]
    assert Connection(api_endpoint="http://a").problems() == [
        "api_endpoint: https:// URL",
        "token is required with api_endpoint",
        "ca_cert (PEM text or a file) is required with api_endpoint",
    ]


def test_token_connection_sends_a_bearer_token_and_trusts_the_ca(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    connection = Connection(api_endpoint="https://10.0.0.1:6443", token="abc.def", ca_cert=str(ca))
    configuration = connection.api_client().configuration
    assert configuration.host == "https://10.0.0.1:6443"
    assert configuration.get_api_key_with_prefix("authorization") == "Bearer abc.def"
    assert configuration.ssl_ca_cert == str(ca)
    assert "abc.def" not in repr(connection)
    pem = Connection(api_endpoint="https://a:6443", token="t", ca_cert=ca.read_text())
    assert Path(pem.api_client().configuration.ssl_ca_cert).read_text() == ca.read_text()


def test_created_mark_carries_over_to_later_applies():
    mine = ObjectRef("v1", "ConfigMap", "a", "shop", created=True)
    theirs = ObjectRef("v1", "ConfigMap", "b", "shop", created=False)
    again = [
        ObjectRef("v1", "ConfigMap", "a", "shop"),
        ObjectRef("v1", "ConfigMap", "b", "shop"),
        ObjectRef("v1", "ConfigMap", "c", "shop", created=True),
        ObjectRef("v1", "ConfigMap", "a", "other"),
    ]
    assert [ref.created for ref in carry_created(again, [mine, theirs])] == [
        True,
        False,
        True,
        False,
    ]
