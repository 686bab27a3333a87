#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of an S3 server, for tests. Loopback only, bounded.

    fault_proxy.py --listen-port P --upstream-port U [--max-seconds 600] [--plan cut,503,ok]

Requests are forwarded to 127.0.0.1:U with their Host header untouched (it is signed).
What happens to a reply depends on the object key in the path:
  * keys containing "always-503": every request gets 503 SlowDown (the retry budget must
    run out and the error must quote the server);
  * keys containing "stall-forever": headers and a few body bytes, then silence until the
    client gives up (tests cancellation and timeouts; bounded by --stall-seconds);
  * other GETs with a Range header follow --plan in turn, cycling:
      cut   - send half of the body (of the promised Content-Length), then drop the connection
      503   - 503 SlowDown without forwarding
      500   - 500 InternalError
      stall - send headers and a quarter of the body, then stall --stall-seconds
      ok    - forward faithfully
  * everything else (HEAD, listings) is forwarded faithfully.
Prints "READY <port>" when listening. Exits after --max-seconds whatever happens.
"""
import argparse
import http.client
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error>"
)


class Proxy(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, args):
        super().__init__(("127.0.0.1", args.listen_port), Handler)
        self.args = args
        self.plan = args.plan.split(",")
        self.counter = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def next_action(self):
        with self.lock:
            action = self.plan[self.counter % len(self.plan)]
            self.counter += 1
            return action


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def send_error_xml(self, status, code, message):
        body = ERROR_XML.format(code=code, message=message).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def stall(self):
        deadline = time.monotonic() + self.server.args.stall_seconds
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            time.sleep(0.05)
        self.close_connection = True

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection("127.0.0.1", self.server.args.upstream_port, timeout=60)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        return conn, conn.getresponse()

    def relay(self, action):
        conn, resp = self.forward()
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
            self.wfile.write(data)
            self.wfile.flush()
        finally:
            conn.close()

    def handle_any(self):
        path = self.path
        if "always-503" in path:
            return self.send_error_xml(503, "SlowDown", "Please reduce your request rate.")
        if "stall-forever" in path and self.command == "GET":
            self.send_response(206)
            self.send_header("Content-Length", "1000000")
            self.send_header("Content-Range", "bytes 0-999999/1000000")
            self.end_headers()
            self.wfile.write(b"\0" * 10)
            self.wfile.flush()
            return self.stall()
        action = "ok"
        if self.command == "GET" and "Range" in self.headers:
            action = self.server.next_action()
        if action == "503":
            return self.send_error_xml(503, "SlowDown", "Please reduce your request rate.")
        if action == "500":
            return self.send_error_xml(500, "InternalError", "We encountered an internal error.")
        return self.relay(action)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--plan", default="cut,503,ok,stall,500,cut,ok")
    parser.add_argument("--stall-seconds", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    server = Proxy(args)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {args.listen_port}", flush=True)
    time.sleep(args.max_seconds)  # bounded: the proxy never outlives its test run
    server.stopping.set()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
