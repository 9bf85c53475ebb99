"""In-process tests of the stand-in's building blocks (selectors, patches, protobuf decoding,
PDB arithmetic, time parsing). Fast; the end-to-end behaviour is in test_apiserver.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kube_sim.apiserver import protobuf, timeutil
from kube_sim.apiserver.errors import ApiError
from kube_sim.apiserver.objects import pdb_status
from kube_sim.apiserver.patch import json_patch, merge_patch, strategic_merge
from kube_sim.apiserver.selectors import (
    fields_match,
    labels_match,
    node_affinity_matches,
    parse_field_selector,
    parse_label_selector,
    tolerates,
)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier in (a,b)", {}, False),
        ("tier notin (a,b)", {}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("tier", {"tier": ""}, True),
        ("!tier", {"tier": "x"}, False),
        ("app=web,!canary,env in (prod)", {"app": "web", "env": "prod"}, True),
        ("app=web,!canary,env in (prod)", {"app": "web", "env": "prod", "canary": "1"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool):
    assert labels_match(parse_label_selector(selector), labels) is expected


def test_bad_label_selector_is_400():
    with pytest.raises(ApiError) as err:
        parse_label_selector("a in b")
    assert err.value.code == 400


def test_field_selectors():
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    assert fields_match(parse_field_selector("spec.nodeName=n1,status.phase!=Failed"), pod)
    assert not fields_match(parse_field_selector("spec.nodeName==n2"), pod)
    assert fields_match(parse_field_selector("spec.nodeName!=n2,metadata.namespace=ns"), pod)


def test_strategic_merge_lists_by_key_and_directives():
    live = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "a:1",
                    "env": [{"name": "X", "value": "1"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                },
                {"name": "b", "image": "b:1"},
            ],
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "taints": [
                {"key": "t1", "effect": "NoSchedule"},
                {"key": "t2", "effect": "NoSchedule"},
            ],
        },
        "metadata": {"finalizers": ["f1"], "labels": {"a": "1", "b": "2"}},
    }
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "a:2",
                    "env": [{"name": "Y", "value": "2"}],
                    "ports": [{"containerPort": 80, "name": "http"}],
                },
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "c:1"},
            ],
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
            "tolerations": [],
            "taints": [{"key": "t2", "effect": "NoSchedule"}],  # atomic list: replaced
        },
        "metadata": {"finalizers": ["f2"], "labels": {"a": None}},
    }
    out = strategic_merge(live, patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["c", "a"]
    a = out["spec"]["containers"][1]
    assert a["image"] == "a:2"
    assert a["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert a["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]
    assert out["spec"]["tolerations"] == []
    assert out["spec"]["taints"] == [{"key": "t2", "effect": "NoSchedule"}]
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    assert out["metadata"]["labels"] == {"b": "2"}
    assert live["spec"]["containers"][0]["image"] == "a:1"  # input untouched


def test_strategic_merge_conditions_by_type_and_retain_keys():
    live = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "MemoryPressure", "status": "False"},
            ]
        },
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
    }
    patch = {
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
        "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}},
    }
    out = strategic_merge(live, patch)
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "Unknown"},
        {"type": "MemoryPressure", "status": "False"},
    ]
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_merge_and_json_patch():
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge_patch(doc, {"a": {"b": None, "c": [3]}, "e": 2}) == {
        "a": {"c": [3]},
        "d": 1,
        "e": 2,
    }
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/c/-", "value": 3},
            {"op": "replace", "path": "/d", "value": 5},
            {"op": "remove", "path": "/a/b"},
            {"op": "test", "path": "/d", "value": 5},
        ],
    )
    assert out == {"a": {"c": [1, 2, 3]}, "d": 5}
    with pytest.raises(ApiError) as err:
        json_patch(doc, [{"op": "test", "path": "/d", "value": 7}])
    assert err.value.code == 422


def test_scheduling_helpers():
    node = {"metadata": {"name": "n1", "labels": {"zone": "a", "kubernetes.io/os": "linux"}}}
    spec = {
        "nodeSelector": {"zone": "a"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                                {"key": "gpu", "operator": "DoesNotExist"},
                            ]
                        }
                    ]
                }
            }
        },
    }
    assert node_affinity_matches(spec, node)
    assert not node_affinity_matches({"nodeSelector": {"zone": "b"}}, node)
    fields = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["n2"]}
                            ]
                        }
                    ]
                }
            }
        }
    }
    assert not node_affinity_matches(fields, node)
    taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert not tolerates([], taints)
    assert tolerates(
        [
            {
                "key": "node-role.kubernetes.io/control-plane",
                "operator": "Exists",
                "effect": "NoSchedule",
            }
        ],
        taints,
    )
    assert tolerates([{"operator": "Exists"}], taints)
    assert tolerates([], [{"key": "x", "effect": "PreferNoSchedule"}])


def _pod(name: str, ready: bool, deleting: bool = False, owner: str = "rs1") -> dict:
    meta = {
        "name": name,
        "labels": {"app": "db"},
        "ownerReferences": [{"uid": owner, "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_pdb_status_min_available_and_max_unavailable():
    pods = [_pod("a", True), _pod("b", True), _pod("c", True, deleting=True), _pod("d", False)]
    selector = {"matchLabels": {"app": "db"}}
    status = pdb_status(
        {"metadata": {"generation": 1}, "spec": {"minAvailable": 2, "selector": selector}}, pods, {}
    )
    assert (
        status["currentHealthy"],
        status["desiredHealthy"],
        status["expectedPods"],
        status["disruptionsAllowed"],
    ) == (2, 2, 4, 0)
    status = pdb_status(
        {"metadata": {}, "spec": {"maxUnavailable": 1, "selector": selector}}, pods, {"rs1": 3}
    )
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (
        3,
        2,
        0,
    )
    status = pdb_status(
        {"metadata": {}, "spec": {"minAvailable": "50%", "selector": selector}}, pods, {"rs1": 3}
    )
    assert (status["desiredHealthy"], status["disruptionsAllowed"]) == (2, 0)


def test_time_helpers():
    assert timeutil.parse_duration("40s") == 40
    assert timeutil.parse_duration("1m30s") == 90
    assert timeutil.parse_duration("1h") == 3600
    assert timeutil.parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        timeutil.parse_duration("forty")
    assert timeutil.parse_time("2024-01-01T00:00:00Z") == 1704067200
    assert timeutil.parse_time("2024-01-01T00:00:00.123456789Z") == pytest.approx(1704067200.123)
    assert timeutil.parse_time("2024-01-01T02:00:00+02:00") == 1704067200
    assert timeutil.parse_time("nonsense") is None
    assert timeutil.human_age(100, 100 + 3 * 60 + 5) == "3m5s"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def test_protobuf_eviction_body_as_kubectl_sends_it():
    meta = (
        _field(1, b"web-1")
        + _field(3, b"default")
        + _field(11, _field(1, b"app") + _field(2, b"web"))
    )
    preconditions = _field(1, b"uid-1")
    delete_options = _field(1, 0) + _field(2, preconditions) + _field(4, b"Background")
    eviction = _field(1, meta) + _field(2, delete_options)
    type_meta = _field(1, b"policy/v1") + _field(2, b"Eviction")
    body = protobuf.MAGIC + _field(1, type_meta) + _field(2, eviction)
    assert protobuf.decode(body) == {
        "kind": "Eviction",
        "apiVersion": "policy/v1",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
        "deleteOptions": {
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "uid-1"},
            "propagationPolicy": "Background",
        },
    }
    with pytest.raises(ApiError):
        protobuf.decode(b"not protobuf")
