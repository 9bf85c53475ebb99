"""Volume requests, records and the Kubernetes objects made for a volume."""

from __future__ import annotations

import pytest

from k8s_cluster import storage
from k8s_cluster.storage import Volume


@pytest.mark.parametrize(
    ("size", "expected"), [("16Mi", 16 * 2**20), ("1Gi", 2**30), (" 2Ti ", 2 * 2**40)]
)
def test_sizes(size, expected):
    assert storage.size_bytes(size) == expected


@pytest.mark.parametrize("size", ["0Mi", "1.5Gi", "1G", "10", "-1Gi", "", "Gi", "01Gi"])
def test_unreadable_sizes_say_what_is_accepted(size):
    with pytest.raises(storage.VolumeError, match="whole number of Mi, Gi or Ti"):
        storage.size_bytes(size)


def test_a_good_request_has_no_problem():
    assert storage.check_request("data-1", "64Mi", "ext4", space=2**30) == []


@pytest.mark.parametrize(
    ("name", "size", "filesystem", "space", "message"),
    [
        ("Data", "64Mi", "ext4", None, "name 'Data' is not accepted"),
        ("-data", "64Mi", "ext4", None, "name '-data' is not accepted"),
        ("d" * 41, "64Mi", "ext4", None, "at most 40 characters"),
        ("data", "8Mi", "ext4", None, "size '8Mi' is not accepted: between 16Mi and"),
        ("data", "100Ti", "ext4", None, "between 16Mi and 67108864Mi"),
        ("data", "2Gi", "ext4", 2**30, "between 16Mi and 1024Mi (the space free"),
        ("data", "64Mi", "ntfs", None, "filesystem 'ntfs' is not supported: one of ext4"),
    ],
)
def test_bad_requests_name_the_input_and_what_is_accepted(name, size, filesystem, space, message):
    problems = storage.check_request(name, size, filesystem, space)
    assert len(problems) == 1 and message in problems[0], problems


def test_every_problem_is_reported_at_once():
    assert len(storage.check_request("A", "0", "zfs", None)) == 3


def test_the_pv_is_local_with_node_affinity_to_its_host():
    pv = storage.persistent_volume(Volume("data", "worker-abc", "1Gi", "ext4"))
    assert pv["metadata"]["name"] == "worker-abc-data"
    spec = pv["spec"]
    assert spec["local"] == {"path": "/mnt/k8s-volumes/data", "fsType": "ext4"}
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["storageClassName"] == storage.STORAGE_CLASS
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["worker-abc"]}


@pytest.mark.parametrize("default", [True, False])
def test_the_storage_class_waits_for_the_first_consumer(default):
    sc = storage.storage_class(default)
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["provisioner"] == "kubernetes.io/no-provisioner"
    annotations = sc["metadata"]["annotations"]
    assert annotations == ({storage.DEFAULT_CLASS_ANNOTATION: "true"} if default else {})


def test_records_round_trip_and_leave_nothing_when_forgotten(tmp_path):
    volumes = [Volume("b", "worker-2", "1Gi", "ext4"), Volume("a", "worker-1", "32Mi", "ext3")]
    for volume in volumes:
        storage.save(tmp_path, volume)
    assert storage.recorded(tmp_path) == sorted(volumes, key=lambda v: (v.host, v.name))
    assert storage.recorded(tmp_path, "worker-2") == [volumes[0]]
    for volume in volumes:
        storage.forget(tmp_path, volume)
    assert list(tmp_path.iterdir()) == []


def test_a_refusal_names_volume_and_claim_and_the_way_out():
    text = storage.bound_refusal({"worker-1/data": "default/db"}, "force=true")
    assert "volume worker-1/data is bound to claim default/db" in text
    assert "force=true" in text
