"""Storage through cfy in local mode: a volume added to a worker is a local PV that a claim and a
pod bind; its data, written on the host, survives a heal of the worker; removal is refused while
bound and, once the claim is gone, leaves no PV, mount, backing file or loop device."""

from __future__ import annotations

import json
import subprocess

import pytest

from k8s_cluster.hosts.local import LocalProvider
from tests import testbed
from tests.testbed import SUBNET, kubectl, wait_for

BLUEPRINT = "blueprints/k8s-cluster.yaml"
DEPLOYMENT = "k8s-storage"
VOLUME = "data"
CLAIM = "data-claim"


@pytest.fixture(scope="module")
def cluster(cfy, inputs_file):
    try:
        cfy("install", BLUEPRINT, "-b", DEPLOYMENT, "-i", str(inputs_file))
        yield cfy.outputs(DEPLOYMENT)["kubeconfig_path"]
    finally:
        cfy.tear_down(DEPLOYMENT)


@pytest.fixture(scope="module")
def provider(cfy) -> LocalProvider:
    return LocalProvider(DEPLOYMENT, cfy.state_dir / DEPLOYMENT, subnet=SUBNET)


def workflow(cfy, name: str, *params: str, check: bool = True):
    args = [arg for param in params for arg in ("-p", param)]
    return cfy("executions", "start", name, "-b", DEPLOYMENT, *args, check=check)


def on_host(provider: LocalProvider, host: str, command: str, check: bool = True) -> str:
    return testbed.on_host(provider.lxc_path, provider.container_name(host), command, check)


def get(kubeconfig: str, *what: str) -> dict:
    return json.loads(kubectl(kubeconfig, "get", *what, "-o", "json"))


def pvs(kubeconfig: str) -> dict[str, str]:
    return {
        pv["metadata"]["name"]: pv.get("status", {}).get("phase", "")
        for pv in get(kubeconfig, "pv")["items"]
    }


def apply(kubeconfig: str, tmp_path, manifest: dict) -> None:
    path = tmp_path / f"{manifest['metadata']['name']}.json"
    path.write_text(json.dumps(manifest))
    kubectl(kubeconfig, "apply", "-f", str(path))


CLAIM_MANIFEST = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": CLAIM, "namespace": "default"},
    "spec": {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "k8s-local-volumes",
        "resources": {"requests": {"storage": "32Mi"}},
    },
}


def pod_manifest(name: str, image: str) -> dict:
    """A pod of the test image with the claim mounted at /data."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": image,
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    }


def running(kubeconfig: str, pod: str) -> bool:
    return get(kubeconfig, "pod", pod).get("status", {}).get("phase") == "Running"


def test_bad_requests_create_nothing(cfy, cluster, provider):
    worker = cfy.outputs(DEPLOYMENT)["worker_nodes"][0]["name"]
    cases = {
        ("name=Bad_Name", "size=64Mi", f"targets={worker}"): "name 'Bad_Name' is not accepted",
        ("name=x", "size=0Mi", f"targets={worker}"): "size '0Mi' is not accepted",
        ("name=x", "size=999999Ti", f"targets={worker}"): "size '999999Ti' is not accepted",
        ("name=x", "size=64Mi", f"targets={worker}", "filesystem=ntfs"): "filesystem 'ntfs'",
        ("name=x", "size=64Mi", "targets=worker-nosuch"): "targets ['worker-nosuch'] not accepted",
    }
    for params, message in cases.items():
        result = workflow(cfy, "add_volume", *params, check=False)
        assert result.returncode != 0, params
        assert message in result.stdout + result.stderr, (params, result.stdout[-3000:])
    assert not (provider.state_dir / "volumes").exists()
    assert pvs(cluster) == {}


def test_volume_claimed_survives_heal_and_is_removed_cleanly(
    cfy, cluster, provider, bundle, tmp_path
):
    worker = cfy.outputs(DEPLOYMENT)["worker_nodes"][0]["name"]
    pv = f"{worker}-{VOLUME}"
    workflow(cfy, "add_volume", f"name={VOLUME}", "size=64Mi", f"targets={worker}")
    assert pvs(cluster) == {pv: "Available"}
    assert "/mnt/k8s-volumes/data" in on_host(provider, worker, "findmnt -n -o TARGET,FSTYPE")
    duplicate = workflow(
        cfy, "add_volume", f"name={VOLUME}", "size=64Mi", f"targets={worker}", check=False
    )
    assert duplicate.returncode != 0 and "already has a volume of that name" in duplicate.stdout

    # the scheduler binds the claim when its first pod is placed: on the volume's node
    apply(cluster, tmp_path, CLAIM_MANIFEST)
    apply(cluster, tmp_path, pod_manifest("writer", bundle.test_image))
    node = wait_for(lambda: get(cluster, "pod", "writer")["spec"].get("nodeName"), "pod scheduled")
    assert node == worker
    assert get(cluster, "pvc", CLAIM)["spec"]["volumeName"] == pv
    wait_for(lambda: pvs(cluster)[pv] == "Bound", "PV Bound")
    wait_for(lambda: running(cluster, "writer"), "writer running", timeout=120)
    kubectl(cluster, "exec", "writer", "--", "/testapp", "write", "/data/proof", "kept")
    assert on_host(provider, worker, "cat /mnt/k8s-volumes/data/proof") == "kept"

    instance = "worker_host_" + worker.split("-", 1)[1]
    workflow(cfy, "heal", f"node_instance_id={instance}")
    assert on_host(provider, worker, "cat /mnt/k8s-volumes/data/proof") == "kept"
    assert pvs(cluster)[pv] == "Bound"
    kubectl(cluster, "delete", "pod", "writer", "--ignore-not-found", "--wait=true")
    apply(cluster, tmp_path, pod_manifest("reader", bundle.test_image))
    wait_for(lambda: running(cluster, "reader"), "reader running", timeout=120)
    assert kubectl(cluster, "exec", "reader", "--", "/testapp", "read", "/data/proof") == "kept"
    listed = workflow(cfy, "list_volumes").stdout
    assert f"volume data on {worker}: 64Mi ext4" in listed and "claim default/data-claim" in listed

    refused = workflow(cfy, "remove_volume", f"name={VOLUME}", check=False)
    assert refused.returncode != 0
    assert "volume " + worker + "/data is bound to claim default/data-claim" in refused.stdout
    assert on_host(provider, worker, "cat /mnt/k8s-volumes/data/proof") == "kept"

    kubectl(cluster, "delete", "pod", "reader", "--wait=true")
    kubectl(cluster, "delete", "pvc", CLAIM)
    wait_for(lambda: pvs(cluster).get(pv) == "Released", "PV Released")
    workflow(cfy, "remove_volume", f"name={VOLUME}")
    backing = provider.volume_file(worker, VOLUME)
    assert pvs(cluster) == {}
    assert on_host(provider, worker, "findmnt -n /mnt/k8s-volumes/data", check=False) == ""
    assert not backing.exists() and not (provider.state_dir / "volumes").exists()
    loops = subprocess.run(["losetup", "-j", str(backing)], capture_output=True, text=True)
    assert loops.stdout == ""


def test_scale_in_keeps_a_worker_with_a_bound_volume_unless_allowed(
    cfy, cluster, provider, bundle, tmp_path
):
    worker = cfy.outputs(DEPLOYMENT)["worker_nodes"][-1]["name"]
    instance = "worker_host_" + worker.split("-", 1)[1]
    # targets as a user types a list on the command line: a YAML list in the string
    workflow(cfy, "add_volume", f"name={VOLUME}", "size=32Mi", f"targets=[{instance}]")
    apply(cluster, tmp_path, CLAIM_MANIFEST)
    apply(cluster, tmp_path, pod_manifest("writer", bundle.test_image))
    wait_for(lambda: pvs(cluster)[f"{worker}-{VOLUME}"] == "Bound", "PV Bound")
    scale_in = (
        json.dumps(
            {"scalable_entity_name": "workers", "delta": -1, "include_instances": [instance]}
        ),
    )

    refused = workflow(cfy, "scale", *scale_in, check=False)
    assert refused.returncode != 0
    assert f"volume {worker}/data is bound to claim default/data-claim" in refused.stdout
    assert worker in [w["name"] for w in cfy.outputs(DEPLOYMENT)["worker_nodes"]]
    assert provider.volume_file(worker, VOLUME).exists()

    # the writer is a bare pod: like kubectl drain, scale-in loses it only with force
    removed = workflow(cfy, "scale", *scale_in, "allow_bound_volume_removal=true", "force=true")
    assert worker not in [w["name"] for w in cfy.outputs(DEPLOYMENT)["worker_nodes"]]
    assert not (provider.state_dir / "volumes").exists()
    # Kubernetes keeps a PV bound to a claim (pv-protection) until the claim lets it go: the
    # removal marks it for deletion and says so
    pv = f"{worker}-{VOLUME}"
    assert f"PV {pv} stays (Terminating) while claim default/data-claim is bound" in removed.stdout
    assert get(cluster, "pv", pv)["metadata"].get("deletionTimestamp")
    kubectl(cluster, "delete", "pod", "writer", "--ignore-not-found", "--wait=false")
    kubectl(cluster, "delete", "pvc", CLAIM, "--wait=false")
    wait_for(lambda: pv not in pvs(cluster), "the PV deleted with its claim")
