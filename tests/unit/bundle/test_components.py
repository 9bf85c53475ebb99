"""Unit tests of k8s_bundle.components: supported versions and the Kubernetes build spec."""

from __future__ import annotations

import pytest

from k8s_bundle import components


@pytest.mark.parametrize(
    ("text", "version"),
    [("1.37.2", (1, 37, 2)), ("v1.36.3", (1, 36, 3)), (" 1.37.0\n", (1, 37, 0))],
)
def test_parse_version_accepts_a_supported_patch_release(
    text: str, version: tuple[int, int, int]
) -> None:
    assert components.parse_version(text) == version


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1.37", "is not X.Y.Z"),
        ("v1.37", "is not X.Y.Z"),
        ("1.37.2.1", "is not X.Y.Z"),
        ("garbage", "is not X.Y.Z"),
        ("", "is not X.Y.Z"),
        ("1.35.4", "bundles are built for 1.36, 1.37"),
        ("1.38.0", "bundles are built for 1.36, 1.37"),
    ],
)
def test_parse_version_refuses_naming_the_value(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        components.parse_version(text)
    message = str(caught.value)
    assert f"Kubernetes version {text!r}" in message
    assert problem in message


def test_kubernetes_build_is_stamped_with_its_version() -> None:
    spec = components.kubernetes((1, 37, 2))
    assert spec.module == "k8s.io/kubernetes"
    assert spec.version == "v1.37.2"
    assert spec.sibling_version == "v0.37.2"
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert spec.variables[f"{package}.gitVersion"] == "v1.37.2"
        assert spec.variables[f"{package}.gitMajor"] == "1"
        assert spec.variables[f"{package}.gitMinor"] == "37"
        assert spec.variables[f"{package}.gitTreeState"] == "clean"
        assert f"{package}.gitVersion=v1.37.2" in spec.ldflags.split(" ")
    assert [p.rsplit("/", 1)[1] for p in spec.packages] == list(components.KUBERNETES_COMMANDS)
    assert "kubeadm" in components.KUBERNETES_COMMANDS


def test_kubernetes_builds_of_two_patches_differ() -> None:
    one = components.kubernetes((1, 37, 2))
    other = components.kubernetes((1, 37, 3))
    assert other.sibling_version == "v0.37.3"
    assert one.key("go1.26.8") != other.key("go1.26.8")


def test_etcd_build_from_kubeadms_image_tag() -> None:
    spec = components.etcd("3.7.0")
    assert (spec.module, spec.version, spec.sibling_version) == (
        "go.etcd.io/etcd/server/v3",
        "v3.7.0",
        "v3.7.0",
    )
    assert (spec.main, spec.binary) == ("etcd", "etcd")


def test_every_supported_minor_has_pins() -> None:
    assert set(components.PINS) == set(components.SUPPORTED_MINORS)
    pins = components.PINS["1.37"]
    assert components.containerd(pins).version == f"v{pins.containerd}"
    assert components.runc(pins).extldflags == "-static"
    assert components.runc(pins).cgo is True


def test_closest_served_is_the_version_itself_or_the_next_patch_served() -> None:
    served = ["v1.13.9", "v1.14.3", "v1.14.4", "v1.14.10", "v1.15.0"]
    assert components.closest_served("v1.14.4", served) == "v1.14.4"
    assert components.closest_served("v1.14.2", served) == "v1.14.3"
    assert components.closest_served("v1.14.5", served) == "v1.14.10"
    with pytest.raises(ValueError, match=r"v1\.14\.11 is not served .*v1\.15\.0"):
        components.closest_served("v1.14.11", served)
