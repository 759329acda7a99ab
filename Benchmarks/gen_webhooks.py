#!/usr/bin/env python3
"""Writes N unique, correctly signed inbound-SMS webhooks for wrk, one per line: `signature<TAB>body`.

About 1,000 senders each walk a realistic sequence (HELP, JOIN, first name, last name, email, RESET,
MESSAGES without a login, an unknown word) over and over, in an order that interleaves senders the way
real traffic would. Passcode steps are left out: PBKDF2 is slow by design and is measured separately.
"""
import base64, hashlib, hmac, sys, urllib.parse

count, token, url, account, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
senders = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
first = int(sys.argv[7]) if len(sys.argv) > 7 else 0  # MessageSids start here, so separate runs never repeat one
# Senders are +1415 followed by base + i. The warm-up uses other senders than the measured run: wrk stops
# mid-sequence, and a sender left waiting for a passcode would have its next texts hashed with PBKDF2.
base = int(sys.argv[8]) if len(sys.argv) > 8 else 5000000
# `login:<passcode>`: registered senders who log in and out again (LOGIN <passcode>, LOGOUT), for the
# logins-per-second figure; each LOGIN costs one PBKDF2 verification.
mode = sys.argv[9] if len(sys.argv) > 9 else "mix"
key = token.encode()
if mode.startswith("login:"):
    steps = ["LOGIN " + mode[len("login:"):], "LOGOUT"]
else:
    steps = ["HELP", "JOIN", "Ivan", "Petrov", None, "RESET", "MESSAGES", "banana"]

with open(out, "w") as f:
    for i in range(count):
        sender = i % senders
        step = steps[(i // senders) % len(steps)]
        body = step if step is not None else f"comrade{sender}@example.org"
        sid = "SM%032x" % (first + i)
        frm = "+1415%07d" % (base + sender)
        params = [("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", sid), ("NumMedia", "0"), ("ToCity", ""),
                  ("FromZip", "02134"), ("SmsSid", sid), ("FromState", "MA"), ("SmsStatus", "received"),
                  ("FromCity", "BOSTON"), ("Body", body), ("FromCountry", "US"), ("To", "+15005550006"), ("ToZip", ""),
                  ("NumSegments", "1"), ("ReferralNumMedia", "0"), ("MessageSid", sid), ("AccountSid", account),
                  ("From", frm), ("ApiVersion", "2010-04-01")]
        signed = url + "".join(k + v for k, v in sorted(params))
        sig = base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha1).digest()).decode()
        f.write(sig + "\t" + urllib.parse.urlencode(params) + "\n")
