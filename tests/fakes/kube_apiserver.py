#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fake Kubernetes API server for tests (stdlib only).

Speaks the real wire protocol: paged lists (limit/continue), streamed watches (chunked JSON
lines with ADDED/MODIFIED/DELETED/BOOKMARK/ERROR, resourceVersion, 410 Gone on expired versions),
bearer token auth, Leases with resourceVersion conflicts, Events (POST/PATCH), Ingress status
(PUT/PATCH) and single-object GETs. Unknown or uninstalled CRD kinds answer 404.

It can misbehave on request: cut every watch, fail the next N requests with a status, delay
responses, expire resource versions, uninstall a CRD.

Use it in-process (FakeApiServer) or as a program:
  kube_apiserver.py [--port 0] [--port-file F] [--token T] [--access-log F]
                    [--tls-cert F --tls-key F [--client-ca F]] [--objects FILE.json|yaml]
Control over HTTP (no auth): POST /_control/apply {object or list}, /_control/delete
{kind,namespace,name}, /_control/cut, /_control/fail {count,status,match}, /_control/delay {ms},
/_control/expire, /_control/crd {plural, installed}, /_control/tokens {tokens: [...]};
GET /_control/events, /_control/leases, /_control/objects?kind=K, /_control/watchers.
Access log lines: "METHOD PATH?QUERY STATUS".
"""
import argparse
import base64
import copy
import gzip
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# plural -> (group, version, kind, namespaced, crd)
RESOURCES = {
    "services": ("", "v1", "Service", True, False),
    "secrets": ("", "v1", "Secret", True, False),
    "configmaps": ("", "v1", "ConfigMap", True, False),
    "events": ("", "v1", "Event", True, False),
    "pods": ("", "v1", "Pod", True, False),
    "namespaces": ("", "v1", "Namespace", False, False),
    "ingresses": ("networking.k8s.io", "v1", "Ingress", True, False),
    "ingressclasses": ("networking.k8s.io", "v1", "IngressClass", False, False),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice", True, False),
    "leases": ("coordination.k8s.io", "v1", "Lease", True, False),
    "kongplugins": ("configuration.konghq.com", "v1", "KongPlugin", True, True),
    "kongclusterplugins": ("configuration.konghq.com", "v1", "KongClusterPlugin", False, True),
    "kongconsumers": ("configuration.konghq.com", "v1", "KongConsumer", True, True),
    "kongingresses": ("configuration.konghq.com", "v1", "KongIngress", True, True),
    "kongconsumergroups": ("configuration.konghq.com", "v1beta1", "KongConsumerGroup", True, True),
    "tcpingresses": ("configuration.konghq.com", "v1beta1", "TCPIngress", True, True),
    "udpingresses": ("configuration.konghq.com", "v1beta1", "UDPIngress", True, True),
    "kongupstreampolicies": ("configuration.konghq.com", "v1beta1", "KongUpstreamPolicy", True,
                             True),
    "ingressclassparameterses": ("configuration.konghq.com", "v1alpha1", "IngressClassParameters",
                                 True, True),
    "kongvaults": ("configuration.konghq.com", "v1alpha1", "KongVault", False, True),
    "kongcustomentities": ("configuration.konghq.com", "v1alpha1", "KongCustomEntity", True, True),
    "konglicenses": ("configuration.konghq.com", "v1alpha1", "KongLicense", False, True),
    "kongservicefacades": ("incubator.ingress-controller.konghq.com", "v1alpha1",
                           "KongServiceFacade", True, True),
}
KIND_TO_PLURAL = {v[2]: k for k, v in RESOURCES.items()}


def api_version(plural):
    g, v = RESOURCES[plural][0], RESOURCES[plural][1]
    return f"{g}/{v}" if g else v


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class State:
    """Objects, resource versions and the event history, guarded by one condition."""

    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 100
        self.objects = {p: {} for p in RESOURCES}  # plural -> {(ns, name): obj}
        self.history = []  # (rv, plural, type, obj)
        self.min_rv = 0  # watches from below this get 410
        self.uninstalled = set()
        self.tokens = None  # None: no auth
        self.cut_gen = 0
        self.fail = []  # [{"count", "status", "match"}]
        self.delay_ms = 0
        self.watchers = 0
        self.bookmark_s = 1.0
        self.gone_as_http = False
        self.uid_n = 0

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def record(self, plural, typ, obj):
        self.history.append((int(obj["metadata"]["resourceVersion"]), plural, typ,
                             copy.deepcopy(obj)))
        if len(self.history) > 100000:
            del self.history[:50000]
        self.cond.notify_all()

    def put(self, obj, typ=None):
        """Create or replace @obj (a dict with kind); returns the stored copy."""
        plural = KIND_TO_PLURAL[obj["kind"]]
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        ns = md.get("namespace", "") if RESOURCES[plural][3] else ""
        if RESOURCES[plural][3] and not ns:
            ns = md["namespace"] = "default"
        key = (ns, md["name"])
        with self.cond:
            old = self.objects[plural].get(key)
            if old is not None:
                md.setdefault("uid", old["metadata"]["uid"])
                md.setdefault("creationTimestamp", old["metadata"].get("creationTimestamp"))
            else:
                self.uid_n += 1
                md.setdefault("uid", "00000000-0000-4000-8000-%012d" % self.uid_n)
                md.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime()))
            md["resourceVersion"] = self.next_rv()
            obj["apiVersion"] = api_version(plural)
            self.objects[plural][key] = obj
            self.record(plural, typ or ("MODIFIED" if old is not None else "ADDED"), obj)
            return copy.deepcopy(obj)

    def delete(self, kind, ns, name):
        plural = KIND_TO_PLURAL[kind]
        if not RESOURCES[plural][3]:
            ns = ""
        with self.cond:
            obj = self.objects[plural].pop((ns or "", name), None)
            if obj is None:
                return None
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = self.next_rv()
            self.record(plural, "DELETED", obj)
            return obj


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"

    def log_message(self, fmt, *args):
        pass

    # -- plumbing --
    def access(self, status):
        self.server.fake.log_access(self.command, self.path, status)

    def send_json(self, code, obj, log=True):
        body = json.dumps(obj).encode()
        gz = len(body) > 16384 and "gzip" in self.headers.get("Accept-Encoding", "")
        if gz:
            # As the real API server does for large responses when the client accepts it.
            body = gzip.compress(body, 1)
            self.server.fake.gzipped += 1
        self.send_response(code)
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if log:
            self.access(code)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        return json.loads(data) if data else None

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        fake = self.server.fake
        st = fake.state
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        parts = [p for p in u.path.split("/") if p]
        try:
            if parts[:1] == ["_control"]:
                return self.control(parts[1:], q)
            fake.requests += 1
            cert = None
            if hasattr(self.connection, "getpeercert"):
                cert = self.connection.getpeercert()
            if cert:
                cn = [v for rdn in cert.get("subject", ()) for (k, v) in rdn if k == "commonName"]
                fake.client_certs.append(cn[0] if cn else "")
            if st.tokens is not None:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in st.tokens:
                    return self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
            with st.cond:
                delay = st.delay_ms
                fail = None
                for f in st.fail:
                    if f["count"] > 0 and f.get("match", "") in self.path:
                        f["count"] -= 1
                        fail = f["status"]
                        break
            if delay:
                time.sleep(delay / 1000.0)
            if fail:
                if self.command in ("POST", "PUT", "PATCH"):
                    self.read_body()
                hdrs = {"Retry-After": "1"} if fail == 429 else {}
                body = json.dumps(status_obj(fail, "InternalError", "injected failure")).encode()
                self.send_response(fail)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return self.access(fail)
            return self.api(parts, q)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- API --
    def parse_api(self, parts):
        """-> (plural, ns, name, sub) or None."""
        if parts[:2] == ["api", "v1"]:
            rest, group, version = parts[2:], "", "v1"
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            rest, group, version = parts[3:], parts[1], parts[2]
        else:
            return None
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            ns, rest = rest[1], rest[2:]
        if not rest:
            return None
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        info = RESOURCES.get(plural)
        if not info or info[0] != group or info[1] != version:
            return None
        return plural, ns, name, sub

    def api(self, parts, q):
        st = self.server.fake.state
        p = self.parse_api(parts)
        if p is None or p[0] in st.uninstalled:
            if self.command in ("POST", "PUT", "PATCH"):
                self.read_body()
            return self.send_json(404, status_obj(404, "NotFound", "the server could not find "
                                                  "the requested resource"))
        plural, ns, name, sub = p
        if name is None:
            if self.command == "GET":
                if q.get("watch") in ("1", "true"):
                    return self.watch(plural, ns, q)
                return self.list(plural, ns, q)
            if self.command == "POST":
                return self.create(plural, ns, self.read_body())
        else:
            if self.command == "GET" and not sub:
                with st.cond:
                    obj = st.objects[plural].get((ns or "", name))
                if obj is None:
                    return self.send_json(404, status_obj(404, "NotFound",
                                                          f'{plural} "{name}" not found'))
                return self.send_json(200, obj)
            if self.command in ("PUT", "PATCH"):
                return self.update(plural, ns, name, sub, self.read_body())
            if self.command == "DELETE":
                obj = st.delete(RESOURCES[plural][2], ns, name)
                return self.send_json(200 if obj else 404, obj or status_obj(404, "NotFound", ""))
        return self.send_json(405, status_obj(405, "MethodNotAllowed", "not supported"))

    def list(self, plural, ns, q):
        st = self.server.fake.state
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        with st.cond:
            if cont:
                try:
                    c = json.loads(base64.b64decode(cont))
                except Exception:
                    return self.send_json(400, status_obj(400, "BadRequest", "bad continue"))
                if int(c["rv"]) < st.min_rv:
                    return self.send_json(410, status_obj(410, "Expired",
                                                          "continue token expired"))
                list_rv, after = c["rv"], tuple(c["after"])
            else:
                list_rv, after = str(st.rv), None
            keys = sorted(k for k in st.objects[plural] if ns is None or k[0] == ns)
            if after is not None:
                keys = [k for k in keys if k > after]
            more = limit > 0 and len(keys) > limit
            if limit > 0:
                keys = keys[:limit]
            items = []
            for k in keys:
                o = copy.deepcopy(st.objects[plural][k])
                # Lists of built-in kinds carry no kind/apiVersion per item.
                o.pop("kind", None)
                o.pop("apiVersion", None)
                items.append(o)
        md = {"resourceVersion": list_rv}
        if more:
            md["continue"] = base64.b64encode(json.dumps(
                {"rv": list_rv, "after": list(keys[-1])}).encode()).decode()
        self.server.fake.lists += 1
        self.send_json(200, {"kind": RESOURCES[plural][2] + "List",
                             "apiVersion": api_version(plural), "metadata": md, "items": items})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, plural, ns, q):
        fake = self.server.fake
        st = fake.state
        rv = q.get("resourceVersion") or "0"
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        with st.cond:
            try:
                since = int(rv)
            except ValueError:
                since = 0
            expired = since != 0 and since < st.min_rv
            if expired and st.gone_as_http:
                return self.send_json(410, status_obj(410, "Expired", "too old resource version"))
            cut_gen = st.cut_gen
            st.watchers += 1
            fake.watches += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.access(200)
        sent_bookmark = time.monotonic()
        try:
            if expired:
                ev = {"type": "ERROR", "object": status_obj(
                    410, "Expired", f"too old resource version: {since} ({st.min_rv})")}
                self.chunk(json.dumps(ev).encode() + b"\n")
                self.chunk(b"")
                return
            pending = []
            with st.cond:
                if since == 0:
                    for o in sorted(st.objects[plural].values(),
                                    key=lambda o: (o["metadata"].get("namespace", ""),
                                                   o["metadata"]["name"])):
                        if ns is None or o["metadata"].get("namespace") == ns:
                            pending.append(("ADDED", copy.deepcopy(o)))
                    since = st.rv
            pos = 0
            while True:
                with st.cond:
                    if st.cut_gen != cut_gen or fake.stopping:
                        # Cut without the terminating chunk: the client sees a broken stream.
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    # history is append-only between trims; find new events for us.
                    if pos > len(st.history):
                        pos = 0
                    for (erv, epl, typ, obj) in st.history[pos:]:
                        if erv > since and epl == plural and (
                                ns is None or obj["metadata"].get("namespace") == ns):
                            pending.append((typ, obj))
                            since = erv
                    pos = len(st.history)
                    # Everything up to here has been scanned: a bookmark may claim it. (Not
                    # st.rv after the wait: events added meanwhile are not scanned yet.)
                    cur_rv = st.rv
                    if not pending:
                        now = time.monotonic()
                        if now >= deadline:
                            break
                        st.cond.wait(min(0.2, deadline - now))
                for typ, obj in pending:
                    self.chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")
                    fake.events_sent += 1
                pending = []
                if bookmarks and time.monotonic() - sent_bookmark >= st.bookmark_s:
                    sent_bookmark = time.monotonic()
                    since = max(since, cur_rv)
                    bm = {"type": "BOOKMARK", "object": {
                        "kind": RESOURCES[plural][2], "apiVersion": api_version(plural),
                        "metadata": {"resourceVersion": str(since)}}}
                    self.chunk(json.dumps(bm).encode() + b"\n")
                    fake.bookmarks_sent += 1
            self.chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with st.cond:
                st.watchers -= 1

    def create(self, plural, ns, body):
        st = self.server.fake.state
        if not isinstance(body, dict) or "metadata" not in body:
            return self.send_json(400, status_obj(400, "BadRequest", "no object"))
        body["kind"] = RESOURCES[plural][2]
        if ns:
            body["metadata"]["namespace"] = ns
        name = body["metadata"].get("name")
        with st.cond:
            if (ns or "", name) in st.objects[plural]:
                return self.send_json(409, status_obj(409, "AlreadyExists",
                                                      f'{plural} "{name}" already exists'))
            obj = st.put(body)
        self.server.fake.writes.append(("POST", plural, ns, name, copy.deepcopy(body)))
        return self.send_json(201, obj)

    def update(self, plural, ns, name, sub, body):
        st = self.server.fake.state
        with st.cond:
            cur = st.objects[plural].get((ns or "", name))
            if cur is None:
                return self.send_json(404, status_obj(404, "NotFound",
                                                      f'{plural} "{name}" not found'))
            if self.command == "PUT":
                want = (body or {}).get("metadata", {}).get("resourceVersion")
                if want and want != cur["metadata"]["resourceVersion"]:
                    return self.send_json(409, status_obj(
                        409, "Conflict", "the object has been modified; please apply your "
                        "changes to the latest version and try again"))
                new = copy.deepcopy(body)
                if sub == "status":
                    new = copy.deepcopy(cur)
                    new["status"] = body.get("status")
                new["kind"] = RESOURCES[plural][2]
                new.setdefault("metadata", {})["namespace"] = cur["metadata"].get("namespace")
                new["metadata"]["name"] = name
                new["metadata"]["uid"] = cur["metadata"]["uid"]
            else:
                new = merge_patch(copy.deepcopy(cur), body or {})
                if sub == "status":
                    keep = copy.deepcopy(cur)
                    keep["status"] = new.get("status")
                    new = keep
            obj = st.put(new)
        self.server.fake.writes.append((self.command, plural, ns, name + ("/" + sub if sub else ""),
                                        copy.deepcopy(body)))
        return self.send_json(200, obj)

    # -- control --
    def control(self, parts, q):
        fake = self.server.fake
        st = fake.state
        body = self.read_body() if self.command in ("POST", "PUT") else None
        what = parts[0] if parts else ""
        if what == "apply":
            objs = body if isinstance(body, list) else body.get("items", [body]) \
                if body.get("kind") == "List" else [body]
            out = [st.put(o) for o in objs]
            return self.send_json(200, out, log=False)
        if what == "delete":
            obj = st.delete(body["kind"], body.get("namespace", ""), body["name"])
            return self.send_json(200 if obj else 404, obj or {}, log=False)
        if what == "cut":
            fake.cut_watches()
            return self.send_json(200, {}, log=False)
        if what == "fail":
            fake.fail_next(body.get("count", 1), body.get("status", 500), body.get("match", ""))
            return self.send_json(200, {}, log=False)
        if what == "delay":
            st.delay_ms = int(body.get("ms", 0))
            return self.send_json(200, {}, log=False)
        if what == "expire":
            fake.expire(body.get("http", False) if body else False)
            return self.send_json(200, {}, log=False)
        if what == "crd":
            fake.set_crd(body["plural"], body.get("installed", True))
            return self.send_json(200, {}, log=False)
        if what == "tokens":
            st.tokens = set(body["tokens"]) if body.get("tokens") is not None else None
            return self.send_json(200, {}, log=False)
        if what == "events":
            return self.send_json(200, fake.list_objects("Event"), log=False)
        if what == "leases":
            return self.send_json(200, fake.list_objects("Lease"), log=False)
        if what == "objects":
            return self.send_json(200, fake.list_objects(q.get("kind", "")), log=False)
        if what == "writes":
            return self.send_json(200, fake.writes, log=False)
        if what == "watchers":
            return self.send_json(200, {"watchers": st.watchers, "watches": fake.watches,
                                        "lists": fake.lists, "requests": fake.requests},
                                  log=False)
        return self.send_json(404, {}, log=False)


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # clients open many connections at once (Events, status)

    def __init__(self, addr, fake, sslctx=None):
        self.fake = fake
        self.sslctx = sslctx
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.sslctx:
            # Handshake in the handler thread (first read), not in the accept loop.
            sock = self.sslctx.wrap_socket(sock, server_side=True,
                                           do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass


class FakeApiServer:
    """In-process fake: start() then use the methods below from the test."""

    def __init__(self, token=None, access_log=None, host="127.0.0.1", tls_cert=None,
                 tls_key=None, client_ca=None):
        self.state = State()
        if token:
            self.state.tokens = {token}
        self.access_log = access_log or os.environ.get("KUBE_FAKE_ACCESS_LOG")
        self.log_lock = threading.Lock()
        self.host = host
        self.stopping = False
        self.requests = self.lists = self.watches = self.events_sent = self.bookmarks_sent = 0
        self.writes = []
        self.gzipped = 0  # responses sent gzip-encoded
        self.client_certs = []  # common names of client certificates seen
        sslctx = None
        if tls_cert:
            sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            sslctx.load_cert_chain(tls_cert, tls_key)
            if client_ca:
                sslctx.load_verify_locations(client_ca)
                sslctx.verify_mode = ssl.CERT_OPTIONAL
        self.tls = sslctx is not None
        self.httpd = Server((host, 0), self, sslctx)
        self.port = self.httpd.server_address[1]
        self.thread = None

    @property
    def url(self):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{h}:{self.port}"

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        with self.state.cond:
            self.state.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def log_access(self, method, path, status):
        if not self.access_log:
            return
        with self.log_lock, open(self.access_log, "a") as f:
            f.write(f"{method} {path} {status}\n")

    # -- test API --
    def apply(self, obj):
        return self.state.put(obj)

    def delete(self, kind, ns, name):
        return self.state.delete(kind, ns, name)

    def get(self, kind, ns, name):
        plural = KIND_TO_PLURAL[kind]
        with self.state.cond:
            o = self.state.objects[plural].get((ns or "" if RESOURCES[plural][3] else "", name))
            return copy.deepcopy(o)

    def list_objects(self, kind):
        plural = KIND_TO_PLURAL.get(kind)
        if not plural:
            return []
        with self.state.cond:
            return [copy.deepcopy(o) for _, o in sorted(self.state.objects[plural].items())]

    def cut_watches(self):
        with self.state.cond:
            self.state.cut_gen += 1
            self.state.cond.notify_all()

    def fail_next(self, count, status=500, match=""):
        with self.state.cond:
            self.state.fail.append({"count": count, "status": status, "match": match})

    def expire(self, as_http=False):
        """Every resourceVersion seen so far is too old: watches from them get 410."""
        with self.state.cond:
            self.state.min_rv = self.state.rv + 1
            self.state.next_rv()
            self.state.gone_as_http = as_http
            self.state.cut_gen += 1
            self.state.cond.notify_all()

    def set_crd(self, plural, installed):
        with self.state.cond:
            if installed:
                self.state.uninstalled.discard(plural)
            else:
                self.state.uninstalled.add(plural)
            self.state.cut_gen += 1
            self.state.cond.notify_all()

    def set_tokens(self, tokens):
        with self.state.cond:
            self.state.tokens = set(tokens) if tokens is not None else None

    def watchers(self):
        with self.state.cond:
            return self.state.watchers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--token")
    ap.add_argument("--access-log")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    ap.add_argument("--objects", help="JSON or YAML file of objects to start with")
    a = ap.parse_args()
    fake = FakeApiServer(token=a.token, access_log=a.access_log, host=a.host,
                         tls_cert=a.tls_cert, tls_key=a.tls_key, client_ca=a.client_ca)
    if a.objects:
        with open(a.objects) as f:
            text = f.read()
        try:
            docs = [json.loads(text)]
        except ValueError:
            import yaml
            docs = list(yaml.safe_load_all(text))
        for d in docs:
            if not d:
                continue
            for o in (d if isinstance(d, list) else d.get("items", [d]) if d.get("kind") == "List"
                      else [d]):
                fake.apply(o)
    fake.start()
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(fake.port))
        os.rename(tmp, a.port_file)
    print(fake.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    fake.stop()


if __name__ == "__main__":
    main()
