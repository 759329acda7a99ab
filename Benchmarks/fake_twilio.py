#!/usr/bin/env python3
"""A minimal local stand-in for Twilio's Messages API, for the broadcast benchmark (loopback only).

POST /2010-04-01/Accounts/{sid}/Messages.json -> 201 with a message resource; every create is recorded.
GET  /stats -> JSON: creates, unique recipients, duplicates, first/last arrival times and the achieved rate.
"""
import json, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

lock = threading.Lock()
arrivals = []  # (monotonic time, To)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # otherwise headers and body wait on delayed ACKs (40 ms a request)

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        fields = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        to = fields.get("To", [""])[0]
        with lock:
            arrivals.append((time.monotonic(), to))
        self.reply(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued", "to": to, "body": fields.get("Body", [""])[0],
                         "num_segments": "1", "error_code": None, "error_message": None})

    def do_GET(self):
        if self.path.startswith("/stats"):
            with lock:
                times = [t for t, _ in arrivals]
                tos = [to for _, to in arrivals]
            span = (times[-1] - times[0]) if len(times) > 1 else 0
            self.reply(200, {"creates": len(tos), "unique": len(set(tos)), "duplicates": len(tos) - len(set(tos)),
                             "span_s": round(span, 3), "rate": round((len(times) - 1) / span, 1) if span else 0})
        else:
            self.reply(200, {"messages": []})


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
