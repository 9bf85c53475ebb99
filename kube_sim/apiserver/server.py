"""HTTPS transport: TLS with optional client certificates, HTTP/1.1 keep-alive, chunked watch
streams. All API semantics live in :mod:`.api`."""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .api import Api, Request, Response
from .auth import ANONYMOUS, User, user_from_cert, user_from_token
from .errors import ApiError

log = logging.getLogger("kube_sim.apiserver.server")

MAX_BODY = 16 * 1024 * 1024


def make_ssl_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-sim"
    sys_version = ""
    timeout = 600  # idle keep-alive connections
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _user(self) -> User:
        try:
            peercert = self.connection.getpeercert()  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            peercert = None
        user = user_from_cert(peercert)
        if user is not None:
            return user
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            store = self.server.api.store
            return user_from_token(auth[7:], lambda ns, name: store.get("/secrets", ns, name))
        return ANONYMOUS

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "request entity too large", "RequestEntityTooLarge")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        req: Request | None = None
        try:
            body = self._read_body()
            user = self._user()
            req = Request.build(self.command, self.path, dict(self.headers.items()), body, user)
            resp = self.server.api.handle(req)
        except ApiError as err:
            resp = Response(err.code, err.status())
        except Exception:
            log.exception("internal error serving %s %s", self.command, self.path)
            resp = Response(500, ApiError(500, "internal error").status())
        if self.server.verbose:
            log.info(
                "%s %s %s -> %d", req.user.name if req else "-", self.command, self.path, resp.code
            )
        if resp.stream is not None:
            self._send_stream(resp)
        else:
            self._send(resp)

    def _send(self, resp: Response) -> None:
        if isinstance(resp.body, (dict, list)):
            data = json.dumps(resp.body, separators=(",", ":")).encode()
        elif isinstance(resp.body, str):
            data = resp.body.encode()
        elif isinstance(resp.body, bytes):
            data = resp.body
        else:
            data = b""
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_stream(self, resp: Response) -> None:
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        assert resp.stream is not None
        try:
            for chunk in resp.stream:
                if chunk is None:
                    if self._client_gone():
                        self.close_connection = True
                        return
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            close = getattr(resp.stream, "close", None)
            if close:
                close()

    def _client_gone(self) -> bool:
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        previous = sock.gettimeout()
        try:
            sock.settimeout(0.05)
            data = sock.recv(1)
        except (ssl.SSLWantReadError, TimeoutError):
            return False
        except (OSError, ssl.SSLError):
            return True
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)
        return data == b""


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], api: Api, ssl_ctx: ssl.SSLContext, verbose: bool = False
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self.ssl_ctx = ssl_ctx
        self.verbose = verbose
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the connection's own thread, not in the accept loop.
        try:
            request.settimeout(30)
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            tls.settimeout(None)
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError) as exc:
            log.debug("connection with %s ended: %s", client_address, exc)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def serve_in_thread(server: ApiServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="apiserver", daemon=True)
    thread.start()
    return thread
