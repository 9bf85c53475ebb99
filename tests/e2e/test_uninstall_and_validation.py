"""uninstall leaves nothing behind and a reinstall works; bad inputs create nothing."""

from __future__ import annotations

import json

import yaml

from tests.testbed import host_traces, kubectl

BLUEPRINT = "blueprints/k8s-cluster.yaml"
NOTHING = {"containers": [], "links": [], "nat_rules": [], "state": []}


def test_uninstall_leaves_nothing_and_reinstall_works(cfy, inputs_file, bundle):
    # The second install proves the first uninstall left a clean machine. It also takes the
    # packages and images from folders on this machine (as an air-gapped site would), which
    # the suite copies to the hosts, where the first install reads them over HTTP like a mirror.
    local = {
        "package_repository": str(bundle.path / "repository"),
        "image_bundle": str(bundle.path / "images"),
    }
    for folders in ({}, local):
        overrides = {"worker_count": 1, **folders}
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
    not_images = tmp_path / "not-images"
    not_images.mkdir()
    (not_images / "notes.tar").write_text("not an image archive")
    bad.update(
        pod_cidr="10.244.0.0/33",
        kubernetes_version="latest",
        ssh_private_key_file="/nonexistent/key",
        image_bundle=str(not_images),
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = cfy("install", BLUEPRINT, "-b", "k8s-bad", "-i", str(path), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for name in ("pod_cidr", "kubernetes_version", "ssh_private_key_file", "image_bundle"):
        assert name in output
    assert "notes.tar is not an image archive" in output
    assert "Nothing was created" in output
    assert host_traces(cfy.state_dir, "k8s-bad") == NOTHING
    cfy("uninstall", "-b", "k8s-bad", check=False)
