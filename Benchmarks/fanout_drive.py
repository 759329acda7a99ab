"""Drives Benchmarks/run-fanout.sh and run-delete.sh while other phones text HELP one after another: the admin logs
in, broadcasts and confirms (`broadcast`), or a member registers and deletes their account, whose erasure of the
admin's rows that name them follows (`delete`, which watches DB_FILE for the end of it).
Usage: fanout_drive.py PORT DEV_TOKEN_FILE [broadcast | delete DB_FILE FIRST LAST] (local mode: signed with the
development token)."""
import base64, hashlib, hmac, http.client, sqlite3, sys, threading, time, urllib.parse, uuid

port = int(sys.argv[1])
token = open(sys.argv[2]).read().strip()
mode = sys.argv[3] if len(sys.argv) > 3 else "broadcast"
url = f"http://127.0.0.1:{port}/sms"


def post(sender, body):
    """One signed webhook; returns (status, milliseconds, body)."""
    p = {"AccountSid": "AC" + "0" * 32, "From": sender, "To": "+15005550006", "Body": body, "MessageSid": "SM" + uuid.uuid4().hex}
    signed = url + "".join(k + p[k] for k in sorted(p))
    signature = base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.monotonic()
    conn.request("POST", "/sms", urllib.parse.urlencode(p), {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    reply = conn.getresponse()
    text = reply.read().decode()
    return reply.status, (time.monotonic() - start) * 1000, text


latencies, stop = [], threading.Event()


def others():
    i = 0
    while not stop.is_set():
        latencies.append(post("+1415555%04d" % (i % 1000), "HELP")[1])
        i += 1


def report(window):
    stop.set()
    thread.join()
    latencies.sort()
    n = len(latencies)
    print(f"other webhooks {window}: n={n} p50_ms={latencies[n // 2]:.1f} p99_ms={latencies[int(n * 0.99)]:.1f} max_ms={latencies[-1]:.1f}")


thread = threading.Thread(target=others)
if mode == "broadcast":
    assert post("+14155550199", "LOGIN red-square-1917")[0] == 200
    status, ms, _ = post("+14155550199", "BROADCAST Harvest at dawn")
    print(f"BROADCAST (the confirmation, with the recipient count): {status} in {ms:.1f} ms")
    thread.start()
    time.sleep(0.2)
    status, ms, text = post("+14155550199", "YES")
    print(f"YES: {status} in {ms:.1f} ms: {text[text.find('Broadcast'):text.find('</Message>')]}")
    time.sleep(4)
    report("from 0.2 s before the YES to 4 s after")
elif mode == "delete" and len(sys.argv) == 7:
    for text in ["JOIN", sys.argv[5], sys.argv[6], "boris@example.org", "hammer-sickle-9", "hammer-sickle-9", "DELETE"]:
        assert post("+14155550102", text)[0] == 200
    db = sqlite3.connect(f"file:{sys.argv[4]}?mode=ro", uri=True)
    thread.start()
    time.sleep(0.2)
    status, ms, text = post("+14155550102", "YES")
    start = time.monotonic()
    print(f"YES: {status} in {ms:.1f} ms: {text[text.find('<Message>') + 9:text.find('</Message>')][:60]}…")
    while db.execute("SELECT count(*) FROM erasures").fetchone()[0] > 0 and time.monotonic() - start < 60:
        time.sleep(0.005)
    print(f"the admin's rows that named him erased {(time.monotonic() - start) * 1000:.0f} ms after the YES was answered")
    time.sleep(1)
    report("from 0.2 s before the YES to 1 s after the erasure")
else:
    sys.exit(__doc__)
