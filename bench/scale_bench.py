"""Benchmark: how install and scale-out times grow with cluster size: real clusters on local LXC
hosts, from the offline bundle (built first by bin/build-bundle, cached). Prints the figures and
ratios measured in this one run.

    sudo .venv/bin/python bench/scale_bench.py [--sizes 1,4,8,16] [--network 10.83.0.0/16]

Needs root, LXC and the Debian mirror (bin/setup). Takes several minutes; nothing is left behind.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import testbed  # noqa: E402  (the test bed's bundle and server)

CFY = str(Path(sys.executable).with_name("cfy"))
BLUEPRINT = "blueprints/k8s-cluster.yaml"
MEASURE_RSS = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


class Bench:
    """Each deployment gets its own /24 of `network` (they coexist); the bundle is served on
    this machine's address, which every deployment's hosts reach."""

    def __init__(self, workdir: Path, network: str, bundle: Path, url: str):
        self.workdir = workdir
        self.subnets = ipaddress.ip_network(network).subnets(new_prefix=24)
        self.bundle = bundle
        self.url = url
        self.state = workdir / "state"
        self.env = dict(
            os.environ, CFY_WORKDIR=str(workdir / "cfy"), K8S_CLUSTER_STATE_DIR=str(self.state)
        )

    def inputs_for(self, deployment: str) -> Path:
        subnet = next(self.subnets)
        path = self.workdir / f"{deployment}.json"
        path.write_text(json.dumps(testbed.bundle_inputs(self.bundle, self.url, str(subnet))))
        return path

    def cfy(self, *args: str) -> tuple[float, int]:
        """Run cfy; (seconds, peak resident memory of the cfy process in MiB)."""
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", MEASURE_RSS, CFY, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        if result.returncode:
            failures = [line for line in result.stdout.splitlines() if "Task failed" in line]
            detail = "\n".join(failures[:5]) or result.stdout[-4000:]
            raise RuntimeError(f"cfy {' '.join(args)} failed:\n{detail}")
        peak_kib = int(result.stderr.strip().splitlines()[-1])
        return seconds, peak_kib // 1024

    def install(self, deployment: str, workers: int) -> tuple[float, int]:
        workers_input = json.dumps({"worker_count": workers})
        inputs = str(self.inputs_for(deployment))
        return self.cfy("install", BLUEPRINT, "-b", deployment, "-i", inputs, "-i", workers_input)

    def scale(self, deployment: str, delta: int) -> float:
        return self.cfy(
            "executions",
            "start",
            "scale",
            "-b",
            deployment,
            "-p",
            "scalable_entity_name=workers",
            "-p",
            f"delta={delta}",
        )[0]

    def uninstall(self, deployment: str) -> None:
        self.cfy("uninstall", "-b", deployment)

    def remove_leftovers(self) -> None:
        """After a failure: uninstall whatever deployment is still there."""
        for deployment in sorted(p.name for p in self.state.glob("bench-*")):
            subprocess.run(
                [CFY, "uninstall", "-b", deployment], cwd=ROOT, env=self.env, capture_output=True
            )

    def outputs(self, deployment: str) -> dict:
        result = subprocess.run(
            [CFY, "deployments", "outputs", "-b", deployment],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(result.stdout)

    def ssh_logins(self, deployment: str, host: str) -> int:
        """SSH sessions the host's sshd accepted, from its own journal."""
        lxc_path = self.state / deployment / "lxc"
        container = next(p.name for p in lxc_path.iterdir() if p.name.endswith(f"-{host}"))
        journal = subprocess.run(
            [
                "lxc-attach",
                "-P",
                str(lxc_path),
                "-n",
                container,
                "--",
                "journalctl",
                "-u",
                "ssh",
                "--no-pager",
                "-o",
                "cat",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return journal.count("Accepted publickey")


def measure(bench: Bench, sizes: list[int]) -> None:
    install_times: dict[int, float] = {}
    for size in sizes:
        seconds, peak = bench.install(f"bench-{size}", size)
        install_times[size] = seconds
        print(
            f"install 1 control plane + {size:2d} workers: {seconds:6.1f} s, "
            f"cfy peak RSS {peak} MiB"
        )
        if size not in (min(sizes), max(sizes)):
            bench.uninstall(f"bench-{size}")
    small, large = f"bench-{min(sizes)}", f"bench-{max(sizes)}"
    base = install_times[min(sizes)]
    for size in sizes:
        print(f"  T({size})/T({min(sizes)}) = {install_times[size] / base:.2f}")

    plus_one_small = bench.scale(small, 1)
    plus_one_large = bench.scale(large, 1)
    print(
        f"scale-out +1 on {min(sizes)} workers: {plus_one_small:.1f} s; "
        f"on {max(sizes)} workers: {plus_one_large:.1f} s; "
        f"ratio {plus_one_large / plus_one_small:.2f}"
    )

    control_plane = bench.outputs(small)["control_plane_node"]["name"]
    before = bench.ssh_logins(small, control_plane)
    known = {w["name"] for w in bench.outputs(small)["worker_nodes"]}
    plus_eight = bench.scale(small, 8)
    print(
        f"scale-out +8 on {min(sizes) + 1} workers: {plus_eight:.1f} s; "
        f"+8 / +1 = {plus_eight / plus_one_small:.2f}"
    )
    added = [w["name"] for w in bench.outputs(small)["worker_nodes"] if w["name"] not in known]
    sessions = bench.ssh_logins(small, control_plane) - before
    sessions += sum(bench.ssh_logins(small, name) for name in added)
    print(
        f"SSH sessions per added worker: {sessions / len(added):.1f} "
        f"(accepted by the new hosts and the control plane, counted in their sshd journals)"
    )
    bench.uninstall(small)
    bench.uninstall(large)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,8,16")
    parser.add_argument("--network", default="10.83.0.0/16", help="split into one /24 each")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="k8s-bench-") as tmp:
        workdir = Path(tmp)
        bundle, _ = testbed.build_bundle()
        url, server = testbed.serve(bundle)
        bench = Bench(workdir, args.network, bundle, url)
        print(f"machine: {os.cpu_count()} cores; hosts are LXC containers on it")
        try:
            measure(bench, sizes)
        finally:
            bench.remove_leftovers()
            server.shutdown()


if __name__ == "__main__":
    main()
