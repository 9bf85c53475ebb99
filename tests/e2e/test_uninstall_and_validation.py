"""uninstall leaves nothing behind and a reinstall works; bad inputs create nothing."""

from __future__ import annotations

import json

import yaml

from .conftest import host_traces, kubectl

BLUEPRINT = "blueprints/k8s-cluster.yaml"
NOTHING = {"containers": [], "links": [], "nat_rules": [], "state": []}


def test_uninstall_leaves_nothing_and_reinstall_works(cfy, inputs_file, sim_repository):
    # The second install proves the first uninstall left a clean machine. It also takes the
    # packages from a local copy of the repository (as an air-gapped site would), which the
    # suite copies to the hosts, where the first install reads them over HTTP like a mirror.
    for repository in (None, str(sim_repository)):
        overrides = {"worker_count": 1}
        if repository:
            overrides["package_repository"] = repository
        cfy(
            "install", BLUEPRINT, "-b", "k8s-again",
            "-i", str(inputs_file), "-i", json.dumps(overrides),
        )  # fmt: skip
        outputs = cfy.outputs("k8s-again")
        assert len(kubectl(outputs["kubeconfig_path"], "get", "nodes", "-o", "name").split()) == 2
        hosts = [outputs["control_plane_node"]["name"], outputs["worker_nodes"][0]["name"]]
        cfy("uninstall", "-b", "k8s-again")
        assert host_traces(cfy.state_dir, "k8s-again", hosts) == NOTHING


def test_bad_inputs_fail_validation_with_nothing_created(cfy, inputs_file, tmp_path):
    bad = yaml.safe_load(inputs_file.read_text())
    bad.update(
        pod_cidr="10.244.0.0/33",
        kubernetes_version="latest",
        ssh_private_key_file="/nonexistent/key",
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = cfy("install", BLUEPRINT, "-b", "k8s-bad", "-i", str(path), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for name in ("pod_cidr", "kubernetes_version", "ssh_private_key_file"):
        assert name in output
    assert "Nothing was created" in output
    assert host_traces(cfy.state_dir, "k8s-bad") == NOTHING
    cfy("uninstall", "-b", "k8s-bad", check=False)
