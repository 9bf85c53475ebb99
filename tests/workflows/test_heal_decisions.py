"""What heal and auto_heal decide from health reports, and how heal removes a worker's Node."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from k8s_cluster import kube, operations
from k8s_cluster.health import Health
from k8s_cluster.workflows.heal import (
    Action,
    HealError,
    choose_action,
    plan_auto_heal,
    unhealthy_limit,
)

from .test_worker_removal import cluster, fake_ctx  # noqa: F401 (cluster is a fixture)

NOW = 1_000_000.0


def report(name: str, role: str = "worker", down_for: float | None = None, **changes) -> Health:
    fields = dict(
        instance=f"{name}_id",
        host=name,
        role=role,
        ssh="ok",
        kubelet="active",
        node_ready="True",
        node_since=NOW - 3600,
        checked_at=NOW,
    )
    if down_for is not None:
        fields.update(ssh="timed out", kubelet="unknown", unhealthy_since=NOW - down_for)
    return Health(**{**fields, **changes})


# --- heal --------------------------------------------------------------------------------------


def test_a_healthy_host_is_left_alone_unless_forced():
    assert choose_action(report("w1"), force_reinstall=False)[0] is Action.NOTHING
    assert choose_action(report("w1"), force_reinstall=True)[0] is Action.REPLACE


def test_a_host_that_answers_gets_its_node_software_reinstalled():
    action, reason = choose_action(report("w1", kubelet="inactive"), force_reinstall=False)
    assert action is Action.SOFTWARE and "kubelet inactive" in reason


def test_a_host_that_does_not_answer_is_replaced():
    assert choose_action(report("w1", down_for=10), force_reinstall=False)[0] is Action.REPLACE
    assert choose_action(None, force_reinstall=False)[0] is Action.REPLACE  # no check asked


# --- auto_heal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "workers", "allowed"),
    [("40%", 3, 1), ("40%", 5, 2), ("40%", 2, 0), ("100%", 4, 4), ("2", 10, 2), (0, 3, 0)],
)
def test_unhealthy_limit(limit, workers, allowed):
    assert unhealthy_limit(limit, workers) == allowed


@pytest.mark.parametrize("limit", ["-1", "150%", "many", "40 %%"])
def test_a_bad_unhealthy_limit_is_refused(limit):
    with pytest.raises(HealError, match="max_unhealthy"):
        unhealthy_limit(limit, 3)


def test_auto_heal_heals_workers_unhealthy_for_long_enough():
    reports = [report("cp", "control-plane"), report("w1", down_for=400), report("w2")]
    reports += [report("w3"), report("w4", down_for=20), report("w5")]  # 2 of 5: 40%
    plan = plan_auto_heal(reports, threshold=300, max_unhealthy="40%", now=NOW)
    assert [r.host for r in plan.to_heal] == ["w1"]
    assert [r.host for r in plan.waiting] == ["w4"] and not plan.refusal


def test_auto_heal_refuses_when_too_many_workers_are_unhealthy():
    reports = [report("cp", "control-plane"), report("w1", down_for=400)]
    reports += [report("w2", down_for=400), report("w3")]
    plan = plan_auto_heal(reports, threshold=300, max_unhealthy="40%", now=NOW)
    assert "2 of 3 workers are unhealthy" in plan.refusal and not plan.to_heal


def test_auto_heal_refuses_when_the_control_plane_is_unhealthy():
    reports = [report("cp", "control-plane", down_for=900), report("w1", down_for=900)]
    plan = plan_auto_heal(reports, threshold=300, max_unhealthy="100%", now=NOW)
    assert "control plane cp is unhealthy" in plan.refusal and not plan.to_heal


def test_auto_heal_has_nothing_to_do_on_a_healthy_cluster():
    plan = plan_auto_heal([report("cp", "control-plane"), report("w1")], 0, "40%", NOW)
    assert plan.to_heal == plan.waiting == [] and not plan.refusal


# --- the worker's stop under heal --------------------------------------------------------------

HEAL = {"drain_timeout": 30, "pod_eviction_grace_period": 5}


def heal_ctx(tmp_path, health: dict | None):
    ctx = fake_ctx(tmp_path, "heal", HEAL)
    host = SimpleNamespace(runtime_properties={"health": health} if health else {})
    ctx.instance.relationships = [
        SimpleNamespace(
            type="cloudify.relationships.contained_in",
            type_hierarchy=[],
            target=SimpleNamespace(instance=host),
        )
    ]
    return ctx


def test_heal_policy_comes_from_the_execution(tmp_path):
    policy = operations.removal_policy(fake_ctx(tmp_path, "auto_heal", HEAL))
    assert policy.lost_node and not policy.strict
    assert (policy.drain_timeout, policy.grace_period) == (30.0, 5)


def test_heal_drains_a_worker_whose_kubelet_answers(tmp_path, cluster):  # noqa: F811
    answering = report("w1", checked_at=time.time()).to_dict()
    operations.remove_worker_node(ctx=heal_ctx(tmp_path, answering))
    assert cluster.drains == [("w1", 30.0, 5)] and cluster.deleted == ["w1"]


def test_heal_deletes_the_pods_of_a_worker_whose_kubelet_does_not(tmp_path, cluster, monkeypatch):  # noqa: F811
    deleted_pods = []
    monkeypatch.setattr(
        kube,
        "delete_pods_of_lost_node",
        lambda api, name, grace: deleted_pods.append((name, grace)) or [],
    )
    lost = report("w1", down_for=60, checked_at=time.time()).to_dict()
    operations.remove_worker_node(ctx=heal_ctx(tmp_path, lost))
    assert deleted_pods == [("w1", 5)] and cluster.drains == [] and cluster.deleted == ["w1"]


# --- deleting the pods of a lost node ----------------------------------------------------------


class FakePods:
    """Pods bound to one Node whose kubelet is dead: a graceful delete never completes."""

    def __init__(self, names: list[str]) -> None:
        self.pods = {name: 30 for name in names}
        self.calls: list[tuple[str, int | None]] = []
        self.patched: list[dict] = []

    def patch_node(self, name, body):
        self.patched.append(body)

    def list_pod_for_all_namespaces(self, field_selector, label_selector=None, **_):
        assert field_selector == "spec.nodeName=w1"
        assert label_selector is None  # every pod of the lost node, whatever its labels
        items = [
            SimpleNamespace(
                metadata=SimpleNamespace(name=name, namespace="default"),
                spec=SimpleNamespace(termination_grace_period_seconds=grace),
            )
            for name, grace in self.pods.items()
        ]
        return SimpleNamespace(items=items)

    def delete_namespaced_pod(self, name, namespace, grace_period_seconds):
        self.calls.append((name, grace_period_seconds))
        if grace_period_seconds == 0:
            self.pods.pop(name)


def test_pods_of_a_lost_node_are_deleted_gracefully_then_without_grace():
    api = FakePods(["web-1", "web-2"])
    slept = []
    deleted = kube.delete_pods_of_lost_node(api, "w1", grace_period=0, sleep=slept.append)
    assert [pod.metadata.name for pod in deleted] == ["web-1", "web-2"]
    assert api.patched == [{"spec": {"unschedulable": True}}]
    assert api.calls == [("web-1", 0), ("web-2", 0)] and api.pods == {}


def test_pods_of_a_lost_node_get_the_grace_period_first(monkeypatch):
    api = FakePods(["web-1"])
    clock = iter(range(0, 1000, 2))
    monkeypatch.setattr(kube.time, "monotonic", lambda: next(clock))
    slept = []
    kube.delete_pods_of_lost_node(api, "w1", grace_period=None, sleep=slept.append)
    assert api.calls == [("web-1", None), ("web-1", 0)]  # graceful, then at once
    assert len(slept) >= 10  # waited the pod's own 30 s (2 s per tick of the fake clock)


def test_heal_does_not_reset_a_host_that_did_not_answer_its_check(tmp_path, monkeypatch):
    ctx = heal_ctx(tmp_path, report("w1", down_for=60, checked_at=time.time()).to_dict())
    ctx.instance.relationships[0].target.instance.runtime_properties["host"] = {
        "name": "w1",
        "address": "10.0.0.9",
        "user": "root",
        "key_file": "k",
        "host_key": "h",
    }
    monkeypatch.setattr(operations, "Remote", lambda host: pytest.fail("reset tried SSH"))
    operations.reset_node(ctx=ctx)


def test_an_old_report_does_not_speak_for_the_host(tmp_path, cluster, monkeypatch):  # noqa: F811
    monkeypatch.setattr(kube, "core_api", lambda path: SimpleNamespace(read_node=lambda name: name))
    monkeypatch.setattr(kube, "ready_condition", lambda node: ("True", None))
    stale = report("w1", down_for=60, checked_at=time.time() - 3600).to_dict()
    operations.remove_worker_node(ctx=heal_ctx(tmp_path, stale))
    assert cluster.drains  # no recent report: the Node is read instead, and drained
