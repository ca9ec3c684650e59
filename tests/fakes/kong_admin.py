#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fake Kong Admin API (DB-less) for tests: GET /, GET /status, POST /config.

Speaks the wire protocol of Kong 3.x's Admin API as tether uses it:
  GET /        -> {"version", "node_id", "configuration": {"database": "off", "router_flavor"}}
  GET /status  -> {"configuration_hash": "<32 hex>", "server": {...}, "memory": {...}}
  POST /config?check_hash=1&flatten_errors=1 -> 201 (hash = md5 of the body), 400 with
               "flattened_errors" for entities carrying rejected k8s-* tags, 429 + Retry-After,
               413, 500, ...
Each instance listens on its own address (127.0.0.x, port 0 by default), plain HTTP, TLS or
mutual TLS (ssl module), and can misbehave on request: slow, down, reject, status codes,
restart (hash back to zeros), cut connections. Every request is recorded for assertions.

Use it in-process (FakeKong) or as a program:
  kong_admin.py [--host 127.0.0.1] [--port 0] [--cert F --key F [--client-ca F]] [--flavor X]
prints "PORT <n>" and serves until killed.
"""
import argparse
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ZERO_HASH = "0" * 32
ENTITY_TYPES = {
    "services": "service", "routes": "route", "plugins": "plugin", "upstreams": "upstream",
    "targets": "target", "consumers": "consumer", "certificates": "certificate", "snis": "sni",
    "ca_certificates": "ca_certificate", "consumer_groups": "consumer_group", "vaults": "vault",
}


def walk_entities(cfg):
    """Yield (entity_type, entity) for every entity of a declarative config, nested included."""
    def walk(key, items):
        if not isinstance(items, list):
            return
        for e in items:
            if not isinstance(e, dict):
                continue
            yield ENTITY_TYPES.get(key, key.rstrip("s")), e
            for k, v in e.items():
                if isinstance(v, list) and v and isinstance(v[0], dict):
                    yield from walk(k, v)
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            if not k.startswith("_"):
                yield from walk(k, v)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj=None, headers=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def record(self, body=b""):
        k = self.server.kong
        with k.lock:
            k.requests.append({"method": self.command, "path": self.path,
                               "headers": {h.lower(): v for h, v in self.headers.items()},
                               "body_len": len(body), "time": time.monotonic()})

    def do_GET(self):
        k = self.server.kong
        self.record()
        if k.get_delay:
            time.sleep(k.get_delay)
        if k.status_down:
            return self.reply(503, {"message": "unavailable"})
        path = urlsplit(self.path).path
        if path == "/status":
            return self.reply(200, {"configuration_hash": k.hash,
                                    "server": {"connections_accepted": 1, "total_requests": len(k.requests)},
                                    "memory": {"workers_lua_vms": [], "lua_shared_dicts": {}}})
        if path == "/":
            return self.reply(200, {"version": k.version, "node_id": k.node_id, "tagline": "Welcome to kong",
                                    "configuration": {"database": "off", "router_flavor": k.flavor}})
        self.reply(404, {"message": "Not found"})

    def do_POST(self):
        k = self.server.kong
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.record(body)
        url = urlsplit(self.path)
        if url.path != "/config":
            return self.reply(404, {"message": "Not found"})
        with k.lock:
            k.posts += 1
            if k.cut > 0:
                k.cut -= 1
                cut = True
            else:
                cut = False
            fail = None
            if k.fail and not cut:
                fail = k.fail.pop(0)
        if cut:
            # Drop the connection without an answer.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if k.delay:
            time.sleep(k.delay)
        if fail:
            code, extra = fail
            hdrs = {}
            if code == 429:
                hdrs["Retry-After"] = str(extra if extra is not None else 1)
                return self.reply(429, {"message": "Currently loading previous configuration"}, hdrs)
            if code == 413:
                return self.reply(413, {"message": "Request Entity Too Large"})
            return self.reply(code, {"message": "An unexpected error occurred"})
        ctype = self.headers.get("Content-Type", "")
        if not ctype:
            return self.reply(415, {"message": "Unsupported Media Type"})
        if k.fast:
            # Benchmarks: accept without parsing (the cost of Python's JSON is not tether's).
            with k.lock:
                k.hash = hashlib.md5(body).hexdigest()
                k.accepted += 1
                k.accepted_at = time.monotonic()
            return self.reply(201, {})
        try:
            cfg = json.loads(body)
        except ValueError:
            return self.reply(400, {"message": "Cannot parse JSON body"})
        if not isinstance(cfg, dict) or "_format_version" not in cfg:
            return self.reply(400, {"message": "expected a declarative configuration"})
        errs = []
        for etype, e in walk_entities(cfg):
            tags = e.get("tags") or []
            for rej in k.reject:
                if all(t in tags for t in rej):
                    errs.append({"entity_type": etype, "entity_name": e.get("name"), "entity_id": e.get("id"),
                                 "entity_tags": tags, "entity": e,
                                 "errors": [{"type": "entity", "message": "rejected by the fake gateway"},
                                            {"type": "field", "field": "name", "message": "invalid value"}]})
                    break
        flat = parse_qs(url.query).get("flatten_errors", [""])[0] in ("1", "true", "on", "yes")
        if errs:
            with k.lock:
                k.rejected += 1
            out = {"code": 14, "name": "invalid declarative configuration",
                   "message": "declarative config is invalid: {}", "fields": {}}
            if flat:
                out["flattened_errors"] = errs
            return self.reply(400, out)
        h = hashlib.md5(body).hexdigest()
        if parse_qs(url.query).get("check_hash", [""])[0] == "1" and h == k.hash:
            return self.reply(304)
        with k.lock:
            k.hash = h
            k.config = cfg
            k.accepted += 1
            k.accepted_bodies.append(h)
        self.reply(201, {} if k.small_answer else cfg)


class FakeKong:
    """One fake gateway. Attributes may be changed at any time to change its behaviour."""

    def __init__(self, host="127.0.0.1", port=0, cert=None, key=None, client_ca=None,
                 flavor="traditional_compatible", version="3.9.1"):
        self.host, self.port = host, port
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.flavor, self.version = flavor, version
        self.node_id = "6f1a0cbe-0000-4000-8000-%012d" % (abs(hash((host, port, time.time()))) % 10**12)
        self.lock = threading.Lock()
        self.requests = []
        self.hash = ZERO_HASH
        self.config = None
        self.accepted = self.rejected = self.posts = 0
        self.accepted_bodies = []
        self.sni = []             # TLS server names clients asked for
        self.delay = 0.0          # seconds before answering POST /config (slow gateway)
        self.get_delay = 0.0      # seconds before answering GETs
        self.status_down = False  # GET / and /status answer 503
        self.reject = []          # lists of tags: an entity carrying all tags of one list is rejected
        self.fail = []            # queue of (status, retry_after) answers for the next POSTs
        self.cut = 0              # number of POSTs whose connection is dropped unanswered
        self.small_answer = True  # 201 with {} instead of echoing the config
        self.fast = False         # accept POST /config without parsing it (benchmarks)
        self.accepted_at = None
        self.httpd = None
        self.thread = None
        self.start()

    @property
    def scheme(self):
        return "https" if self.cert else "http"

    @property
    def url(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % (self.scheme, h, self.port)

    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = fam
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                # Clients that hang up (cut answers, failed TLS handshakes) are part of the tests.
                e = sys.exc_info()[1]
                if not isinstance(e, (ConnectionError, ssl.SSLError, OSError)):
                    super().handle_error(request, client_address)
        httpd = Server((self.host, self.port), Handler)
        httpd.kong = self
        if self.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)

            def on_sni(sock, name, c):
                with self.lock:
                    self.sni.append(name)
            ctx.sni_callback = on_sni
            if self.client_ca:
                ctx.load_verify_locations(self.client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def down(self):
        """Stop listening: connections are refused until up()."""
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def up(self):
        if not self.httpd:
            self.start()

    def restart(self):
        """Kong restarted with no configuration: the hash goes back to zeros."""
        with self.lock:
            self.hash = ZERO_HASH
            self.config = None

    def close(self):
        self.down()

    def posts_config(self):
        with self.lock:
            return [r for r in self.requests if r["method"] == "POST" and r["path"].startswith("/config")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    ap.add_argument("--flavor", default="traditional_compatible")
    a = ap.parse_args()
    k = FakeKong(a.host, a.port, a.cert, a.key, a.client_ca, a.flavor)
    print("PORT %d" % k.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        k.close()


if __name__ == "__main__":
    sys.exit(main())
