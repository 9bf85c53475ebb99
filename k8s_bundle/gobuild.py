"""Build Go commands from modules served by the Go module proxy, cached by what shapes them.

Each build is a throw-away Go module of the suite's that requires the upstream module at one
version and builds its commands (or a small main of the suite's, under k8s_bundle/go/). Modules
such as k8s.io/kubernetes and go.etcd.io/etcd/server/v3 point their sibling modules at folders
of their own repository with `replace` lines, which a dependent module does not inherit: those
lines are derived from the upstream go.mod and pinned to the matching release tags.

A finished build lives in `<cache>/<name>-<version>-<hash>/bin` with a `complete` marker, where
the hash covers everything that shapes the binaries; it is never changed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from k8s_cluster.hosts.lxc_util import FileLock, remove_tree, tail, write_file

GO_SOURCES = Path(__file__).resolve().parent / "go"
MIN_GO = (1, 26)
# Bump when the recipe below changes what a build produces: new cache entries are made.
RECIPE_VERSION = 1
_REPLACE = re.compile(r"^(\S+)(?:\s+\S+)?\s+=>\s+(\.\.?/\S*)$")


class BuildError(RuntimeError):
    """A build step failed; the message names the step and ends with the tail of its log."""


@dataclass(frozen=True)
class GoBuild:
    """One `go build` of a module's commands, or of a main of the suite's that imports it."""

    name: str  # cache entry and log name, e.g. "kubernetes"
    module: str  # the upstream module, e.g. "k8s.io/kubernetes"
    version: str  # its version, e.g. "v1.37.2"
    packages: tuple[str, ...] = ()  # main packages of the module to build, binary = last element
    main: str = ""  # or a main of the suite's: a folder under k8s_bundle/go/, binary = `binary`
    binary: str = ""
    sibling_version: str = ""  # tag for the module's local `replace` targets ("" = no replaces)
    cgo: bool = False
    tags: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)  # -X package.name=value
    extldflags: str = ""  # e.g. "-static" for cgo builds
    # modules the proxy does not serve, replaced by stand-ins under k8s_bundle/go/stubs/
    stubs: dict[str, str] = field(default_factory=dict)  # module path -> stub folder

    def key(self, go_version: str) -> str:
        recipe = json.dumps(
            [
                RECIPE_VERSION,
                go_version,
                self.__dict__,
                _main_source(self.main),
                _stub_sources(self.stubs),
            ],
            sort_keys=True,
            default=list,
        )
        return f"{self.name}-{self.version}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"

    @property
    def ldflags(self) -> str:
        flags = [
            "-s",
            "-w",
            *(f"-X {name}={value}" for name, value in sorted(self.variables.items())),
        ]
        if self.extldflags:
            flags.append(f"-extldflags '{self.extldflags}'")
        return " ".join(flags)


def _main_source(main: str) -> str:
    if not main:
        return ""
    return (GO_SOURCES / main / "main.go").read_text(encoding="utf-8")


def _stub_sources(stubs: dict[str, str]) -> list[str]:
    return [
        path.read_text(encoding="utf-8")
        for folder in sorted(stubs.values())
        for path in sorted((GO_SOURCES / "stubs" / folder).rglob("*"))
        if path.is_file()
    ]


def go_version() -> str:
    """The Go toolchain's version ("go1.26.8"), checked against the oldest that builds
    Kubernetes."""
    try:
        output = subprocess.run(
            ["go", "env", "GOVERSION"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise BuildError(f"no Go toolchain found ({err}); bin/setup installs one") from None
    found = re.match(r"go(\d+)\.(\d+)", output)
    if not found or (int(found[1]), int(found[2])) < MIN_GO:
        raise BuildError(
            f"Go {output} is too old: building Kubernetes needs go{MIN_GO[0]}.{MIN_GO[1]} or newer"
        )
    return output


def served_versions(module: str) -> list[str]:
    """The versions of `module` the Go module proxy serves."""
    proc = subprocess.run(
        ["go", "list", "-m", "-versions", "-json", module],
        capture_output=True,
        text=True,
        env=dict(os.environ, GOFLAGS="-mod=mod", GOWORK="off", GOTOOLCHAIN="local"),
        cwd=Path("/"),
    )
    if proc.returncode != 0:
        raise BuildError(f"go list -m -versions {module} failed: {tail(proc.stderr)}")
    return json.loads(proc.stdout).get("Versions") or []


def build(spec: GoBuild, cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """The folder holding the spec's binaries, built unless the cache has them."""
    key = spec.key(go_version())
    entry = cache_dir / key
    if (entry / "complete").exists():
        return entry / "bin"
    with FileLock(cache_dir / f"{key}.lock"):
        if not (entry / "complete").exists():
            _build(spec, cache_dir, entry, log)
    return entry / "bin"


def _build(spec: GoBuild, cache_dir: Path, entry: Path, log: Callable[[str], None]) -> None:
    work = cache_dir / f".{entry.name}.building"
    remove_tree(work)
    remove_tree(entry)
    module_dir = work / "module"
    module_dir.mkdir(parents=True)
    started = time.monotonic()
    log(f"go build {spec.name} {spec.version}: {', '.join(_binaries(spec))}")
    write_file(module_dir / "go.mod", go_mod(spec, _replaces(spec, work)))
    if spec.main:
        shutil.copy(GO_SOURCES / spec.main / "main.go", module_dir / "main.go")
    for folder in spec.stubs.values():
        shutil.copytree(GO_SOURCES / "stubs" / folder, module_dir / "stubs" / folder)
    (work / "bin").mkdir()
    if spec.main:  # one command: -o names the binary
        output, targets = str(work / "bin" / spec.binary), ["."]
    else:  # several: -o names the folder (the trailing slash says so)
        output, targets = f"{work / 'bin'}{os.sep}", list(spec.packages)
    argv = ["go", "build", "-trimpath", "-ldflags", spec.ldflags, "-o", output]
    if spec.tags:
        argv[2:2] = ["-tags", ",".join(spec.tags)]
    _go(argv + targets, module_dir, spec, work / "build.log")
    if spec.main:  # the suite's own Go is vetted where it is built
        _go(["go", "vet", "."], module_dir, spec, work / "vet.log")
    write_file(
        work / "complete",
        json.dumps({"seconds": round(time.monotonic() - started, 1), "spec": spec.__dict__}) + "\n",
    )
    os.replace(work, entry)
    log(f"go build {spec.name}: done in {time.monotonic() - started:.0f} s")


def _binaries(spec: GoBuild) -> list[str]:
    return [spec.binary] if spec.main else [package.rsplit("/", 1)[-1] for package in spec.packages]


def go_mod(spec: GoBuild, replaces: dict[str, str]) -> str:
    lines = [f"module k8s-cluster/bundle/{spec.name}", "", "go 1.26.0"]
    if spec.module:
        lines += ["", f"require {spec.module} {spec.version}"]
    stubs = {module: f"./stubs/{folder}" for module, folder in spec.stubs.items()}
    if replaces or stubs:
        lines += ["", "replace ("]
        lines += [
            f"\t{module} => {module} {version}" for module, version in sorted(replaces.items())
        ]
        lines += [f"\t{module} => {folder}" for module, folder in sorted(stubs.items())]
        lines.append(")")
    return "\n".join(lines) + "\n"


def _replaces(spec: GoBuild, work: Path) -> dict[str, str]:
    """The upstream module's replaces of sibling modules by local folders, as release tags."""
    if not spec.sibling_version:
        return {}
    info = _go(
        ["go", "mod", "download", "-json", f"{spec.module}@{spec.version}"],
        work,
        spec,
        work / "download.log",
    )
    upstream_mod = Path(json.loads(info)["GoMod"]).read_text(encoding="utf-8")
    return {module: spec.sibling_version for module in local_replaces(upstream_mod)}


def local_replaces(go_mod_text: str) -> list[str]:
    """Modules the go.mod requires and replaces by a folder of its own repository (`=> ./x`,
    `=> ../x`). A replace of a module it does not require (etcd's guards against importing
    the old monolithic module, `=> ./FORBIDDEN_DEPENDENCY`) is no sibling."""
    replaced = [
        match[1]
        for line in _directive_lines(go_mod_text, "replace")
        if (match := _REPLACE.match(line))
    ]
    required = {line.split()[0] for line in _directive_lines(go_mod_text, "require")}
    return [module for module in replaced if module in required]


def _directive_lines(go_mod_text: str, directive: str) -> list[str]:
    """The lines of a go.mod directive, from its blocks and its one-line forms, without the
    directive's name or comments."""
    lines = []
    in_block = False
    for line in go_mod_text.splitlines():
        stripped = line.split("//", 1)[0].strip()
        if stripped == f"{directive} (":
            in_block = True
        elif in_block and stripped == ")":
            in_block = False
        elif in_block and stripped:
            lines.append(stripped)
        elif stripped.startswith(f"{directive} "):
            lines.append(stripped[len(directive) + 1 :].strip())
    return lines


def _go(argv: list[str], cwd: Path, spec: GoBuild, log_file: Path) -> str:
    env = dict(
        os.environ,
        CGO_ENABLED="1" if spec.cgo else "0",
        GOFLAGS="-mod=mod -buildvcs=false",
        GOWORK="off",
        GOTOOLCHAIN="local",
    )
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    log_file.write_text(proc.stderr + proc.stdout, encoding="utf-8")
    if proc.returncode != 0:
        raise BuildError(
            f"{' '.join(argv[:3])} for {spec.name} {spec.version} exited {proc.returncode} "
            f"(full log: {log_file}):\n{tail(proc.stderr + proc.stdout, 25)}"
        )
    return proc.stdout
