#!/usr/bin/env python3
"""Enumeration timing harness for POST /password-reset on `pwreset serve`.

Usage: bench/timing_gap.py [path/to/pwreset] [pairs]
Starts its own server (limits off, demo off) on a free 127.0.0.1 port and stops it by PID.

Lambda mode: with PWRESET_TIMING_URL (e.g. http://127.0.0.1:9000/lambda-url/request-reset)
and PWRESET_TIMING_EXISTING (an address that has an account there) it starts nothing and
times that endpoint instead (scripts/bench --only p2l sets both up on the emulators).
Sends interleaved pairs at concurrency 1 over one keep-alive connection: an existing
address and a missing one, the order within each pair alternating, and reports the median
latency of each, the median gap, and the share of pairs where the existing address was
slower (50 % is the ideal; the contract wants 45-55 % and a median gap under 2 %).

With PWRESET_TIMING_ARMS=limited the pairs are instead a recently asked-for address, over
its per-address limit (silently suppressed), against a fresh address (accepted): the oracle
the silent limit must not be. The server must then run with a per-address limit of 1 per
window (this harness sets RESET_LIMIT_PER_EMAIL=1/1h on the server it starts itself).

With PWRESET_TIMING_ARMS=change the pairs are POST /password-change with a wrong current
password: an existing account against a missing one (both 401 invalid_credentials, each
one argon2id verification; the CHANGE_LIMIT_* limits are off on the server it starts).
"""
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "pwreset")
PAIRS = int(sys.argv[2]) if len(sys.argv) > 2 else 2000


def main():
    url = os.environ.get("PWRESET_TIMING_URL")
    limited_arm = os.environ.get("PWRESET_TIMING_ARMS") == "limited"
    change_arm = os.environ.get("PWRESET_TIMING_ARMS") == "change"
    server = None
    if url:
        parsed = urllib.parse.urlsplit(url)
        host, port, prefix = parsed.hostname, parsed.port, parsed.path.rstrip("/")
        existing_email = os.environ["PWRESET_TIMING_EXISTING"]
    else:
        per_email = "1/1h" if limited_arm else "off"
        env = dict(os.environ, RESET_LIMIT_PER_EMAIL=per_email, RESET_LIMIT_PER_IP="off",
                   CHANGE_LIMIT_FAILURES="off", CHANGE_LIMIT_PER_IP="off", RUST_LOG="warn")
        server = subprocess.Popen([BIN, "serve", "--addr", "127.0.0.1:0", "--no-demo"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        host, prefix, existing_email = "127.0.0.1", "", "here@example.org"
        port = int(re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline()).group(1))
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=300)

        def post(path, body):
            data = json.dumps(body)
            start = time.perf_counter_ns()
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            return (time.perf_counter_ns() - start) / 1e6, resp.status

        if server:
            _, status = post("/_dev/users", {"email": existing_email, "password": "old password 123"})
            assert status == 201
        if change_arm:
            route, expected = prefix + "/password-change", 401

            def body(email):
                return {"email": email, "old_password": "a wrong guess 42",
                        "new_password": "violin kettle mango quartz"}
        else:
            route, expected = prefix + "/password-reset", 202

            def body(email):
                return {"email": email}
        for _ in range(20 if change_arm else 200):  # warm up (and, with the limited arms, push warm@ over its limit)
            post(route, body("warm@example.org"))
        if limited_arm:
            existing_email = "warm@example.org"
        existing, missing, slower = [], [], 0
        run = time.time_ns()
        for i in range(PAIRS):
            order = [("e", existing_email), ("m", f"nobody{i}.{run}@example.org")]
            if i % 2:
                order.reverse()
            got = {}
            for kind, email in order:
                ms, status = post(route, body(email))
                assert status == expected, status
                got[kind] = ms
            existing.append(got["e"])
            missing.append(got["m"])
            slower += got["e"] > got["m"]
        me, mm = statistics.median(existing), statistics.median(missing)
        first, second = ("limited", "accepted") if limited_arm else ("existing", "missing")
        print(f"target: {url or BIN}{' POST /password-change' if change_arm else ''}, "
              f"pairs: {PAIRS}, arms: {first} vs {second}")
        print(f"median {first} {me:.4f} ms, median {second} {mm:.4f} ms, "
              f"gap {(me - mm) / mm * 100:+.2f} %, {first} slower in {slower / PAIRS * 100:.1f} % of pairs")
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
