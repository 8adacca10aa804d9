"""An endless, paced MPEG-TS stream over HTTP on 127.0.0.1, for the hung-stream tests.

    python3 tests/http_stream_server.py FILE.ts BYTES_PER_SECOND

serves FILE.ts over and over to each client at the given byte rate (like a
live camera behind HTTP), and prints ``READY <port>`` once it listens. Only
the standard library: it runs with any Python. SIGSTOP it to simulate a hung
server.
"""

import http.server
import socketserver
import sys
import time


def main() -> int:
    data = open(sys.argv[1], "rb").read()
    rate = float(sys.argv[2])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            start, sent = time.monotonic(), 0
            try:
                while True:
                    for i in range(0, len(data), 188 * 20):
                        chunk = data[i:i + 188 * 20]
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        sent += len(chunk)
                        delay = start + sent / rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
