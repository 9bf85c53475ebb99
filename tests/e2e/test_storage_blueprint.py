"""A volume declared in the blueprint (k8s.nodes.Volume contained in the worker host): install
gives every worker one, a heal keeps its data, uninstall leaves no backing file."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from k8s_cluster.hosts.local import LocalProvider
from tests.testbed import ROOT, SUBNET, kubectl

from .test_storage import on_host

DEPLOYMENT = "k8s-storage-bp"
VOLUME_NODE = {
    "type": "k8s.nodes.Volume",
    "properties": {"volume_name": "cache", "size": "32Mi"},
    "relationships": [
        {"type": "cloudify.relationships.contained_in", "target": "worker_host"},
        {"type": "cloudify.relationships.depends_on", "target": "worker"},
        {"type": "k8s.relationships.in_cluster", "target": "cluster"},
    ],
}


@pytest.fixture(scope="module")
def blueprint():
    """The suite's blueprint with a volume on each worker, as a user would declare it."""
    source = yaml.safe_load((ROOT / "blueprints" / "k8s-cluster.yaml").read_text())
    source["node_templates"]["worker_cache"] = VOLUME_NODE
    path = ROOT / "blueprints" / f".test-{DEPLOYMENT}.yaml"  # next to the files it imports
    path.write_text(yaml.safe_dump(source))
    yield path
    path.unlink()


def pvs(kubeconfig: str) -> dict[str, str]:
    items = json.loads(kubectl(kubeconfig, "get", "pv", "-o", "json"))["items"]
    return {pv["metadata"]["name"]: pv["status"].get("phase", "") for pv in items}


def test_declared_volumes_follow_install_heal_and_uninstall(cfy, inputs_file, blueprint):
    provider = LocalProvider(DEPLOYMENT, cfy.state_dir / DEPLOYMENT, subnet=SUBNET)
    try:
        cfy("install", str(blueprint), "-b", DEPLOYMENT, "-i", str(inputs_file))
        outputs = cfy.outputs(DEPLOYMENT)
        kubeconfig, workers = outputs["kubeconfig_path"], outputs["worker_nodes"]
        assert pvs(kubeconfig) == {f"{w['name']}-cache": "Available" for w in workers}
        worker = workers[0]["name"]
        backing = provider.volume_file(worker, "cache")
        assert backing.exists()

        cfy("executions", "start", "install", "-b", DEPLOYMENT)  # converges: mounted once
        mounts = on_host(provider, worker, "findmnt -n -o SOURCE /mnt/k8s-volumes/cache")
        assert mounts.splitlines() == ["/dev/k8s-volume-cache"]

        instance = "worker_host_" + worker.split("-", 1)[1]
        cfy("executions", "start", "heal", "-b", DEPLOYMENT, "-p", f"node_instance_id={instance}")
        assert backing.exists()
        assert pvs(kubeconfig) == {f"{w['name']}-cache": "Available" for w in workers}
        assert on_host(provider, worker, "findmnt -n -o FSTYPE /mnt/k8s-volumes/cache") == "ext4\n"
    finally:
        cfy.tear_down(DEPLOYMENT)
    assert not (cfy.state_dir / DEPLOYMENT).exists()
    loops = subprocess.run(["losetup", "-j", str(backing)], capture_output=True, text=True)
    assert loops.stdout == ""
