#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fake Kong Konnect (the KIC control-plane API) on loopback, over mutual TLS.

Serves {base}/kic/api/control-planes/{cp}/<entity> with size/offset paging, PUT/DELETE by id
(targets under /upstreams/{u}/targets, credentials under /consumers/{c}/<type>), consumer group
membership (GET/POST /consumer_groups/{g}/consumers, DELETE .../consumers/{c}), foreign-key and
uniqueness checks like Kong's, and the nodes API /v1/kic-nodes with cursor paging. A client
certificate verified against a test CA is required on every connection.

It misbehaves on request: down (connections reset), blackhole (accepted, never answered),
slow (delay before answering), fail rules (429 with Retry-After, 5xx, 4xx for some requests),
wrong_cert (a server certificate from another CA). It can add defaults to stored entities the
way Konnect does, and change or delete entities behind the client's back. Every request is
recorded by method and path for assertions.

Use in-process (FakeKonnect) or standalone: konnect.py --cert ... --key ... --client-ca ...
--cp-id ... [--control-port-file F] prints "PORT <n>" and "CONTROL <n>"; the control port is
plain HTTP on loopback: POST /mode {"mode": ..., "slow": s, "fail": [...], "defaults": bool},
GET /requests, GET /entities, GET /nodes, POST /modify {"kind","id","set":{...}}.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KINDS = ["certificates", "ca_certificates", "vaults", "consumers", "snis", "services",
         "upstreams", "consumer_groups", "key-auths", "basic-auths", "hmac-auths", "jwts", "acls",
         "mtls-auths", "routes", "targets", "plugins"]
CRED_SEGS = {"key-auth": "key-auths", "basic-auth": "basic-auths", "hmac-auth": "hmac-auths",
             "jwt": "jwts", "acls": "acls", "mtls-auth": "mtls-auths"}
# Fields that Kong/Konnect fill in when absent (a subset, enough to look like drift if compared).
DEFAULTS = {
    "services": {"enabled": True, "retries": 5, "connect_timeout": 60000, "read_timeout": 60000,
                 "write_timeout": 60000, "protocol": "http", "port": 80, "path": None,
                 "ca_certificates": None, "client_certificate": None, "tls_verify": None,
                 "tls_verify_depth": None},
    "routes": {"regex_priority": 0, "preserve_host": False, "https_redirect_status_code": 426,
               "path_handling": "v0", "request_buffering": True, "response_buffering": True,
               "strip_path": True, "snis": None, "sources": None, "destinations": None,
               "headers": None, "methods": None},
    "plugins": {"enabled": True, "protocols": ["grpc", "grpcs", "http", "https"],
                "instance_name": None},
    "upstreams": {"algorithm": "round-robin", "slots": 10000, "hash_on": "none",
                  "healthchecks": {"threshold": 0}},
    "targets": {"weight": 100},
    "consumers": {"custom_id": None},
}
UNIQUE = {"services": "name", "routes": "name", "upstreams": "name", "consumers": "username",
          "snis": "name", "key-auths": "key", "consumer_groups": "name", "vaults": "prefix"}
# (kind, field, parent kind, on delete of the parent: restrict or cascade)
REFS = [("routes", "service", "services", "restrict"),
        ("snis", "certificate", "certificates", "restrict"),
        ("targets", "upstream", "upstreams", "cascade"),
        ("plugins", "service", "services", "cascade"),
        ("plugins", "route", "routes", "cascade"),
        ("plugins", "consumer", "consumers", "cascade"),
        ("plugins", "consumer_group", "consumer_groups", "cascade")] + \
       [(k, "consumer", "consumers", "cascade") for k in CRED_SEGS.values()]


def make_pki(directory):
    """Test PKI with the openssl CLI: ca, server (127.0.0.1/localhost), client, and a wrong CA +
    server. Returns a dict of paths. Keys are created at run time, never committed."""
    os.makedirs(directory, exist_ok=True)
    p = lambda n: os.path.join(directory, n)

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    for ca in ("ca", "wrongca"):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", p(ca + ".key"), "-out", p(ca + ".crt"), "-days", "2",
            "-subj", "/CN=tether test " + ca, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = p("server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    cext = p("client.ext")
    with open(cext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    tether = os.environ.get("TETHER")
    if tether and os.access(tether, os.X_OK):
        # The client certificate as users make it: `tether certs generate` (certs/ module).
        subprocess.run([tether, "certs", "generate", "--cert", p("client.crt"), "--key",
                        p("client.key"), "--cn", "client", "--usage", "client", "--days", "2",
                        "--ca-cert", p("ca.crt"), "--ca-key", p("ca.key"), "--force"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for name, ca, e in (("server", "ca", ext), ("wrongserver", "wrongca", ext),
                        ("client", "ca", cext), ("rogueclient", "wrongca", cext)):
        if name == "client" and tether and os.access(tether, os.X_OK):
            continue
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", p(name + ".key"), "-out", p(name + ".csr"), "-subj", "/CN=" + name)
        run("x509", "-req", "-in", p(name + ".csr"), "-CA", p(ca + ".crt"), "-CAkey",
            p(ca + ".key"), "-CAcreateserial", "-out", p(name + ".crt"), "-days", "2",
            "-extfile", e)
    return {n: p(n) for n in ("ca.crt", "server.crt", "server.key", "wrongserver.crt",
                              "wrongserver.key", "client.crt", "client.key", "rogueclient.crt",
                              "rogueclient.key", "wrongca.crt")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        fake = self.fake
        mode = fake.mode
        fake._note_connection(mode)
        if mode == "down":
            # Reset at once: what a client sees of a host that is not there (RST).
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close()
            return
        if mode == "blackhole":
            # Accept and never answer, not even the TLS handshake, until the mode changes.
            while fake.mode == "blackhole" and not fake._stopping.is_set():
                fake._mode_changed.wait(0.2)
            request.close()
            return
        ctx = fake._wrong_ctx if mode == "wrong_cert" else fake._ctx
        try:
            request.settimeout(30)
            tls = ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            fake._note_tls_failure(str(e))
            request.close()
            return
        cn = ""
        for rdn in (tls.getpeercert() or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
        fake._note_client(cn)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except OSError:
            pass
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status, doc=None, headers=None):
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _handle(self, method):
        fake = self.server.fake
        body = self._read_body()
        url = urlsplit(self.path)
        # A kept-alive connection sees a mode change too: drop it (down, wrong_cert) or hang
        # without answering (blackhole) instead of serving over the old connection.
        if fake.mode != "ok":
            while fake.mode == "blackhole" and not fake._stopping.is_set():
                fake._mode_changed.wait(0.2)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        # Concurrency is that of the entity API (node reporting runs beside it).
        entity = "/v1/kic-nodes" not in url.path
        with fake.lock:
            fake.active += entity
            fake.max_active = max(fake.max_active, fake.active)
        try:
            delay = fake.slow
            if delay:
                time.sleep(delay)
            status, doc, headers = fake.handle(method, url.path, parse_qs(url.query), body)
            if not fake.keepalive:
                headers = dict(headers or {}, Connection="close")
                self.close_connection = True
            self._reply(status, doc, headers)
        finally:
            with fake.lock:
                fake.active -= entity

    def do_GET(self):
        self._handle("GET")

    def do_PUT(self):
        self._handle("PUT")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")


class FakeKonnect:
    def __init__(self, pki, cp_id="3f1b2a3c-0d4e-4f5a-8b6c-7d8e9f0a1b2c", host="127.0.0.1",
                 client_ca=None):
        self.cp_id = cp_id
        self.prefix = "/kic/api/control-planes/" + cp_id
        self.lock = threading.RLock()
        self.entities = {k: OrderedDict() for k in KINDS}
        self.members = {}           # consumer group id -> OrderedDict of consumer ids
        self.nodes = OrderedDict()
        self.requests = []          # (method, path below the control plane, query)
        self.connections = {}       # mode -> count
        self.tls_failures = []
        self.mode = "ok"
        self.slow = 0.0
        self.fail_rules = []
        self.defaults = False
        self.keepalive = True       # False: close every connection after one answer
        self.client_cns = []        # common name of the client certificate, per connection
        self.active = 0             # entity API requests being answered now
        self.max_active = 0
        self.times = []             # (monotonic time, method, path, status) per request
        self._mode_changed = threading.Event()
        self._stopping = threading.Event()
        # client_ca: the bundle client certificates are verified against (a pinned self-signed
        # certificate, as Konnect pins the one made in its UI, is its own CA).
        client_ca = client_ca or pki["ca.crt"]
        self._ctx = self._server_ctx(pki["server.crt"], pki["server.key"], client_ca)
        self._wrong_ctx = self._server_ctx(pki["wrongserver.crt"], pki["wrongserver.key"],
                                           client_ca)
        self.server = _Server((host, 0), _Handler)
        self.server.fake = self
        self.port = self.server.server_address[1]
        self.address = "https://%s:%d" % (host, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def _server_ctx(cert, key, client_ca):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
        return ctx

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._mode_changed.set()
        self.server.shutdown()
        self.server.server_close()

    # ---- control ---------------------------------------------------------------------------
    def set_mode(self, mode, slow=None):
        assert mode in ("ok", "down", "blackhole", "wrong_cert"), mode
        with self.lock:
            self.mode = mode
            if slow is not None:
                self.slow = slow
        self._mode_changed.set()
        self._mode_changed = threading.Event()

    def fail(self, status, count=-1, retry_after=None, methods=None, path_contains=None,
             body=None):
        """Answer @status to the next @count matching requests (-1: until cleared)."""
        with self.lock:
            self.fail_rules.append({"status": status, "count": count, "retry_after": retry_after,
                                    "methods": methods, "path_contains": path_contains,
                                    "body": body or {"message": "injected failure"}})

    def clear_failures(self):
        with self.lock:
            self.fail_rules = []

    def modify(self, kind, eid, changes):
        """Change an entity behind the client's back (None deletes a field)."""
        with self.lock:
            e = self.entities[kind][eid]
            for k, v in changes.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v

    def delete_behind(self, kind, eid):
        with self.lock:
            del self.entities[kind][eid]

    def insert_behind(self, kind, entity):
        with self.lock:
            self.entities[kind][entity["id"]] = dict(entity)

    def count(self, method=None, prefix=None, exact=None):
        with self.lock:
            return sum(1 for m, p, _ in self.requests
                       if (method is None or m == method) and
                       (prefix is None or p.startswith(prefix)) and (exact is None or p == exact))

    def reset_counts(self):
        with self.lock:
            self.requests = []
            self.connections = {}
            self.tls_failures = []
            self.times = []
            self.max_active = 0

    def writes(self):
        with self.lock:
            return [(m, p) for m, p, _ in self.requests
                    if m in ("PUT", "DELETE", "POST") and not p.startswith("/v1/")]

    def snapshot(self):
        with self.lock:
            snap = {k: [dict(e) for e in v.values()] for k, v in self.entities.items() if v}
            rows = [{"consumer_group": g, "consumer": c}
                    for g, cs in self.members.items() for c in cs]
            if rows:
                snap["consumer_group_consumers"] = rows
            return snap

    def add_member_behind(self, gid, cid):
        with self.lock:
            self.members.setdefault(gid, OrderedDict())[cid] = True

    def _note_connection(self, mode):
        with self.lock:
            self.connections[mode] = self.connections.get(mode, 0) + 1

    def _note_client(self, cn):
        with self.lock:
            self.client_cns.append(cn)

    def _note_tls_failure(self, why):
        with self.lock:
            self.tls_failures.append(why)

    # ---- protocol --------------------------------------------------------------------------
    def handle(self, method, path, query, body):
        if not path.startswith(self.prefix + "/"):
            return 404, {"message": "Not found"}, None
        rel = path[len(self.prefix):]
        with self.lock:
            self.requests.append((method, rel, query))
            status, doc, hdrs = self._dispatch(method, rel, query, body)
            self.times.append((time.monotonic(), method, rel, status))
            return status, doc, hdrs

    def _dispatch(self, method, rel, query, body):
        with self.lock:
            for rule in self.fail_rules:
                if rule["count"] == 0:
                    continue
                if rule["methods"] and method not in rule["methods"]:
                    continue
                if rule["path_contains"] and rule["path_contains"] not in rel:
                    continue
                if rule["count"] > 0:
                    rule["count"] -= 1
                hdrs = {}
                if rule["retry_after"] is not None:
                    hdrs["Retry-After"] = rule["retry_after"]
                return rule["status"], rule["body"], hdrs
            try:
                doc = json.loads(body) if body else None
            except ValueError:
                return 400, {"message": "Cannot parse JSON body"}, None
            parts = [p for p in rel.split("/") if p]
            if parts[:2] == ["v1", "kic-nodes"]:
                return self._nodes(method, parts[2:], query, doc)
            return self._entities(method, parts, query, doc)

    def _page(self, items, query):
        size = int((query.get("size") or ["100"])[0])
        if size < 1 or size > 1000:
            return 400, {"message": "size must be 1..1000"}, None
        start = 0
        if query.get("offset"):
            try:
                start = int(base64.urlsafe_b64decode(query["offset"][0].encode()).decode())
            except ValueError:
                return 400, {"message": "invalid offset"}, None
        page = items[start:start + size]
        doc = {"data": page, "next": None}
        if start + size < len(items):
            tok = base64.urlsafe_b64encode(str(start + size).encode()).decode()
            doc["offset"] = tok
            doc["next"] = "?offset=" + tok
        return 200, doc, None

    def _members(self, method, gid, cid, query, doc):
        """/consumer_groups/{g}/consumers[/{c}]: list, add (POST {"consumer": id or username})
        and remove a group's members, as Kong's consumer group API does."""
        group = self.entities["consumer_groups"].get(gid)
        if not group:
            return 404, {"message": "Not found"}, None
        members = self.members.setdefault(gid, OrderedDict())
        consumers = self.entities["consumers"]
        if method == "GET" and cid is None:
            return self._page([consumers[c] for c in members if c in consumers], query)
        if method == "POST" and cid is None:
            ref = (doc or {}).get("consumer") if isinstance(doc, dict) else None
            c = consumers.get(ref) or next((e for e in consumers.values()
                                            if ref and e.get("username") == ref), None)
            if not c:
                return 400, {"message": "consumer %s does not exist" % ref}, None
            if c["id"] in members:
                return 409, {"message": "consumer already in group"}, None
            members[c["id"]] = True
            return 201, {"consumer_group": group, "consumers": [c]}, None
        if method == "DELETE" and cid is not None:
            if cid not in members:
                return 404, {"message": "Not found"}, None
            del members[cid]
            return 204, None, None
        return 405, {"message": "Method not allowed"}, None

    def _entities(self, method, parts, query, doc):
        if len(parts) in (3, 4) and parts[0] == "consumer_groups" and parts[2] == "consumers":
            return self._members(method, parts[1], parts[3] if len(parts) == 4 else None, query,
                                 doc)
        # Nested write paths: /upstreams/{u}/targets/{id}, /consumers/{c}/<cred>/{id}.
        parent = None
        if len(parts) == 4 and parts[0] == "upstreams" and parts[2] == "targets":
            kind, eid, parent = "targets", parts[3], ("upstream", "upstreams", parts[1])
        elif len(parts) == 4 and parts[0] == "consumers" and parts[2] in CRED_SEGS:
            kind, eid, parent = CRED_SEGS[parts[2]], parts[3], ("consumer", "consumers", parts[1])
        elif len(parts) == 2 and parts[0] in self.entities:
            kind, eid = parts
        elif len(parts) == 1 and parts[0] in self.entities and method == "GET":
            return self._page(list(self.entities[parts[0]].values()), query)
        else:
            return 404, {"message": "Not found"}, None
        store = self.entities[kind]
        if method == "GET":
            e = store.get(eid)
            return (200, e, None) if e else (404, {"message": "Not found"}, None)
        if method == "DELETE":
            if eid not in store:
                return 404, {"message": "Not found"}, None
            for k, field, pkind, how in REFS:
                if pkind == kind and how == "restrict":
                    for other in self.entities[k].values():
                        if (other.get(field) or {}).get("id") == eid:
                            return 400, {"message": "an existing '%s' entity references this "
                                                    "'%s' entity" % (k, kind)}, None
            del store[eid]
            self._cascade(kind, eid)
            # Memberships go with their group or their consumer.
            if kind == "consumer_groups":
                self.members.pop(eid, None)
            elif kind == "consumers":
                for cs in self.members.values():
                    cs.pop(eid, None)
            return 204, None, None
        if method != "PUT":
            return 405, {"message": "Method not allowed"}, None
        if not isinstance(doc, dict):
            return 400, {"message": "body must be an object"}, None
        if doc.get("id", eid) != eid:
            return 400, {"message": "id in body and path differ"}, None
        e = dict(doc)
        e["id"] = eid
        if parent:
            e[parent[0]] = {"id": parent[2]}
        for k, field, pkind, _ in REFS:
            if k == kind and e.get(field) is not None:
                ref = e[field].get("id") if isinstance(e[field], dict) else None
                if ref not in self.entities[pkind]:
                    return 400, {"message": "foreign key violation: %s %s does not exist" %
                                 (pkind, ref)}, None
        ufield = UNIQUE.get(kind)
        if ufield and e.get(ufield) is not None:
            for other in store.values():
                if other["id"] != eid and other.get(ufield) == e[ufield]:
                    return 409, {"message": "UNIQUE violation detected on '{%s=\"%s\"}'" %
                                 (ufield, e[ufield])}, None
        now = int(time.time())
        e["created_at"] = store.get(eid, {}).get("created_at", now)
        e["updated_at"] = now
        if self.defaults:
            for k, v in DEFAULTS.get(kind, {}).items():
                if k not in e:
                    e[k] = json.loads(json.dumps(v))
                elif isinstance(v, dict) and isinstance(e[k], dict):
                    for k2, v2 in v.items():
                        e[k].setdefault(k2, v2)
            if kind == "plugins" and isinstance(e.get("config"), dict):
                e["config"].setdefault("konnect_default", 1)
        status = 200 if eid in store else 201
        store[eid] = e
        return status, e, None

    def _cascade(self, kind, eid):
        for k, field, pkind, how in REFS:
            if pkind == kind and how == "cascade":
                for oid in [o["id"] for o in self.entities[k].values()
                            if (o.get(field) or {}).get("id") == eid]:
                    del self.entities[k][oid]
                    self._cascade(k, oid)

    def _nodes(self, method, parts, query, doc):
        if not parts:
            if method == "GET":
                items = list(self.nodes.values())
                size = int((query.get("page.size") or ["100"])[0])
                start = int((query.get("page.next_cursor") or ["0"])[0])
                page = items[start:start + size]
                more = start + size < len(items)
                return 200, {"items": page, "page": {
                    "total_count": len(items), "next_cursor": str(start + size) if more else None,
                    "has_next_page": more}}, None
            if method == "POST":
                if not isinstance(doc, dict) or not doc.get("hostname") or not doc.get("type"):
                    return 400, {"message": "hostname and type are required"}, None
                n = dict(doc)
                n.setdefault("id", str(uuid.uuid4()))
                if n["id"] in self.nodes:
                    return 409, {"message": "node exists"}, None
                self.nodes[n["id"]] = n
                return 201, {"item": n}, None
            return 405, {"message": "Method not allowed"}, None
        nid = parts[0]
        if nid not in self.nodes:
            return 404, {"message": "Not found"}, None
        if method == "GET":
            return 200, {"item": self.nodes[nid]}, None
        if method == "PUT":
            n = dict(doc or {})
            n["id"] = nid
            self.nodes[nid] = n
            return 200, {"item": n}, None
        if method == "DELETE":
            del self.nodes[nid]
            return 204, None, None
        return 405, {"message": "Method not allowed"}, None


class _Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _reply(self, doc, status=200):
        b = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        fake = self.server.fake
        with fake.lock:
            if self.path == "/requests":
                return self._reply([[m, p] for m, p, _ in fake.requests])
            if self.path == "/entities":
                return self._reply(fake.snapshot())
            if self.path == "/nodes":
                return self._reply(list(fake.nodes.values()))
        self._reply({"message": "Not found"}, 404)

    def do_POST(self):
        fake = self.server.fake
        n = int(self.headers.get("Content-Length") or 0)
        doc = json.loads(self.rfile.read(n) or b"{}")
        if self.path == "/mode":
            fake.set_mode(doc.get("mode", fake.mode), doc.get("slow"))
            if "defaults" in doc:
                fake.defaults = bool(doc["defaults"])
            if "fail" in doc:
                fake.clear_failures()
                for r in doc["fail"]:
                    fake.fail(**r)
            return self._reply({"ok": True})
        if self.path == "/modify":
            fake.modify(doc["kind"], doc["id"], doc.get("set", {}))
            return self._reply({"ok": True})
        if self.path == "/reset":
            fake.reset_counts()
            return self._reply({"ok": True})
        self._reply({"message": "Not found"}, 404)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pki-dir", help="generate a test PKI here (instead of --cert etc.)")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    ap.add_argument("--wrong-cert")
    ap.add_argument("--wrong-key")
    ap.add_argument("--cp-id", default="3f1b2a3c-0d4e-4f5a-8b6c-7d8e9f0a1b2c")
    ap.add_argument("--defaults", action="store_true")
    args = ap.parse_args()
    if args.pki_dir:
        pki = make_pki(args.pki_dir)
    else:
        pki = {"server.crt": args.cert, "server.key": args.key, "ca.crt": args.client_ca,
               "wrongserver.crt": args.wrong_cert or args.cert,
               "wrongserver.key": args.wrong_key or args.key}
    fake = FakeKonnect(pki, cp_id=args.cp_id).start()
    fake.defaults = args.defaults
    ctl = ThreadingHTTPServer(("127.0.0.1", 0), _Control)
    ctl.fake = fake
    print("PORT %d" % fake.port, flush=True)
    print("CONTROL %d" % ctl.server_address[1], flush=True)
    try:
        ctl.serve_forever()
    except KeyboardInterrupt:
        pass
    fake.stop()


if __name__ == "__main__":
    main()
