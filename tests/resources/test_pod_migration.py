"""The checks of k8s_cluster.pod_migration that need no cluster (the moves themselves run in
tests/e2e/test_k8s_app.py)."""

from __future__ import annotations

import pytest

from k8s_cluster.pod_migration import Migration, pin_patch, pod_selector
from k8s_cluster.resources import ObjectRef, ResourceError

WEB = ObjectRef("apps/v1", "Deployment", "web", "shop")


def test_a_sound_migration_has_no_problems():
    assert Migration(WEB, "node-1", "node-2").problems() == []
    assert Migration(WEB, "node-1").problems() == []  # evict: the scheduler chooses
    assert Migration(WEB, "node-1", "node-2", "affinity").problems() == []


def test_migration_problems_are_all_named():
    bad = Migration(ObjectRef("apps/v1", "StatefulSet", "db", "shop"), "node-1", "node-1", "move")
    assert bad.problems() == [
        "StatefulSet shop/db is not a Deployment",
        "method 'move': use one of evict, affinity",
        "from_node must be given and differ from to_node",
    ]
    assert Migration(WEB, "node-1", "", "affinity").problems() == ["method affinity needs to_node"]


def test_pod_selector_from_match_labels_only():
    deployment = {"spec": {"selector": {"matchLabels": {"tier": "web", "app": "shop"}}}}
    assert pod_selector(deployment) == "app=shop,tier=web"
    expressions = {"spec": {"selector": {"matchExpressions": [{"key": "app"}]}}}
    with pytest.raises(ResourceError, match="matchLabels"):
        pod_selector(expressions)


def test_pin_requires_the_node_and_never_lowers_availability():
    spec = pin_patch("node-2")["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    terms = spec["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}
            ]
        }
    ]
