"""The Worker's stop (remove_worker_node): strict drain under scale, bounded under uninstall."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from cloudify.exceptions import NonRecoverableError

from k8s_cluster import kube, operations
from k8s_cluster.drain_policy import DrainOptions, DrainRefused
from k8s_cluster.kube import DrainResult


class Logger:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def info(self, message: str) -> None:
        pass


def fake_ctx(tmp_path, workflow_id: str, parameters: dict | None = None, local: bool = True):
    """An operation context as the stop operation sees it; parameters: the execution's."""
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text("")
    storage = SimpleNamespace(
        get_execution=lambda execution_id: {"id": execution_id, "parameters": parameters}
    )
    return SimpleNamespace(
        workflow_id=workflow_id,
        execution_id="execution-1",
        logger=Logger(),
        instance=SimpleNamespace(
            runtime_properties={"kubeconfig_path": str(kubeconfig), "node_name": "w1"}
        ),
        _endpoint=SimpleNamespace(storage=storage) if local else SimpleNamespace(),
        get_execution=lambda: SimpleNamespace(parameters=parameters),
    )


@pytest.fixture
def cluster(monkeypatch):
    """The Kubernetes calls the operation makes, recorded; `drain` answers what is set."""
    calls = SimpleNamespace(drains=[], schedulable=[], deleted=[], drain=DrainResult())

    def drain(api, name, timeout, grace_period=None, options=None):
        calls.drains.append((name, timeout, grace_period))
        calls.options = options
        if isinstance(calls.drain, Exception):
            raise calls.drain
        return calls.drain

    monkeypatch.setattr(kube, "core_api", lambda path: "api")
    monkeypatch.setattr(kube, "drain", drain)
    monkeypatch.setattr(
        kube, "set_unschedulable", lambda api, name, value: calls.schedulable.append(value)
    )
    monkeypatch.setattr(kube, "delete_node", lambda api, name: calls.deleted.append(name))
    monkeypatch.setattr(kube, "delete_join_tokens", lambda api, name: [])
    return calls


SCALE = {"drain_timeout": 42, "drain_grace_period": -1, "allow_ungraceful_removal": False}
BLOCKED = DrainResult(blocked={"web/api-0": "a PodDisruptionBudget does not allow it now"})


def test_policy_of_uninstall_is_bounded(tmp_path):
    policy = operations.removal_policy(fake_ctx(tmp_path, "uninstall"))
    assert (policy.strict, policy.drain_timeout) == (False, operations.UNINSTALL_DRAIN_TIMEOUT)


@pytest.mark.parametrize("local", [True, False])
def test_policy_of_scale_comes_from_the_execution(tmp_path, local):
    parameters = dict(SCALE, drain_grace_period=7)
    policy = operations.removal_policy(fake_ctx(tmp_path, "scale", parameters, local=local))
    assert policy.__dict__ == {
        "strict": True,
        "drain_timeout": 42.0,
        "grace_period": 7,
        "options": DrainOptions(force=False, delete_emptydir_data=False),
    }


def test_scale_drains_then_deletes(tmp_path, cluster):
    operations.remove_worker_node(ctx=fake_ctx(tmp_path, "scale", SCALE))
    assert cluster.drains == [("w1", 42.0, None)]
    assert cluster.deleted == ["w1"] and cluster.schedulable == []


def test_scale_keeps_a_worker_whose_drain_cannot_finish(tmp_path, cluster):
    cluster.drain = BLOCKED
    with pytest.raises(NonRecoverableError, match="web/api-0 \\(a PodDisruptionBudget"):
        operations.remove_worker_node(ctx=fake_ctx(tmp_path, "scale", SCALE))
    assert cluster.deleted == [] and cluster.schedulable == [False]  # uncordoned


def test_scale_keeps_a_worker_it_cannot_drain(tmp_path, cluster):
    cluster.drain = kube.ApiException(status=500, reason="boom")
    with pytest.raises(NonRecoverableError, match="Could not drain w1"):
        operations.remove_worker_node(ctx=fake_ctx(tmp_path, "scale", SCALE))
    assert cluster.deleted == [] and cluster.schedulable == [False]


def test_ungraceful_removal_deletes_with_a_warning(tmp_path, cluster):
    cluster.drain = BLOCKED
    ctx = fake_ctx(tmp_path, "scale", dict(SCALE, allow_ungraceful_removal=True))
    operations.remove_worker_node(ctx=ctx)
    assert cluster.deleted == ["w1"] and cluster.schedulable == []
    assert "web/api-0" in ctx.logger.warnings[0]


@pytest.mark.parametrize("outcome", [BLOCKED, OSError("API unreachable")])
def test_uninstall_removes_the_worker_anyway(tmp_path, cluster, outcome):
    cluster.drain = outcome
    ctx = fake_ctx(tmp_path, "uninstall")
    operations.remove_worker_node(ctx=ctx)
    assert cluster.drains == [("w1", operations.UNINSTALL_DRAIN_TIMEOUT, None)]
    assert cluster.deleted == ["w1"] and len(ctx.logger.warnings) == 1


@pytest.mark.parametrize("workflow", ["scale", "uninstall", "heal"])
def test_a_drain_that_would_lose_pods_keeps_the_worker_whatever_the_workflow(
    tmp_path, monkeypatch, cluster, workflow
):
    monkeypatch.setattr(operations, "_kubelet_answers", lambda ctx, api, name: True)
    cluster.drain = DrainRefused({"w1": {"default/bare": "no controller manages it (force)"}})
    ctx = fake_ctx(tmp_path, workflow, dict(SCALE))
    with pytest.raises(NonRecoverableError, match=r"w1 is kept: .*default/bare"):
        operations.remove_worker_node(ctx=ctx)
    assert cluster.deleted == []


@pytest.mark.parametrize("workflow", ["scale", "uninstall", "heal", "auto_heal"])
def test_every_removal_drains_with_the_executions_force_and_emptydir_choice(
    tmp_path, monkeypatch, cluster, workflow
):
    monkeypatch.setattr(operations, "_kubelet_answers", lambda ctx, api, name: True)
    parameters = dict(SCALE, force=True, delete_emptydir_data=False)
    operations.remove_worker_node(ctx=fake_ctx(tmp_path, workflow, parameters))
    assert cluster.options == DrainOptions(force=True, delete_emptydir_data=False)


def test_a_drain_choice_that_is_not_a_boolean_is_refused(tmp_path, cluster):
    ctx = fake_ctx(tmp_path, "uninstall", {"force": "yes please"})
    with pytest.raises(NonRecoverableError, match="force must be true or false, not 'yes please'"):
        operations.remove_worker_node(ctx=ctx)
    assert cluster.drains == [] and cluster.deleted == []
