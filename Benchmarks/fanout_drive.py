"""Drives Benchmarks/run-fanout.sh: the admin logs in, broadcasts and confirms, while other phones text HELP.
Usage: fanout_drive.py PORT DEV_TOKEN_FILE (local mode: signed with the development token)."""
import base64, hashlib, hmac, http.client, sys, threading, time, urllib.parse, uuid

port = int(sys.argv[1])
token = open(sys.argv[2]).read().strip()
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


assert post("+14155550199", "LOGIN red-square-1917")[0] == 200
status, ms, _ = post("+14155550199", "BROADCAST Harvest at dawn")
print(f"BROADCAST (the confirmation, with the recipient count): {status} in {ms:.1f} ms")
latencies, stop = [], threading.Event()


def others():
    i = 0
    while not stop.is_set():
        latencies.append(post("+1415555%04d" % (i % 1000), "HELP")[1])
        i += 1


thread = threading.Thread(target=others)
thread.start()
time.sleep(0.2)
status, ms, text = post("+14155550199", "YES")
print(f"YES: {status} in {ms:.1f} ms: {text[text.find('Broadcast'):text.find('</Message>')]}")
time.sleep(4)
stop.set()
thread.join()
latencies.sort()
n = len(latencies)
print(f"other webhooks from 0.2 s before the YES to 4 s after: n={n} p50_ms={latencies[n // 2]:.1f} p99_ms={latencies[int(n * 0.99)]:.1f} max_ms={latencies[-1]:.1f}")
