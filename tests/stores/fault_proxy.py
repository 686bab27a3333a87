#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of an object store, for tests. Loopback only, bounded.

    fault_proxy.py --upstream-port U [--listen-port P] [--flavor s3|gcs|azure]
                   [--plan cut,503,ok] [--require-authorization VALUE --token T]
                   [--rate BYTES_PER_SECOND] [--faults-after N] [--max-seconds 600]
                   [--tls-cert CERT.pem --tls-key KEY.pem]

Requests are forwarded to 127.0.0.1:U with their Host header untouched (S3 signs it).
What happens to a reply depends on the object name in the path:
  * names containing "always-503": every request gets 503 (the retry budget must run out
    and the error must quote the server);
  * names containing "stall-forever": headers and a few body bytes, then silence until
    the client gives up (tests cancellation and timeouts; bounded by --stall-seconds);
  * other GETs with a Range header follow --plan in turn, cycling:
      cut   - send half of the body (of the promised Content-Length), then drop the connection
      503   - 503 without forwarding
      429   - 429 Too Many Requests without forwarding
      500   - 500 without forwarding
      stall - send headers and a quarter of the body, then stall --stall-seconds
      ok    - forward faithfully
    With --faults-after N, the first N ranged GETs are forwarded faithfully (the reads
    of a header succeed) and the ones after them follow --plan.
  * everything else (HEAD, metadata, listings) is forwarded faithfully.
Error bodies are in the store's own format (--flavor): S3 and Azure XML, GCS JSON.

With --require-authorization, a request whose Authorization header is not exactly VALUE
gets 401 (no header) or 403 (another one), as a real store does; with --token T the proxy
also serves a token endpoint at POST /token that hands out T (an OAuth2 reply), so
that a credential chain can be tested end to end against an emulator that checks nothing.

Counting: GET /__fault_proxy/stats answers {"requests", "range_requests", "body_bytes",
"peak_connections"}: the requests relayed so far, how many were ranged GETs, the bytes of
the bodies the proxy sent for those (what readers pulled from storage, seen from the
server's side), and the most client connections open at once.
--rate caps each connection's body bandwidth (bytes per second), as a model of a host
whose network, not its storage, is the bottleneck.

With --tls-cert and --tls-key the proxy speaks HTTPS to its clients (the upstream stays
plain HTTP): a TLS endpoint on loopback for the tests of certificate verification.

Prints "READY <port>" when listening (--listen-port 0, the default, picks a free port).
Exits after --max-seconds whatever happens.
"""
import argparse
import http.client
import json
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

XML_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error>"
)
ERRORS = {  # status: (code, message)
    401: ("Unauthorized", "Anonymous caller does not have storage.objects.get access."),
    403: ("AccessDenied", "Access denied by the fault proxy's authorization check."),
    429: ("TooManyRequests", "The rate of requests is too high."),
    500: ("InternalError", "We encountered an internal error."),
    503: ("SlowDown", "Please reduce your request rate."),
}


class Proxy(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog: many ranks open their connections at once

    def __init__(self, args):
        super().__init__(("127.0.0.1", args.listen_port), Handler)
        if args.tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(args.tls_cert, args.tls_key)
            # The handshake then happens at the first read, in the connection's own
            # thread, so a client that refuses the certificate never blocks accepting.
            self.socket = context.wrap_socket(self.socket, server_side=True,
                                              do_handshake_on_connect=False)
        self.args = args
        self.plan = args.plan.split(",")
        self.counter = 0
        self.requests = self.range_requests = self.body_bytes = self.ranged_arrived = 0
        self.connections = self.peak_connections = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def handle_error(self, request, client_address):
        """A client that hangs up mid-reply (a cancelled read, a timeout) or refuses the
        certificate is normal here."""
        if not isinstance(sys.exc_info()[1],
                          (BrokenPipeError, ConnectionResetError, ssl.SSLError)):
            super().handle_error(request, client_address)

    def count(self, ranged: bool, body_bytes: int) -> None:
        with self.lock:
            self.requests += 1
            self.range_requests += int(ranged)
            self.body_bytes += body_bytes if ranged else 0

    def count_ranged(self) -> int:
        """Counts a ranged GET as it arrives; returns how many arrived so far."""
        with self.lock:
            self.ranged_arrived += 1
            return self.ranged_arrived

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "range_requests": self.range_requests,
                    "body_bytes": self.body_bytes, "peak_connections": self.peak_connections}

    def connected(self, change: int) -> None:
        with self.lock:
            self.connections += change
            self.peak_connections = max(self.peak_connections, self.connections)

    def next_action(self):
        with self.lock:
            action = self.plan[self.counter % len(self.plan)]
            self.counter += 1
            return action


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def setup(self):
        super().setup()
        self.server.connected(+1)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.connected(-1)

    def send_body(self, status, content_type, body: bytes, reason=None):
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_store_error(self, status):
        code, message = ERRORS[status]
        if self.server.args.flavor == "gcs":
            body = json.dumps({"error": {"code": status, "message": message,
                                         "errors": [{"reason": code, "message": message}]}})
            return self.send_body(status, "application/json", body.encode())
        body = XML_ERROR.format(code=code, message=message)
        return self.send_body(status, "application/xml", body.encode())

    def stall(self):
        deadline = time.monotonic() + self.server.args.stall_seconds
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            time.sleep(0.05)
        self.close_connection = True

    def forward(self, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.args.upstream_port, timeout=60)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        return conn, conn.getresponse()

    def relay(self, action, body):
        conn, resp = self.forward(body)
        try:
            data = resp.read()
            self.send_response(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            if self.command == "HEAD":  # no body read: pass the object's length through
                self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if action == "cut" and resp.status == 206 and len(data) > 1:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if action == "stall" and resp.status == 206 and len(data) > 3:
                self.wfile.write(data[: len(data) // 4])
                self.wfile.flush()
                self.stall()
                return
            self.write_paced(data)
            self.server.count(self.command == "GET" and "Range" in self.headers, len(data))
        finally:
            conn.close()

    def write_paced(self, data: bytes) -> None:
        """Writes the body, no faster than --rate bytes per second when it is set."""
        rate = self.server.args.rate
        if not rate:
            self.wfile.write(data)
            self.wfile.flush()
            return
        started, sent, step = time.monotonic(), 0, 64 * 1024
        while sent < len(data):
            self.wfile.write(data[sent:sent + step])
            sent += min(step, len(data) - sent)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        self.wfile.flush()

    def serve_token(self):
        reply = {"access_token": self.server.args.token, "expires_in": 3600,
                 "token_type": "Bearer"}
        return self.send_body(200, "application/json", json.dumps(reply).encode())

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        args = self.server.args
        path = self.path
        if args.token and self.command == "POST" and path == "/token":
            return self.serve_token()
        if self.command == "GET" and path == "/__fault_proxy/stats":
            body = json.dumps(self.server.stats()).encode()
            return self.send_body(200, "application/json", body)
        if args.require_authorization is not None:
            given = self.headers.get("Authorization")
            if given != args.require_authorization:
                return self.send_store_error(401 if given is None else 403)
        if "always-503" in path:
            return self.send_store_error(503)
        if "stall-forever" in path and self.command == "GET" and "Range" in self.headers:
            self.send_response(206)
            self.send_header("Content-Length", "1000000")
            self.send_header("Content-Range", "bytes 0-999999/1000000")
            self.end_headers()
            self.wfile.write(b"\0" * 10)
            self.wfile.flush()
            return self.stall()
        action = "ok"
        if self.command == "GET" and "Range" in self.headers \
                and self.server.count_ranged() > args.faults_after:
            action = self.server.next_action()
        if action in ("429", "500", "503"):
            return self.send_store_error(int(action))
        return self.relay(action, body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--flavor", choices=("s3", "gcs", "azure"), default="s3")
    parser.add_argument("--plan", default="cut,503,ok,stall,429,500,cut,ok")
    parser.add_argument("--stall-seconds", type=float, default=20.0)
    parser.add_argument("--require-authorization")
    parser.add_argument("--token")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--faults-after", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    server = Proxy(args)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    time.sleep(args.max_seconds)  # bounded: the proxy never outlives its test run
    server.stopping.set()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
