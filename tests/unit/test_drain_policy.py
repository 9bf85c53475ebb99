"""kubectl drain's rules, as every drain of the suite applies them (k8s_cluster.drain_policy)."""

from __future__ import annotations

import pytest
from kubernetes import client

from k8s_cluster.drain_policy import (
    STRICT,
    DrainOptions,
    DrainRefused,
    refusals,
    to_evict,
)


def pod(name, owner=None, controller=True, empty_dirs=(), phase="Running", mirror=False):
    owners = owner and [
        client.V1OwnerReference(
            api_version="apps/v1", kind=owner, name="o", uid="u", controller=controller
        )
    ]
    volumes = [
        client.V1Volume(name=v, empty_dir=client.V1EmptyDirVolumeSource()) for v in empty_dirs
    ]
    volumes.append(client.V1Volume(name="config", config_map=client.V1ConfigMapVolumeSource()))
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace="default",
            owner_references=owners or None,
            annotations={"kubernetes.io/config.mirror": "x"} if mirror else None,
        ),
        spec=client.V1PodSpec(containers=[], volumes=volumes),
        status=client.V1PodStatus(phase=phase),
    )


def test_what_a_drain_evicts_leaves_daemonset_mirror_and_finished_pods():
    pods = [
        pod("web", "ReplicaSet"),
        pod("agent", "DaemonSet"),
        pod("static", mirror=True),
        pod("done", "Job", phase="Succeeded"),
        pod("failed", phase="Failed"),
        pod("bare"),
    ]
    assert [p.metadata.name for p in to_evict(pods)] == ["web", "bare"]


def test_by_default_a_bare_pod_and_emptydir_data_are_refused_and_named():
    pods = [pod("web", "ReplicaSet"), pod("bare"), pod("cache", "StatefulSet", empty_dirs=["tmp"])]
    refused = refusals(pods, STRICT)
    assert sorted(refused) == ["default/bare", "default/cache"]
    assert (
        "no controller manages it" in refused["default/bare"] and "force" in refused["default/bare"]
    )
    assert "tmp" in refused["default/cache"] and "delete_emptydir_data" in refused["default/cache"]


def test_an_owner_that_is_not_the_controller_does_not_count():
    assert list(refusals([pod("adopted", "ConfigMap", controller=False)], STRICT)) == [
        "default/adopted"
    ]


@pytest.mark.parametrize(
    ("options", "left"),
    [
        (DrainOptions(force=True), ["default/both", "default/cache"]),
        (DrainOptions(delete_emptydir_data=True), ["default/bare", "default/both"]),
        (DrainOptions(force=True, delete_emptydir_data=True), []),
    ],
)
def test_each_option_allows_exactly_its_own_loss(options, left):
    pods = [
        pod("bare"),
        pod("cache", "ReplicaSet", empty_dirs=["tmp"]),
        pod("both", empty_dirs=["d"]),
    ]
    assert sorted(refusals(pods, options)) == left


def test_the_refusal_names_node_pod_reason_and_the_way_forward():
    message = str(
        DrainRefused({"worker-b": {"default/bare": "why b"}, "worker-a": {"x/y": "why a"}})
    )
    assert message.index("worker-a: x/y: why a") < message.index("worker-b: default/bare: why b")
    assert "force=true" in message and "delete_emptydir_data=true" in message


@pytest.mark.parametrize("value", ["true", 1, None, "yes"])
def test_only_booleans_are_taken(value):
    with pytest.raises(ValueError, match=f"force must be true or false, not {value!r}"):
        DrainOptions.from_parameters({"force": value})


def test_absent_parameters_mean_kubectls_defaults():
    assert DrainOptions.from_parameters({}) == STRICT == DrainOptions(False, False)
