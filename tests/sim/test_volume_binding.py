"""The stand-in's volume binding: local PVs with node affinity, WaitForFirstConsumer claims bound
when their pod is scheduled, the pod placed on the PV's node, Released after the claim goes."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from test_apiserver_support import ApiServer, FakeKubelet, make_pki, wait_for

NODES = ["vb-node-a", "vb-node-b"]
CLASS = "vb-local"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory):
    server = ApiServer(
        make_pki(tmp_path_factory.mktemp("pki")), tmp_path_factory.mktemp("server") / "state"
    ).start()
    kubelet = FakeKubelet(server, NODES).start()
    yield k8s.CoreV1Api(server.client()[1])
    kubelet.stop()
    server.stop()


def local_pv(name: str, node: str, size: str) -> dict:
    term = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": CLASS,
            "local": {"path": f"/mnt/{name}"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [term]}]}},
        },
    }


def claim(name: str, size: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": CLASS,
            "resources": {"requests": {"storage": size}},
        },
    }


def pod(name: str, claim_name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def phase(core, pv: str) -> str:
    return (core.read_persistent_volume(pv).status.phase) or ""


def test_claim_binds_on_scheduling_to_the_pv_node_and_is_released_after(core):
    for index in range(3):  # node a has the fewest pods: only the volume can send it to b
        core.create_namespaced_pod(
            "default",
            {
                **pod(f"vb-load-{index}", ""),
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": NODES[1]},
            },
        )
    core.create_persistent_volume(local_pv("vb-small", NODES[1], "1Gi"))
    core.create_persistent_volume(local_pv("vb-tiny", NODES[0], "100Mi"))  # too small
    wait_for(lambda: phase(core, "vb-small") == "Available", message="PV Available")
    core.create_namespaced_persistent_volume_claim("default", claim("vb-claim", "512Mi"))
    pvc = core.read_namespaced_persistent_volume_claim("vb-claim", "default")
    assert pvc.spec.volume_name is None  # WaitForFirstConsumer: nothing bound without a pod

    core.create_namespaced_pod("default", pod("vb-pod", "vb-claim"))
    placed = wait_for(
        lambda: core.read_namespaced_pod("vb-pod", "default").spec.node_name, message="scheduled"
    )
    assert placed == NODES[1]  # the node of the only PV that fits, though it is busier
    pvc = core.read_namespaced_persistent_volume_claim("vb-claim", "default")
    assert (pvc.spec.volume_name, pvc.status.phase) == ("vb-small", "Bound")
    wait_for(lambda: phase(core, "vb-small") == "Bound", message="PV Bound")
    assert core.read_persistent_volume("vb-small").spec.claim_ref.name == "vb-claim"
    assert phase(core, "vb-tiny") == "Available"

    core.delete_namespaced_pod("vb-pod", "default", grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim("vb-claim", "default", _preload_content=False)
    wait_for(lambda: phase(core, "vb-small") == "Released", message="PV Released")


def test_pod_whose_claim_no_pv_can_serve_stays_pending(core):
    core.create_namespaced_persistent_volume_claim("default", claim("vb-huge", "1Ti"))
    core.create_namespaced_pod("default", pod("vb-waiting", "vb-huge"))
    reason = wait_for(
        lambda: next(
            (
                c.message
                for c in core.read_namespaced_pod("vb-waiting", "default").status.conditions or []
                if c.type == "PodScheduled" and c.status == "False"
            ),
            None,
        ),
        message="unschedulable",
    )
    assert "didn't find available persistent volumes to bind" in reason
    assert core.read_namespaced_pod("vb-waiting", "default").spec.node_name is None
