"""kubeadm STAND-IN (kube-sim): for end-to-end tests and offline rehearsals, never real clusters.

Installed as /usr/bin/kubeadm by the kube-sim `kubeadm` package. Commands: version, config
validate, init, join, token create/list/delete/generate, reset. See kube_sim/CONTRACT.md.

Test-only environment: KUBE_SIM_ROOT (prefix for every host path), KUBE_SIM_NO_SYSTEMD=1 (run the
API server stand-in and kubelet as plain processes instead of systemd services).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from kube_sim.common import kubeconfig, paths, pki, version, yamlsubset
from kube_sim.common.rest import ApiError
from kube_sim.kubeadm_lib import config, tokenops, tokens
from kube_sim.kubeadm_lib.errors import KubeadmError, PhaseError

STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors like cobra does (exit 1, 'unknown flag')."""

    def error(self, message: str) -> NoReturn:
        raise KubeadmError(message.replace("unrecognized arguments", "unknown flag"))


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Global flags, accepted before or after the subcommand."""
    parser.add_argument("--v", "-v", dest="verbosity", default=argparse.SUPPRESS)
    parser.add_argument("--rootfs", default=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kubeadm", description="kubeadm STAND-IN (kube-sim)")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("version")
    _add_common(p)
    p.add_argument("-o", "--output", default="")

    p = sub.add_parser("config")
    _add_common(p)
    config_sub = p.add_subparsers(dest="config_command", parser_class=_Parser)
    v = config_sub.add_parser("validate")
    _add_common(v)
    v.add_argument("--config", required=True)
    v.add_argument("--allow-experimental-api", action="store_true")
    images = config_sub.add_parser("images")
    _add_common(images)
    images_sub = images.add_subparsers(dest="images_command", parser_class=_Parser)
    for name in ("list", "pull"):
        ip = images_sub.add_parser(name)
        _add_common(ip)
        ip.add_argument("--config")
        ip.add_argument("--kubernetes-version")
        ip.add_argument("--cri-socket")
        ip.add_argument("-o", "--output", default="text")

    p = sub.add_parser("certs")
    _add_common(p)
    certs_sub = p.add_subparsers(dest="certs_command", parser_class=_Parser)
    _add_common(certs_sub.add_parser("certificate-key"))

    p = sub.add_parser("init")
    _add_common(p)
    p.add_argument("--config")
    p.add_argument("--skip-phases", default="")
    p.add_argument("--upload-certs", action="store_true")
    p.add_argument("--ignore-preflight-errors", action="append", default=[])
    p.add_argument("--skip-token-print", action="store_true")
    p.add_argument("--dry-run", action="store_true")

    p = sub.add_parser("join")
    _add_common(p)
    p.add_argument("endpoint", nargs="?")
    p.add_argument("--config")
    p.add_argument("--token")
    p.add_argument("--discovery-token")
    p.add_argument("--tls-bootstrap-token")
    p.add_argument("--discovery-token-ca-cert-hash", action="append", default=[])
    p.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true")
    p.add_argument("--node-name")
    p.add_argument("--cri-socket")
    p.add_argument("--control-plane", action="store_true")
    p.add_argument("--certificate-key")
    p.add_argument("--apiserver-advertise-address")
    p.add_argument("--apiserver-bind-port")
    p.add_argument("--ignore-preflight-errors", action="append", default=[])
    p.add_argument("--skip-phases", default="")

    p = sub.add_parser("token")
    _add_common(p)
    p.add_argument("--kubeconfig", default=paths.ADMIN_CONF)
    token_sub = p.add_subparsers(dest="token_command", parser_class=_Parser)
    c = token_sub.add_parser("create")
    _add_common(c)
    c.add_argument("token", nargs="?")
    c.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    c.add_argument("--ttl", default="24h0m0s")
    c.add_argument("--description", default="")
    c.add_argument("--usages", default="signing,authentication")
    c.add_argument("--groups", default=tokens.DEFAULT_GROUP)
    c.add_argument("--print-join-command", action="store_true")
    c.add_argument("--certificate-key")
    c.add_argument("--config")
    c.add_argument("--dry-run", action="store_true")
    lst = token_sub.add_parser("list")
    _add_common(lst)
    lst.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    lst.add_argument("-o", "--output", default="text")
    lst.add_argument("--show-managed-fields", action="store_true")
    d = token_sub.add_parser("delete")
    _add_common(d)
    d.add_argument("tokens", nargs="+")
    d.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    g = token_sub.add_parser("generate")
    _add_common(g)

    p = sub.add_parser("reset")
    _add_common(p)
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--config")
    p.add_argument("--cri-socket")
    p.add_argument("--cert-dir")
    p.add_argument("--cleanup-tmp-dir", action="store_true")
    p.add_argument("--ignore-preflight-errors", action="append", default=[])
    p.add_argument("--kubeconfig")
    p.add_argument("--skip-phases", default="")
    p.add_argument("--dry-run", action="store_true")
    return parser


def _split_list(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def cmd_version(args: argparse.Namespace) -> None:
    info = version.version_info()
    if args.output == "short":
        print(info["gitVersion"])
    elif args.output == "json":
        print(json.dumps({"clientVersion": info}, indent=2))
    elif args.output == "yaml":
        print(yamlsubset.dump({"clientVersion": info}), end="")
    elif args.output == "":
        fields = ", ".join(f'{k[0].upper()}{k[1:]}:"{v}"' for k, v in info.items())
        print(f"kubeadm version: &version.Info{{{fields}}}")
    else:
        raise KubeadmError(f"invalid output format: {args.output}")


IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")


def cmd_config(args: argparse.Namespace) -> None:
    if args.config_command == "images":
        _config_images(args)
        return
    if args.config_command != "validate":
        raise KubeadmError(
            "kube-sim kubeadm supports `kubeadm config validate` and `kubeadm config images`"
        )
    for line in config.validate_file(args.config):
        print(line, file=sys.stderr)
    print("ok")


def _config_images(args: argparse.Namespace) -> None:
    """`config images list|pull`: the images a real control plane would use (none is pulled)."""
    if args.images_command not in ("list", "pull"):
        raise KubeadmError("use one of: kubeadm config images list|pull")
    wanted = args.kubernetes_version
    if args.config:
        cluster = config.read_documents(args.config).by_kind.get("ClusterConfiguration") or {}
        wanted = wanted or cluster.get("kubernetesVersion")
    tag = wanted or f"v{version.kube_version()}"
    tag = tag if tag.startswith("v") else f"v{tag}"
    images = [f"registry.k8s.io/{name}:{tag}" for name in IMAGES]
    images += ["registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/pause:3.10"]
    for image in images:
        if args.images_command == "list":
            print(image)
        else:
            print(f"[config/images] Pulled {image} (kube-sim: simulated, nothing downloaded)")


def cmd_certs(args: argparse.Namespace) -> None:
    if args.certs_command != "certificate-key":
        raise KubeadmError("kube-sim kubeadm supports `kubeadm certs certificate-key` only")
    import secrets

    print(secrets.token_hex(32))


def cmd_init(args: argparse.Namespace) -> None:
    from kube_sim.kubeadm_lib import init

    if not args.config:
        raise KubeadmError("kube-sim kubeadm init needs --config FILE")
    if args.dry_run:
        raise KubeadmError("kube-sim kubeadm does not support --dry-run")
    settings = config.init_settings(config.read_documents(args.config))
    init.run(settings, _split_list(args.ignore_preflight_errors), args.upload_certs)


def cmd_join(args: argparse.Namespace) -> None:
    from kube_sim.kubeadm_lib import join

    flag_values = {
        "endpoint": args.endpoint,
        "--token": args.token,
        "--discovery-token": args.discovery_token,
        "--tls-bootstrap-token": args.tls_bootstrap_token,
        "--discovery-token-ca-cert-hash": args.discovery_token_ca_cert_hash,
        "--discovery-token-unsafe-skip-ca-verification": (
            args.discovery_token_unsafe_skip_ca_verification
        ),
        "--node-name": args.node_name,
        "--cri-socket": args.cri_socket,
        "--control-plane": args.control_plane,
        "--certificate-key": args.certificate_key,
    }
    if args.config:
        mixed = [name for name, value in flag_values.items() if value]
        if mixed:
            raise KubeadmError(f"can not mix '--config' with arguments {mixed}")
        docs = config.read_documents(args.config)
    else:
        if not args.endpoint:
            raise KubeadmError('discovery: Invalid value: "": bootstrapToken or file must be set')
        doc = config.join_document_from_flags(
            args.endpoint,
            args.token or "",
            args.discovery_token,
            args.tls_bootstrap_token,
            args.discovery_token_ca_cert_hash,
            args.discovery_token_unsafe_skip_ca_verification,
            args.node_name,
            args.cri_socket,
            args.control_plane,
        )
        docs = config.parse_documents(yamlsubset.dump(doc), "flags")
    settings = config.join_settings(docs)
    join.run(settings, _split_list(args.ignore_preflight_errors))


def _token_client(args: argparse.Namespace):
    from kube_sim.kubeadm_lib import cluster

    path = getattr(args, "kubeconfig", None) or paths.ADMIN_CONF
    return cluster.client_from_kubeconfig(path), kubeconfig.load(path)


def cmd_token(args: argparse.Namespace) -> None:
    from kube_sim.common import timeutil

    command = args.token_command
    if command == "generate":
        print(tokens.generate())
        return
    if command is None:
        raise KubeadmError("use one of: kubeadm token create|list|delete|generate")
    client, creds = _token_client(args)
    if command == "create":
        token_text = args.token or tokens.generate()
        try:
            tokens.split(token_text)
        except ValueError as exc:
            raise KubeadmError(str(exc)) from exc
        try:
            ttl = timeutil.parse_duration(args.ttl)
        except ValueError as exc:
            raise KubeadmError(f'invalid argument "{args.ttl}" for "--ttl" flag: {exc}') from exc
        usages = _split_list([args.usages])
        for usage in usages:
            if usage not in tokens.VALID_USAGES:
                raise KubeadmError(
                    f"invalid bootstrap token usage string: {usage}, valid usage options: "
                    + ", ".join(tokens.VALID_USAGES)
                )
        groups = _split_list([args.groups])
        for group in groups:
            if not tokens.GROUP_RE.match(group):
                raise KubeadmError(
                    f'bootstrap group "{group}" does not match pattern {tokens.GROUP_RE.pattern!r}'
                )
        token = tokens.BootstrapToken(
            token=token_text, description=args.description, ttl=ttl, usages=usages, groups=groups
        )
        tokenops.store_token(client, token, allow_update=False)
        try:
            live = {t.token_id for t in tokenops.list_tokens(client)}
            tokenops.prune_signatures(client, live)
            if not tokenops.sign_cluster_info(client, token):
                print(
                    "W [token] WARNING: the cluster-info ConfigMap was not found; this token "
                    "cannot be used for discovery",
                    file=sys.stderr,
                )
        except ApiError as exc:
            raise KubeadmError(f"failed to sign cluster-info with the new token: {exc}") from exc
        if args.print_join_command:
            endpoint = creds.server.removeprefix("https://").rstrip("/")
            if not creds.ca_pem:
                raise KubeadmError("the kubeconfig has no certificate authority data")
            print(tokenops.join_command(endpoint, token_text, creds.ca_pem, args.certificate_key))
        else:
            print(token_text)
    elif command == "list":
        found = tokenops.list_tokens(client)
        if args.output in ("json", "yaml"):
            for token in found:
                item = tokenops.token_json(token)
                if args.output == "json":
                    print(json.dumps(item, indent=4))
                else:
                    print("---\n" + yamlsubset.dump(item), end="")
        elif args.output == "text":
            if found:
                print(tokenops.format_table(found), end="")
        else:
            raise KubeadmError(f"invalid output format: {args.output}")
    elif command == "delete":
        for item in args.tokens:
            token_id = tokenops.delete_token(client, item)
            print(f'bootstrap token "{token_id}" deleted')


def cmd_reset(args: argparse.Namespace) -> None:
    from kube_sim.kubeadm_lib import reset

    reset.run(args.force)


COMMANDS = {
    "version": cmd_version,
    "config": cmd_config,
    "certs": cmd_certs,
    "init": cmd_init,
    "join": cmd_join,
    "token": cmd_token,
    "reset": cmd_reset,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 0
        COMMANDS[args.command](args)
    except config.ConfigError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        print(STACK_HINT, file=sys.stderr)
        return 1
    except PhaseError as exc:
        print(str(exc), file=sys.stderr)
        print(STACK_HINT, file=sys.stderr)
        return 1
    except (KubeadmError, kubeconfig.KubeconfigError, pki.PKIError) as exc:
        print(f"error: {exc}" if not str(exc).startswith("error") else str(exc), file=sys.stderr)
        print(STACK_HINT, file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(STACK_HINT, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
