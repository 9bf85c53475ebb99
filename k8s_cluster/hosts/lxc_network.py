"""The private network of one deployment's local (LXC) hosts, made by hand.

This machine has no lxc-net service (PID 1 is not systemd) and no DHCP server for containers, so
the provider plays the hypervisor's network: a Linux bridge holding the subnet's first address as
the hosts' gateway, IPv4 forwarding, and an iptables MASQUERADE rule for the subnet out of the
default route's interface (plus FORWARD accepts, in case the policy there is DROP). Every rule
carries the comment `k8s-cluster <bridge>`, which is how teardown finds them again.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from k8s_cluster.hosts.lxc_util import FileLock, LocalHostError, machine_lock_dir, run

ALIAS_PREFIX = "k8s-cluster deployment "
IFNAMSIZ = 15


def short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def bridge_name(identity: str) -> str:
    return f"k8sbr{short_hash(identity, length=10)}"  # 15 characters


def veth_name(identity: str, host: str) -> str:
    return f"k8sv{short_hash(identity, host, length=11)}"  # 15 characters


def global_lock() -> FileLock:
    """Serializes network changes of all deployments on this machine (subnet checks, bridges)."""
    return FileLock(machine_lock_dir() / "k8s-cluster-network.lock")


@dataclass(frozen=True)
class Network:
    identity: str  # the deployment's state folder: unique on this machine, unlike its id
    subnet: ipaddress.IPv4Network

    @property
    def bridge(self) -> str:
        return bridge_name(self.identity)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1

    @property
    def comment(self) -> str:
        return f"k8s-cluster {self.bridge}"

    def host_address(self, index: int) -> ipaddress.IPv4Address:
        """The index-th host address: .10, .11, ... of the subnet."""
        address = self.subnet.network_address + 10 + index
        if address >= self.subnet.broadcast_address:
            raise LocalHostError(f"subnet {self.subnet} has no free address left for another host")
        return address


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise LocalHostError(f"invalid subnet {subnet!r}: {exc}") from exc
    if not isinstance(network, ipaddress.IPv4Network):
        raise LocalHostError(f"subnet {subnet} must be IPv4")
    if network.prefixlen > 28:
        raise LocalHostError(
            f"subnet {subnet} is too small: use a /28 or larger (hosts start at .10)"
        )
    return network


def _ip_json(*args: str) -> list[dict]:
    out = run(["ip", "-j", *args], f"ip {' '.join(args)}").stdout.strip()
    return json.loads(out) if out else []


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], "ip link show", check=False).returncode == 0


def _aliases() -> dict[str, str]:
    return {link["ifname"]: link.get("ifalias", "") for link in _ip_json("link", "show")}


def deployment_bridges() -> dict[str, str]:
    """The bridges of every local deployment on this machine, by deployment state folder."""
    return {
        alias[len(ALIAS_PREFIX) :]: name
        for name, alias in _aliases().items()
        if alias.startswith(ALIAS_PREFIX)
    }


def _owner(dev: str, aliases: dict[str, str]) -> str:
    alias = aliases.get(dev, "")
    if alias.startswith(ALIAS_PREFIX):
        return f"bridge {dev} of k8s-cluster deployment {alias[len(ALIAS_PREFIX) :]!r}"
    return f"this machine's interface {dev}"


def check_subnet_free(net: Network) -> None:
    """Refuse a subnet that overlaps a route or address not belonging to this deployment."""
    aliases = _aliases()
    prefixes: list[tuple[str, str]] = []
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst, dev = route.get("dst", "default"), route.get("dev", "?")
        if dst != "default" and dev != net.bridge:
            prefixes.append((dst, dev))
    for link in _ip_json("-4", "addr", "show"):
        for info in link.get("addr_info", []):
            if link["ifname"] != net.bridge:
                prefixes.append((f"{info['local']}/{info['prefixlen']}", link["ifname"]))
    for prefix, dev in prefixes:
        other = ipaddress.ip_network(prefix, strict=False)
        if other.prefixlen > 0 and other.overlaps(net.subnet):
            raise LocalHostError(
                f"subnet {net.subnet} for the deployment in {net.identity} overlaps {other} "
                f"on {_owner(dev, aliases)}: choose another subnet for the local hosts"
            )


def default_interface() -> str | None:
    routes = _ip_json("-4", "route", "show", "default")
    return routes[0].get("dev") if routes else None


def _iptables(*args: str, check: bool = True) -> str:
    proc = run(["iptables", "-w", *args], f"iptables {' '.join(args[:3])}", check=check)
    return proc.stdout if proc.returncode == 0 else ""


def _ensure_rule(table: str, chain: str, spec: list[str], insert: bool) -> None:
    if run(
        ["iptables", "-w", "-t", table, "-C", chain, *spec], "iptables -C", check=False
    ).returncode:
        _iptables("-t", table, "-I" if insert else "-A", chain, *spec)


def rules(net: Network, table: str) -> list[str]:
    """This deployment's iptables rules in `table`, as `iptables -S` prints them."""
    out = _iptables("-t", table, "-S")
    return [line for line in out.splitlines() if f'--comment "{net.comment}"' in line]


def _kernel_setup() -> None:
    """What a hypervisor host provides: forwarding, and the modules Kubernetes nodes need."""
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n", encoding="ascii")
    for module in ("overlay", "br_netfilter", "nf_conntrack"):
        if Path(f"/sys/module/{module}").exists():
            continue
        # no modprobe here: built into the kernel or unavailable
        with contextlib.suppress(LocalHostError):
            run(["modprobe", module], f"modprobe {module}", check=False)


def ensure_network(net: Network) -> None:
    """Create (or repair) the bridge, gateway address, forwarding and NAT. Idempotent."""
    with global_lock():
        check_subnet_free(net)
        gateway = f"{net.gateway}/{net.subnet.prefixlen}"
        if not link_exists(net.bridge):
            run(["ip", "link", "add", "name", net.bridge, "type", "bridge"], "create bridge")
        run(
            ["ip", "link", "set", "dev", net.bridge, "alias", ALIAS_PREFIX + net.identity],
            f"label bridge {net.bridge}",
        )
        addresses = {
            f"{info['local']}/{info['prefixlen']}"
            for link in _ip_json("-4", "addr", "show", "dev", net.bridge)
            for info in link.get("addr_info", [])
        }
        for stale in addresses - {gateway}:
            run(["ip", "addr", "del", stale, "dev", net.bridge], f"remove {stale} from bridge")
        if gateway not in addresses:
            run(["ip", "addr", "add", gateway, "dev", net.bridge], f"address bridge {net.bridge}")
        run(["ip", "link", "set", "dev", net.bridge, "up"], f"bring bridge {net.bridge} up")
        _kernel_setup()
        comment = ["-m", "comment", "--comment", net.comment]
        subnet = str(net.subnet)
        _ensure_rule("filter", "FORWARD", ["-i", net.bridge, *comment, "-j", "ACCEPT"], True)
        established = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
        _ensure_rule(
            "filter", "FORWARD", ["-o", net.bridge, *established, *comment, "-j", "ACCEPT"], True
        )
        out_if = default_interface()
        if out_if is not None:
            masquerade = ["-s", subnet, "!", "-d", subnet, "-o", out_if, *comment]
            _ensure_rule("nat", "POSTROUTING", [*masquerade, "-j", "MASQUERADE"], False)


def remove_network(net: Network) -> None:
    """Delete the bridge and every iptables rule of this deployment. Idempotent."""
    with global_lock():
        for table in ("nat", "filter"):
            for line in rules(net, table):
                words = shlex.split(line)
                if words and words[0] == "-A":
                    _iptables("-t", table, "-D", *words[1:])
        if link_exists(net.bridge):
            run(["ip", "link", "del", "dev", net.bridge], f"delete bridge {net.bridge}")


def forget_neighbor(address: str) -> None:
    """Drop this machine's ARP entry for an address: a host given an address another host had
    (a replacement, a re-run) has another MAC, and a stale entry sends its packets nowhere."""
    run(["ip", "neigh", "flush", "to", address], f"forget neighbour {address}", check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", "dev", name], f"delete interface {name}", check=False)
