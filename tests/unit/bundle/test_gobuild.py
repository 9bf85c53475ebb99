"""Unit tests of k8s_bundle.gobuild: go.mod texts, link flags and cache keys (no Go toolchain)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from k8s_bundle import gobuild
from k8s_bundle.gobuild import GoBuild, go_mod, local_replaces

UPSTREAM_GO_MOD = """\
module k8s.io/kubernetes

go 1.25.0

require (
	github.com/google/go-cmp v0.7.0
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
	k8s.io/apimachinery v0.0.0
	go.etcd.io/etcd/api/v3 v3.7.0
	go.etcd.io/etcd/client/v3 v3.7.0
	k8s.io/cri-api v0.0.0
)

require k8s.io/klog/v2 v2.130.1 // => ./not/a/replace

replace (
	github.com/google/go-cmp => github.com/google/go-cmp v0.6.0
	github.com/pinned/mod v1.2.3 => github.com/fork/mod v1.2.4
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go // the staging copy
	k8s.io/apimachinery v0.0.0 => ./staging/src/k8s.io/apimachinery
	// k8s.io/commented => ./staging/src/k8s.io/commented
	go.etcd.io/etcd/api/v3 => ../api
	example.com/absolute => /srv/absolute
)

replace go.etcd.io/etcd/client/v3 => ../client/v3

replace github.com/single/versioned => github.com/single/versioned v1.0.0

replace k8s.io/cri-api v0.0.0 => ./staging/src/k8s.io/cri-api

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_local_replaces_are_the_required_folder_targets_only() -> None:
    # go.etcd.io/etcd is replaced by a folder but not required: a guard, not a sibling
    assert local_replaces(UPSTREAM_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/client-go",
        "k8s.io/apimachinery",
        "go.etcd.io/etcd/api/v3",
        "go.etcd.io/etcd/client/v3",
        "k8s.io/cri-api",
    ]


def test_no_local_replaces_without_replace_lines() -> None:
    assert local_replaces("module x\n\ngo 1.26\n\nrequire (\n\ta/b => ./c\n)\n") == []


def test_go_mod_requires_the_module_and_pins_its_siblings() -> None:
    spec = GoBuild(
        name="flannel",
        module="github.com/flannel-io/flannel",
        version="v0.28.10",
        stubs={"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc": "tencentcloud-vpc"},
    )
    replaces = {"k8s.io/client-go": "v0.37.2", "k8s.io/api": "v0.37.2"}
    assert go_mod(spec, replaces) == (
        "module k8s-cluster/bundle/flannel\n"
        "\n"
        "go 1.26.0\n"
        "\n"
        "require github.com/flannel-io/flannel v0.28.10\n"
        "\n"
        "replace (\n"
        "\tk8s.io/api => k8s.io/api v0.37.2\n"
        "\tk8s.io/client-go => k8s.io/client-go v0.37.2\n"
        "\tgithub.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc => "
        "./stubs/tencentcloud-vpc\n"
        ")\n"
    )


def test_go_mod_of_a_main_of_the_suites_own() -> None:
    spec = GoBuild(name="testapp", module="", version="1.0", main="testapp", binary="testapp")
    assert go_mod(spec, {}) == "module k8s-cluster/bundle/testapp\n\ngo 1.26.0\n"


def test_go_mod_without_replaces_has_no_replace_block() -> None:
    spec = GoBuild(name="etcd", module="go.etcd.io/etcd/server/v3", version="v3.7.0")
    assert go_mod(spec, {}) == (
        "module k8s-cluster/bundle/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v3.7.0\n"
    )


def test_ldflags_sort_the_variables() -> None:
    spec = GoBuild(
        name="x", module="m", version="v1", variables={"main.version": "1.5.2", "a/b.Commit": "0"}
    )
    assert spec.ldflags == "-s -w -X a/b.Commit=0 -X main.version=1.5.2"


def test_ldflags_pass_extldflags_to_the_linker() -> None:
    spec = GoBuild(
        name="x", module="m", version="v1", variables={"main.v": "1"}, extldflags="-static"
    )
    assert spec.ldflags == "-s -w -X main.v=1 -extldflags '-static'"
    assert GoBuild(name="x", module="m", version="v1").ldflags == "-s -w"


BASE = GoBuild(
    name="runc",
    module="github.com/opencontainers/runc",
    version="v1.5.2",
    packages=("github.com/opencontainers/runc",),
    cgo=True,
    tags=("seccomp",),
    variables={"main.version": "1.5.2"},
    extldflags="-static",
)


def test_key_names_the_build_and_is_stable() -> None:
    key = BASE.key("go1.26.8")
    assert key.startswith("runc-v1.5.2-")
    assert len(key.rsplit("-", 1)[1]) == 10
    same = dataclasses.replace(BASE, variables=dict(BASE.variables))
    assert same.key("go1.26.8") == key


def test_key_does_not_depend_on_the_order_of_variables() -> None:
    one = dataclasses.replace(BASE, variables={"a.x": "1", "b.y": "2"})
    other = dataclasses.replace(BASE, variables={"b.y": "2", "a.x": "1"})
    assert one.key("go1.26.8") == other.key("go1.26.8")


@pytest.mark.parametrize(
    "change",
    [
        {"name": "runc-static"},
        {"module": "github.com/fork/runc"},
        {"version": "v1.5.3"},
        {"main": "etcd"},
        {"packages": ("github.com/opencontainers/runc", "github.com/x/y")},
        {"sibling_version": "v1.5.2"},
        {"cgo": False},
        {"tags": ("seccomp", "netgo")},
        {"variables": {"main.version": "1.5.3"}},
        {"extldflags": ""},
        {"binary": "runc2"},
        {"stubs": {"example.com/x": "tencentcloud-vpc"}},
    ],
)
def test_key_changes_with_every_field(change: dict) -> None:
    assert dataclasses.replace(BASE, **change).key("go1.26.8") != BASE.key("go1.26.8")


def test_key_changes_with_the_go_version() -> None:
    assert BASE.key("go1.26.9") != BASE.key("go1.26.8")


def test_key_changes_with_the_suites_own_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gobuild, "GO_SOURCES", tmp_path)
    (tmp_path / "app").mkdir()
    (tmp_path / "stubs" / "stub" / "sub").mkdir(parents=True)
    (tmp_path / "app" / "main.go").write_text("package main\n")
    (tmp_path / "stubs" / "stub" / "sub" / "a.go").write_text("package sub\n")
    spec = GoBuild(
        name="app", module="", version="1", main="app", binary="app", stubs={"x.io/s": "stub"}
    )
    before = spec.key("go1.26.8")
    (tmp_path / "app" / "main.go").write_text("package main\n\nfunc main() {}\n")
    after_main = spec.key("go1.26.8")
    assert after_main != before
    (tmp_path / "stubs" / "stub" / "sub" / "a.go").write_text("package sub // changed\n")
    assert spec.key("go1.26.8") != after_main
