#!/usr/bin/env python3
"""fake_twilio.py plus what the reliability scripts need (loopback only):

- a response delay (`--delay S`, as a real API takes), so several sends are in flight at a kill;
- the list endpoint `GET …/Messages.json?To=…` answered from the recorded creates (newest first, with
  `date_created`), so the outbox can reconcile a send whose answer it never saw;
- an outage switched on by `POST /control/outage?seconds=N`: until it ends, every API request gets the next
  fault of `--modes`, in turn:
    500    HTTP 500, message not created
    500c   HTTP 500 after the message was created (Twilio may fail after creating)
    429    HTTP 429 code 20429 with `Retry-After: --retry-after`, not created
    hang   no answer for `--hang` seconds (past the client's timeout), then the connection closes; not created
    hangc  the same, but the message was created first (the answer was lost)
  (a list request that gets a `…c` fault is simply answered with the same failure);
- `GET /records`: every create (time, To, sid, body) and every API request (time, end time, method, To, result).

It reuses fake_twilio.py's handler (its create, its /stats) unchanged: that file is loaded without its last
statement, the one that starts its server.
"""
import argparse, ast, itertools, json, os, sys, threading, time
from email.utils import formatdate
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def load_base():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_twilio.py")
    tree = ast.parse(open(path).read(), path)
    tree.body = [node for node in tree.body if not (isinstance(node, ast.Expr) and "serve_forever" in ast.unparse(node))]
    namespace = {"__name__": "fake_twilio", "__file__": path}
    exec(compile(tree, path, "exec"), namespace)
    return namespace


base = load_base()
args = argparse.ArgumentParser()
args.add_argument("port", type=int)
args.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
args.add_argument("--modes", default="500,429,hang,500c,hangc", help="faults during an outage, used in turn")
args.add_argument("--retry-after", default="3", help="Retry-After header of a 429")
args.add_argument("--hang", type=float, default=20.0, help="seconds a hung request is held (the server's client times out at 15 s)")
opts = args.parse_args()

lock = threading.Lock()
creates = []  # {"t", "to", "sid", "body"}
requests = []  # {"t", "end", "method", "to", "result"}
outage = {"start": 0.0, "until": 0.0}
faults = itertools.cycle(opts.modes.split(","))
T0 = time.monotonic()


def now():
    return round(time.monotonic() - T0, 4)


def next_fault():
    with lock:
        if now() < outage["until"]:
            return next(faults)
    return None


class Handler(base["Handler"]):
    def setup(self):
        super().setup()
        self.captured = None
        self.swallow = False

    def reply(self, status, body):
        if status == 201 and "sid" in body:  # a create by the base handler: keep it, with what the list needs
            body.setdefault("from", "+15005550006")
            body["date_created"] = formatdate(usegmt=False).replace("-0000", "+0000")
            with lock:
                creates.append({"t": now(), "to": body["to"], "sid": body["sid"], "body": body["body"], "date_created": body["date_created"]})
            self.captured = body
        if not self.swallow:
            super().reply(status, body)

    def log(self, t, method, to, result):
        with lock:
            requests.append({"t": t, "end": now(), "method": method, "to": to, "result": result})

    def fail(self, fault):
        if fault.startswith("hang"):
            time.sleep(opts.hang)
            self.close_connection = True
            return
        if fault.startswith("500"):
            super().reply(500, {"code": 20500, "message": "Internal Server Error (fake outage)", "status": 500})
        else:
            data = json.dumps({"code": 20429, "message": "Too Many Requests (fake outage)", "status": 429}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", opts.retry_after)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def do_POST(self):
        t = now()
        url = urlsplit(self.path)
        if url.path == "/control/outage":
            seconds = float(parse_qs(url.query).get("seconds", ["60"])[0])
            with lock:
                outage["start"], outage["until"] = now(), now() + seconds
            return super().reply(200, dict(outage))
        fault = next_fault()
        if opts.delay:
            time.sleep(opts.delay)
        if fault in (None, "500c", "hangc"):
            self.swallow = fault is not None
            super().do_POST()  # the base handler: records the create (and its /stats arrival) and answers 201
            to = (self.captured or {}).get("to", "")
            if fault:
                self.fail(fault)
            return self.log(t, "POST", to, fault or "201")
        length = int(self.headers.get("Content-Length", 0))
        to = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).get("To", [""])[0]
        self.fail(fault)
        self.log(t, "POST", to, fault)

    def do_GET(self):
        t = now()
        url = urlsplit(self.path)
        if url.path == "/records":
            with lock:
                data = {"creates": list(creates), "requests": list(requests), "outage": dict(outage), "now": now()}
            return super().reply(200, data)
        if url.path.endswith("/Messages.json"):
            query = parse_qs(url.query)
            to = query.get("To", [""])[0]
            fault = next_fault()
            if opts.delay:
                time.sleep(opts.delay)
            if fault:
                self.fail(fault)
                return self.log(t, "GET", to, fault)
            with lock:
                found = [c for c in creates if c["to"] == to]
            page = [{"sid": c["sid"], "status": "sent", "to": c["to"], "from": "+15005550006", "body": c["body"], "num_segments": "1",
                     "error_code": None, "error_message": None, "date_created": c["date_created"]} for c in reversed(found)]
            super().reply(200, {"messages": page[: int(query.get("PageSize", ["50"])[0])]})
            return self.log(t, "GET", to, "200")
        super().do_GET()


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up (a killed server): not news
            super().handle_error(request, client_address)


Server(("127.0.0.1", opts.port), Handler).serve_forever()
