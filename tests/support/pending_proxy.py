#!/usr/bin/env python3
"""An HTTP proxy in front of moto that makes new instances boot slowly.

moto reports an instance `running` as soon as it is created. For SECONDS after
each RunInstances, this proxy rewrites every `running` in DescribeInstances
answers to `pending` (state code 0), as a real cloud reports a booting VM.
Requests pass through unchanged, Host header included, so their SigV4
signatures still verify at moto. `GET /pending-answers` says how many answers
it rewrote.

  pending_proxy.py PORT UPSTREAM_URL SECONDS
"""
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM, SECONDS = int(sys.argv[1]), sys.argv[2].rstrip("/"), float(sys.argv[3])
lock = threading.Lock()
last_run = [0.0]
rewritten = [0]
RUNNING = re.compile(rb"<code>16</code>(\s*)<name>running</name>")


class Proxy(BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(rewritten[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        request = urllib.request.Request(UPSTREAM + self.path, data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read()
        with lock:
            if b"Action=RunInstances" in body and status == 200:
                last_run[0] = time.monotonic()
            elif (b"Action=DescribeInstances" in body
                  and time.monotonic() - last_run[0] < SECONDS
                  and RUNNING.search(answer)):
                answer = RUNNING.sub(rb"<code>0</code>\1<name>pending</name>", answer)
                rewritten[0] += 1
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Proxy).serve_forever()
