"""uninstall leaves nothing behind and a reinstall works; bad inputs create nothing."""

from __future__ import annotations

import json

import yaml

from tests.testbed import create_object, host_traces, keepsake_pod, kubectl

BLUEPRINT = "blueprints/k8s-cluster.yaml"
NOTHING = {"containers": [], "links": [], "nat_rules": [], "state": []}


def test_uninstall_leaves_nothing_and_reinstall_works(cfy, inputs_file, bundle, tmp_path):
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
        if not folders:  # a pod uninstall would lose: refused unless told, like any drain
            pod = keepsake_pod("keepsake", hosts[1], bundle.test_image)
            create_object(outputs["kubeconfig_path"], pod, tmp_path)
            refused = cfy("uninstall", "-b", "k8s-again", check=False)
            assert refused.returncode != 0
            assert "default/keepsake: no controller manages it" in refused.stdout
            assert host_traces(cfy.state_dir, "k8s-again", hosts)["containers"]
            assert kubectl(outputs["kubeconfig_path"], "get", "pod", "keepsake", "-o", "name")
        told = ["-p", "force=true", "-p", "delete_emptydir_data=true"] if not folders else []
        cfy("uninstall", "-b", "k8s-again", *told)
        assert host_traces(cfy.state_dir, "k8s-again", hosts) == NOTHING


def test_bad_inputs_fail_validation_with_nothing_created(cfy, inputs_file, tmp_path):
    bad = yaml.safe_load(inputs_file.read_text())
    not_images = tmp_path / "not-images"
    not_images.mkdir()
    (not_images / "notes.tar").write_text("not an image archive")
    bad.update(
        pod_cidr="10.244.0.0/33",
        cni_manifest="/nonexistent/cni.yaml",
        ssh_private_key_file="/nonexistent/key",
        image_bundle=str(not_images),
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = cfy("install", BLUEPRINT, "-b", "k8s-bad", "-i", str(path), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for name in ("pod_cidr", "cni_manifest", "ssh_private_key_file", "image_bundle"):
        assert name in output
    assert "notes.tar is not an image archive" in output
    assert "Nothing was created" in output
    assert host_traces(cfy.state_dir, "k8s-bad") == NOTHING
    cfy("uninstall", "-b", "k8s-bad", check=False)


def test_an_absurd_count_is_refused_by_cfy_in_seconds_with_nothing_made(cfy, inputs_file):
    """The blueprint's constraints: cfy refuses before a plan of 100,000 instances exists."""
    result = cfy(
        "install", BLUEPRINT, "-b", "k8s-absurd",
        "-i", str(inputs_file), "-i", json.dumps({"worker_count": 100000}),
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0 and result.seconds < 15, (result.seconds, output[-2000:])
    assert "Value 100000 of input worker_count violates constraint in_range(0, 100)" in output
    assert not (cfy.workdir / ".cloudify/profiles/local/deployments/k8s-absurd").exists()
    assert host_traces(cfy.state_dir, "k8s-absurd") == NOTHING
