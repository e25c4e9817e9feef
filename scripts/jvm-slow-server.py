"""A slow HTTP server for the JVM stages (scripts/test.d/40-jvm-examples.sh, 45-jvm-recipes.sh):
GET|POST /slow?seconds=D answers after D seconds (at most 30; POST: after reading the body).
Listens on 127.0.0.1, an ephemeral port; prints the port, then serves until killed."""
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

class Slow(BaseHTTPRequestHandler):
    # HTTP/1.1 (Content-Length on every answer): clients keep the connection open and pooled,
    # so a test can read its socket back after the answer.
    protocol_version = "HTTP/1.1"
    timeout = 30  # no read waits forever
    def log_message(self, *args):
        pass
    def _answer(self):
        seconds = min(float(parse_qs(urlsplit(self.path).query).get("seconds", ["0"])[0]), 30.0)
        time.sleep(seconds)
        body = f"slept {seconds:g} seconds\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._answer()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()

server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
