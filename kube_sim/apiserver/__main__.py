"""Command line: ``python3 -m kube_sim.apiserver --secure-port 6443 ...``.

Flag names follow kube-apiserver (and kube-controller-manager for the controller settings the
stand-in also runs). ``--bind`` and ``--port`` are accepted as short aliases. Unknown
``--flags`` of the real binaries are logged and ignored, so a unit file written for the real
server still starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from . import GIT_VERSION, timeutil
from .api import Api
from .controllers import Controllers
from .server import ApiServer, make_ssl_context
from .store import Store

log = logging.getLogger("kube_sim.apiserver")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m kube_sim.apiserver", description="kube-apiserver stand-in (kube-sim)"
    )
    p.add_argument("--bind-address", "--bind", dest="bind", default="0.0.0.0")
    p.add_argument("--secure-port", "--port", dest="port", type=int, default=6443)
    p.add_argument(
        "--advertise-address",
        default="",
        help="address published in /api serverAddressByClientCIDRs",
    )
    p.add_argument("--tls-cert-file", required=True)
    p.add_argument("--tls-private-key-file", required=True)
    p.add_argument(
        "--client-ca-file",
        required=True,
        help="CA that signs client certificates (also the cluster root CA)",
    )
    p.add_argument(
        "--cluster-signing-cert-file",
        default=None,
        help="CA certificate used to sign CSRs (default: --client-ca-file)",
    )
    p.add_argument(
        "--cluster-signing-key-file",
        default=None,
        help="CA key used to sign CSRs (CSRs stay unsigned without it)",
    )
    p.add_argument("--cluster-signing-duration", default="8760h")
    p.add_argument(
        "--root-ca-file",
        default=None,
        help="CA bundle published as kube-root-ca.crt (default: --client-ca-file)",
    )
    p.add_argument("--state-dir", default="/var/lib/kube-sim")
    p.add_argument("--node-monitor-grace-period", default="40s")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    p.add_argument("--controller-tick", default="1s", help="controller loop period")
    p.add_argument("--v", "-v", dest="verbosity", type=int, default=0)
    p.add_argument("--version", action="store_true")
    args, unknown = p.parse_known_args(argv)
    args.ignored = unknown
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        print(f"Kubernetes {GIT_VERSION}")
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbosity >= 4 else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.ignored:
        log.warning("ignoring unsupported arguments: %s", " ".join(args.ignored))
    os.makedirs(args.state_dir, exist_ok=True)
    store = Store(args.state_dir)
    advertise = args.advertise_address or (
        args.bind if args.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    )
    root_ca_file = args.root_ca_file or args.client_ca_file
    with open(root_ca_file, encoding="utf-8") as fh:
        root_ca = fh.read()

    controllers: Controllers | None = None

    def kick() -> None:
        if controllers is not None:
            controllers.kick()

    api = Api(store, args.service_cluster_ip_range, f"{advertise}:{args.port}", on_change=kick)
    api.ensure_defaults(root_ca, args.port, advertise)
    controllers = Controllers(
        api,
        node_monitor_grace=timeutil.parse_duration(args.node_monitor_grace_period),
        signing_cert=args.cluster_signing_cert_file or args.client_ca_file,
        signing_key=args.cluster_signing_key_file,
        signing_duration=timeutil.parse_duration(args.cluster_signing_duration),
        root_ca_pem=root_ca,
        tick=timeutil.parse_duration(args.controller_tick),
    )
    ctx = make_ssl_context(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    server = ApiServer((args.bind, args.port), api, ctx, verbose=args.verbosity >= 2)
    store.start_flusher()
    controllers.start()

    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("received signal %d, shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "kube-apiserver stand-in %s serving on https://%s:%d (state in %s)",
        GIT_VERSION,
        args.bind,
        args.port,
        args.state_dir,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        controllers.stop()
        store.close()
        server.server_close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
