#!/usr/bin/env python3
"""Helpers for run-crash.sh and run-outage.sh (python3 standard library only, loopback only).

  load             drive signed webhooks (lines of gen_webhooks.py) from many threads until the server dies
  check-webhooks   after a crash and restart: acknowledged webhooks stored, conversations whole, retries idempotent
  snapshot         the outbox as the crash left it (before the restart)
  check-broadcast  after the restart: nothing sent twice, in-flight rows uncertain, the rest sent once
  probe            POST /sms and GET /healthz once a second, with latencies
  check-outage     after an outage: backoff, Retry-After, exactly-once delivery, probes

Every check prints `ok …` or `FAIL …`; the exit status is 1 when any check failed.
"""
import argparse, http.client, json, random, sqlite3, sys, threading, time, urllib.parse, urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timezone

# gen_webhooks.py: sender s is +1415{5000000+s}; line i goes to sender i % senders and walks these steps.
STEPS = ["HELP", "JOIN", "Ivan", "Petrov", "<email>", "RESET", "MESSAGES", "banana"]
# The conversation step each of them leaves (a phone always starts idle, and the walk comes back to idle).
EXPECTED_STEP = ["idle", "askedFirstName", "askedLastName", "askedEmail", "askedPasscode", "idle", "idle", "idle"]
failures = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


def finish():
    print(f"SUMMARY: {'PASS' if not failures else 'FAIL'} ({len(failures)} failed check(s))")
    sys.exit(1 if failures else 0)


def phone(sender):
    return "+1415%07d" % (5000000 + sender)


def read_hooks(path, senders):
    """Per sender, in order: (MessageSid, signature, form body)."""
    per = [[] for _ in range(senders)]
    with open(path) as f:
        for i, line in enumerate(f):
            sig, body = line.rstrip("\n").split("\t", 1)
            per[i % senders].append((urllib.parse.parse_qs(body)["MessageSid"][0], sig, body))
    return per


def db_ro(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    return con


def post_sms(conn, sig, body):
    conn.request("POST", "/sms", body, {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})
    r = conn.getresponse()
    return r.status, r.read().decode()


# ---------------------------------------------------------------- load

def cmd_load(a):
    per = read_hooks(a.hooks, a.senders)
    with db_ro(a.db) as con:
        done = dict(con.execute('SELECT "from", count(*) FROM inbound GROUP BY "from"').fetchall())
    pos = [done.get(phone(s), 0) for s in range(a.senders)]  # continue each phone where its recorded walk ends
    host, port = urllib.parse.urlsplit(a.url).hostname, urllib.parse.urlsplit(a.url).port
    acked, inflight, stats, lock = [], [], Counter(), threading.Lock()
    deadline = time.monotonic() + a.max_seconds

    def worker(t):
        mine = [s for s in range(a.senders) if s % a.threads == t]
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while mine and time.monotonic() < deadline:
            for s in list(mine):
                if pos[s] >= len(per[s]):
                    mine.remove(s)
                    continue
                sid, sig, body = per[s][pos[s]]
                try:
                    status, reply = post_sms(conn, sig, body)
                except (OSError, http.client.HTTPException):
                    with lock:
                        inflight.append(sid)  # may or may not have been stored: never counted as acknowledged
                        stats["connection_errors"] += 1
                    return
                with lock:
                    stats["sent"] += 1
                    if 200 <= status < 300:
                        acked.append({"sid": sid, "from": phone(s), "index": pos[s], "reply": reply, "status": status})
                    else:
                        stats[f"http_{status}"] += 1
                if 200 <= status < 300:
                    pos[s] += 1
                else:
                    time.sleep(0.05)  # not stored: the same webhook again, as Twilio's retry would

    if a.ready:
        open(a.ready, "w").close()  # the webhooks are read: the load starts now
    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    with open(a.acked, "a") as f:
        for r in acked:
            f.write(json.dumps(r) + "\n")
    print(json.dumps({"acknowledged": len(acked), **stats, "in_flight_at_kill": len(inflight),
                      "seconds": round(elapsed, 2), "acks_per_s": round(len(acked) / elapsed) if elapsed else 0}))


# ---------------------------------------------------------------- webhooks after the crash

def conversations(con):
    return {r["phone"]: (r["state"], r["updatedAt"]) for r in con.execute("SELECT phone, state, updatedAt FROM conversations")}


def cmd_check_webhooks(a):
    per = read_hooks(a.hooks, a.senders)
    acked = {}
    with open(a.acked) as f:
        for line in f:
            r = json.loads(line)
            acked[r["sid"]] = r
    con = db_ro(a.db)
    inbound = con.execute('SELECT rowid, messageSid, "from", reply, receivedAt FROM inbound ORDER BY rowid').fetchall()
    by_sid = {r["messageSid"]: r for r in inbound}
    print(f"acknowledged webhooks: {len(acked)}; inbound rows: {len(inbound)}; "
          f"stored but never acknowledged (in flight at a kill): {len(set(by_sid) - set(acked))}")

    missing = [s for s in acked if s not in by_sid]
    check(not missing, f"every acknowledged MessageSid is in inbound ({len(acked)})", f"{len(missing)} missing, e.g. {missing[:5]}")
    differ = [s for s, r in acked.items() if s in by_sid and by_sid[s]["reply"] != r["reply"]]
    check(not differ, "the stored reply of each is the TwiML that was answered", f"{len(differ)} differ, e.g. {differ[:3]}")

    rows_by_phone = defaultdict(list)
    for r in inbound:
        rows_by_phone[r["from"]].append(r)
    convs = conversations(con)
    not_prefix, wrong_step, wrong_time, stray = [], [], [], []
    for s in range(a.senders):
        p, rows = phone(s), rows_by_phone.get(phone(s), [])
        if [r["messageSid"] for r in rows] != [sid for sid, _, _ in per[s][: len(rows)]]:
            not_prefix.append(p)  # a gap or a reordering: a later text recorded without an earlier one
        if not rows:
            if p in convs:
                stray.append(p)
            continue
        state, updated = convs.get(p, (None, None))
        step = next(iter(json.loads(state)["step"])) if state else None
        if step != EXPECTED_STEP[(len(rows) - 1) % len(STEPS)]:
            wrong_step.append((p, len(rows), step))
        last = rows[-1]["receivedAt"]
        activity = json.loads(state).get("lastActivity") if state else None
        received = datetime.fromisoformat(last).replace(tzinfo=timezone.utc).timestamp()
        if updated != last or activity is None or abs(activity - received) > 0.002:
            wrong_time.append((p, last, updated, activity))
    check(not not_prefix, f"each phone's recorded texts are exactly the first ones it sent, in order ({a.senders} phones)",
          f"{len(not_prefix)} phones, e.g. {not_prefix[:3]}")
    check(not wrong_step, "each phone's conversation step equals a replay of its recorded texts",
          f"{len(wrong_step)} phones (phone, texts, step), e.g. {wrong_step[:3]}")
    check(not wrong_time, "each phone's conversation was written with its last recorded text (same time stamp)",
          f"{len(wrong_time)} phones (phone, last receivedAt, conversation updatedAt, lastActivity), e.g. {wrong_time[:3]}")
    check(not stray, "no conversation without a recorded text", f"{stray[:3]}")

    # Retries of acknowledged webhooks: the same TwiML, nothing stored twice, nothing advanced.
    sample = random.Random(7).sample(sorted(acked), min(a.resend, len(acked)))
    last_acked = {}
    for sid, r in acked.items():
        if r["index"] >= last_acked.get(r["from"], (-1, None))[0]:
            last_acked[r["from"]] = (r["index"], sid)
    sample += [sid for _, sid in list(last_acked.values())[:50] if sid not in sample]
    lines = {sid: (sig, body) for rows in per for sid, sig, body in rows}
    before_count = con.execute("SELECT count(*) FROM inbound").fetchone()[0]
    before_convs = conversations(con)
    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    bad = []
    for sid in sample:
        status, reply = post_sms(conn, *lines[sid])
        if status != 200 or reply != acked[sid]["reply"]:
            bad.append((sid, status, reply[:80]))
    con.close()
    con = db_ro(a.db)
    after_count = con.execute("SELECT count(*) FROM inbound").fetchone()[0]
    check(not bad, f"{len(sample)} acknowledged webhooks sent again: 200 with the first TwiML", f"{len(bad)} differ, e.g. {bad[:2]}")
    check(after_count == before_count, "the retries stored nothing", f"inbound rows {before_count} -> {after_count}")
    check(conversations(con) == before_convs, "the retries advanced no conversation")
    finish()


# ---------------------------------------------------------------- broadcast after the crash

def cmd_snapshot(a):
    con = db_ro(a.db)
    counts = dict(con.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    sending = [r[0] for r in con.execute("SELECT id FROM outbox WHERE status = 'sending'")]
    json.dump({"counts": counts, "sending": sending}, open(a.out, "w"))
    print(f"outbox at the kill: {counts}")


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def sends(a):
    """The fake API's records, its creates as {(to, body): [sid, ...]}, the outbox rows, and their statuses."""
    records = fetch(a.fake + "/records")
    creates = defaultdict(list)
    for c in records["creates"]:
        creates[(c["to"], c["body"])].append(c["sid"])
    rows = db_ro(a.db).execute('SELECT id, "to", body, status, twilioSid, attempts FROM outbox').fetchall()
    return records, creates, rows, Counter(r["status"] for r in rows)


def cmd_check_broadcast(a):
    snap = json.load(open(a.snapshot))
    records, creates, rows, status = sends(a)
    inflight = set(snap["sending"])
    at_kill = snap["counts"]
    print(f"people: {a.people}; outbox at the kill: {at_kill}; in flight: {len(inflight)}")
    print(f"outbox now: {dict(status)}; texts the fake API created: {len(records['creates'])}")
    check(len(rows) == a.people, f"one outbox row per person ({a.people})", f"{len(rows)} rows")
    dup = {k: v for k, v in creates.items() if len(v) > 1}
    check(not dup, "no recipient got a second text", f"{len(dup)} recipients, e.g. {list(dup.items())[:2]}")
    check(status.get("queued", 0) + status.get("sending", 0) == 0, "the outbox drained after the restart", str(dict(status)))
    uncertain = {r["id"] for r in rows if r["status"] == "uncertain"}
    check(uncertain == inflight, "exactly the rows in flight at the kill are uncertain",
          f"uncertain not in flight: {sorted(uncertain - inflight)[:5]}; in flight not uncertain: {sorted(inflight - uncertain)[:5]}")
    wrong = [(r["id"], r["status"], len(creates.get((r["to"], r["body"]), []))) for r in rows
             if r["id"] not in inflight and not (r["status"] == "sent" and creates.get((r["to"], r["body"])) == [r["twilioSid"]])]
    check(not wrong, "every other row is sent, once, with the SID the API gave it", f"{len(wrong)} rows (id, status, texts), e.g. {wrong[:3]}")
    reached = sum(1 for r in rows if r["id"] in inflight and creates.get((r["to"], r["body"])))
    print(f"in flight at the kill: {len(inflight)} (of which the fake API had created {reached}, "
          f"so {reached} people have their text and {len(inflight) - reached} do not until an operator retries)")
    print(f"sent before the kill: {at_kill.get('sent', 0)}; sent after the restart: {status.get('sent', 0) - at_kill.get('sent', 0)}")
    finish()


def cmd_check_retry(a):
    """After `outbox retry --uncertain`: every person has exactly one text, all rows sent."""
    records, creates, rows, status = sends(a)
    print(f"after 'outbox retry --uncertain': outbox {dict(status)}; texts the fake API created: {len(records['creates'])}")
    dup = {k: v for k, v in creates.items() if len(v) > 1}
    check(not dup, "after the operator's retry, still no recipient got a second text (looked up before resending)",
          f"{len(dup)} recipients, e.g. {list(dup.items())[:2]}")
    wrong = [(r["id"], r["status"]) for r in rows if not (r["status"] == "sent" and creates.get((r["to"], r["body"])) == [r["twilioSid"]])]
    check(not wrong, f"after the retry every person has exactly one text and every row is sent ({len(rows)})",
          f"{len(wrong)} rows, e.g. {wrong[:5]}")
    finish()


# ---------------------------------------------------------------- outage

def cmd_probe(a):
    per = read_hooks(a.hooks, 1)[0]
    u = urllib.parse.urlsplit(a.url)
    samples = []
    end = time.monotonic() + a.seconds
    i = 0
    while time.monotonic() < end and i < len(per):
        tick = time.monotonic()
        sample = {"t": round(time.time(), 3)}
        for what in ("sms", "healthz"):
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            t0 = time.monotonic()
            try:
                if what == "sms":
                    status, _ = post_sms(conn, per[i][1], per[i][2])
                    i += 1
                else:
                    conn.request("GET", "/healthz")
                    r = conn.getresponse()
                    status = r.status
                    r.read()
            except (OSError, http.client.HTTPException) as e:
                status = str(e)
            sample[what] = {"status": status, "ms": round((time.monotonic() - t0) * 1000, 2)}
            conn.close()
        samples.append(sample)
        time.sleep(max(0, 1 - (time.monotonic() - tick)))
    json.dump(samples, open(a.out, "w"))


def cmd_check_outage(a):
    records = fetch(a.fake + "/records")
    start, until = records["outage"]["start"], records["outage"]["until"]
    reqs = records["requests"]
    con = db_ro(a.db)
    rows = con.execute('SELECT id, "to", body, purpose, status, attempts, twilioSid, errorCode, errorMessage FROM outbox').fetchall()
    status = Counter(r["status"] for r in rows)
    creates = defaultdict(list)
    for c in records["creates"]:
        creates[(c["to"], c["body"])].append(c)
    during = [r for r in reqs if start <= r["t"] < until]
    per_to = Counter(r["to"] for r in during)
    results = Counter(r["result"] for r in during)
    print(f"outage: {until - start:.0f} s; API requests during it: {len(during)} ({len(during) / (until - start):.1f}/s), "
          f"answered {dict(results)}")
    if per_to:
        counts = sorted(per_to.values())
        print(f"API requests per recipient during the outage: max {counts[-1]}, median {counts[len(counts) // 2]}, "
              f"mean {sum(counts) / len(counts):.2f} ({len(counts)} recipients tried)")
    attempts = sorted(r["attempts"] for r in rows)
    print(f"outbox attempts per text in the end: max {attempts[-1]}, mean {sum(attempts) / len(attempts):.2f}; "
          f"histogram {dict(sorted(Counter(attempts).items()))}")
    check(bool(during), "the outbox tried during the outage")
    # Each attempt is at most one lookup plus one create, and attempts are bounded (8 by default).
    check(not per_to or max(per_to.values()) <= 2 * a.max_attempts,
          f"requests per recipient during the outage are bounded (<= {2 * a.max_attempts}, no hot loop)", f"max {max(per_to.values(), default=0)}")
    check(len(during) / (until - start) <= a.max_api_rate,
          f"the API saw at most {a.max_api_rate}/s during the outage", f"{len(during) / (until - start):.1f}/s")

    # Backoff: after a fault answer, the next request for that recipient waits (Retry-After for a 429).
    by_to = defaultdict(list)
    for r in reqs:
        by_to[r["to"]].append(r)
    early_429, early_other = [], []
    for to, rs in by_to.items():
        rs.sort(key=lambda r: r["t"])
        for prev, nxt in zip(rs, rs[1:]):
            gap = nxt["t"] - prev["end"]
            if prev["result"] == "429" and gap < float(a.retry_after) - 0.05:
                early_429.append((to, round(gap, 3)))
            elif prev["result"] in ("500", "500c") and gap < 0.45:
                early_other.append((to, round(gap, 3)))
    check(not early_429, f"after a 429 each recipient's next request waited Retry-After ({a.retry_after} s)",
          f"{len(early_429)} early, e.g. {early_429[:3]}")
    check(not early_other, "after a 500 each recipient's next request waited at least the first backoff (0.5 s)",
          f"{len(early_other)} early, e.g. {early_other[:3]}")

    # Delivery: each text once; none lost; uncertain rows reported.
    dup = {k: [c["sid"] for c in v] for k, v in creates.items() if len(v) > 1}
    check(not dup, "no text was created twice at the API", f"{len(dup)}, e.g. {list(dup.items())[:2]}")
    check(status.get("queued", 0) + status.get("sending", 0) == 0, "the outbox drained after the outage", str(dict(status)))
    lost = [(r["id"], r["to"], r["status"], r["errorCode"], r["errorMessage"]) for r in rows
            if r["status"] not in ("sent", "uncertain", "queued", "sending")]
    check(not lost, "no text failed (lost)", f"{len(lost)} rows, e.g. {lost[:3]}")
    wrong = [(r["id"], r["status"]) for r in rows if r["status"] == "sent" and [c["sid"] for c in creates.get((r["to"], r["body"]), [])] != [r["twilioSid"]]]
    check(not wrong, "every sent row matches exactly one text at the API", f"{len(wrong)}, e.g. {wrong[:3]}")
    unc = [r for r in rows if r["status"] == "uncertain"]
    if unc:
        there = sum(1 for r in unc if creates.get((r["to"], r["body"])))
        print(f"uncertain: {len(unc)} rows ({there} of them exist at the API, {len(unc) - there} do not); e.g. "
              f"{[(r['id'], r['attempts'], r['errorMessage']) for r in unc[:3]]}")
    sent = [r for r in rows if r["status"] == "sent"]
    adopted = sum(1 for r in sent if any(c["sid"] == r["twilioSid"] and start <= c["t"] < until for c in creates.get((r["to"], r["body"]), [])))
    print(f"created at the API during the outage (the answer was a 500 or never came) and later found by the lookup, "
          f"not sent again: {adopted}")
    print(f"delivered exactly once: {len(sent)} of {len(rows)} texts; uncertain: {len(unc)}; lost: {len(lost)}")

    probes = json.load(open(a.probes))
    for what in ("sms", "healthz"):
        bad = [p for p in probes if p[what]["status"] != 200]
        worst = max((p[what]["ms"] for p in probes), default=0)
        print(f"{what}: {len(probes)} probes, {len(bad)} not 200, max {worst:.1f} ms, "
              f"median {sorted(p[what]['ms'] for p in probes)[len(probes) // 2]:.1f} ms")
        check(not bad and worst <= a.max_probe_ms, f"/{what} answered 200 within {a.max_probe_ms} ms every second during the outage",
              f"{len(bad)} failed, max {worst} ms, e.g. {bad[:2]}")
    finish()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("load")
    s.add_argument("--url", required=True); s.add_argument("--hooks", required=True); s.add_argument("--db", required=True)
    s.add_argument("--senders", type=int, default=320); s.add_argument("--threads", type=int, default=32)
    s.add_argument("--acked", required=True); s.add_argument("--max-seconds", type=float, default=30)
    s.add_argument("--ready", help="a file to create when the load starts")
    s = sub.add_parser("check-webhooks")
    s.add_argument("--url", required=True); s.add_argument("--hooks", required=True); s.add_argument("--db", required=True)
    s.add_argument("--senders", type=int, default=320); s.add_argument("--acked", required=True); s.add_argument("--resend", type=int, default=200)
    s = sub.add_parser("snapshot")
    s.add_argument("--db", required=True); s.add_argument("--out", required=True)
    s = sub.add_parser("check-broadcast")
    s.add_argument("--db", required=True); s.add_argument("--fake", required=True); s.add_argument("--snapshot", required=True)
    s.add_argument("--people", type=int, required=True)
    s = sub.add_parser("check-retry")
    s.add_argument("--db", required=True); s.add_argument("--fake", required=True)
    s = sub.add_parser("probe")
    s.add_argument("--url", required=True); s.add_argument("--hooks", required=True); s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("check-outage")
    s.add_argument("--db", required=True); s.add_argument("--fake", required=True); s.add_argument("--probes", required=True)
    s.add_argument("--retry-after", default="3"); s.add_argument("--max-attempts", type=int, default=8)
    s.add_argument("--max-api-rate", type=float, default=200); s.add_argument("--max-probe-ms", type=float, default=1000)
    a = p.parse_args()
    {"load": cmd_load, "check-webhooks": cmd_check_webhooks, "snapshot": cmd_snapshot, "check-broadcast": cmd_check_broadcast,
     "check-retry": cmd_check_retry, "probe": cmd_probe, "check-outage": cmd_check_outage}[a.cmd](a)


if __name__ == "__main__":
    main()
