#!/usr/bin/python3
"""A slow notification receiver for the benchmarks: every POST is answered
204 after DELAY seconds (one thread per connection), and counted;
GET /count answers the number of POSTs answered so far.

    python3 bench/receiver.py PORT DELAY
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
answered = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

    def do_POST(self):
        global answered
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(DELAY)
        with lock:
            answered += 1
        self.send_response(204)
        self.end_headers()

    def do_GET(self):
        with lock:
            body = str(answered).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


DELAY = float(sys.argv[2])
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
