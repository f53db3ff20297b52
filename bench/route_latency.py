#!/usr/bin/env python3
"""Median latency of each route on `pwreset serve`, measured from a client on loopback.

Usage: bench/route_latency.py [path/to/pwreset] [rounds]
Starts its own server on a free 127.0.0.1 port (limits off, demo off), stops it by PID.
Client-side wall time per request over one keep-alive connection, sequential requests
(concurrency 1), so it is latency, not throughput. Standard library only.
"""
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "pwreset")
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def main():
    env = dict(os.environ, RESET_LIMIT_PER_EMAIL="off", RESET_LIMIT_PER_IP="off", RUST_LOG="warn")
    server = subprocess.Popen([BIN, "serve", "--addr", "127.0.0.1:0", "--no-demo"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        line = server.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        # Keep draining stdout (printed mail) so the server never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def post(path, body):
            data = json.dumps(body)
            start = time.perf_counter()
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            return (time.perf_counter() - start) * 1000, resp.status, payload

        def get(path):
            conn.request("GET", path)
            resp = conn.getresponse()
            return json.loads(resp.read())

        ms, status, body = post("/_dev/users", {"email": "bench@example.org", "password": "old password 123"})
        assert status == 201, body
        uid = json.loads(body)["uid"]

        def fresh_token():
            before = len(get("/_dev/mail")["messages"])
            post("/password-reset", {"email": "bench@example.org"})
            while True:
                msgs = get("/_dev/mail")["messages"]
                resets = [m for m in msgs[before:] if "token=" in m["text"]]
                if resets:
                    return re.search(r"token=([A-Za-z0-9_-]+)", resets[-1]["text"]).group(1)
                time.sleep(0.01)

        results = {}
        for name, make in [
            ("POST /password-reset (existing)", lambda i: ("/password-reset", {"email": "bench@example.org"})),
            ("POST /password-reset (missing)", lambda i: ("/password-reset", {"email": f"nobody{i}@example.org"})),
        ]:
            samples = []
            for i in range(ROUNDS):
                path, body = make(i)
                ms, status, _ = post(path, body)
                assert status == 202, status
                samples.append(ms)
            results[name] = samples
        time.sleep(0.5)

        token = fresh_token()
        samples = []
        for _ in range(ROUNDS):
            ms, status, _ = post("/password-reset/verify", {"uid": uid, "token": token})
            assert status == 200, status
            samples.append(ms)
        results["POST /password-reset/verify"] = samples

        samples = []
        for _ in range(ROUNDS):
            ms, status, _ = post("/password-reset/confirm", {"uid": uid, "token": token, "new_password": "password"})
            assert status == 422, status
            samples.append(ms)
        results["POST /password-reset/confirm (422 weak, no hash)"] = samples

        samples = []
        for i in range(min(ROUNDS, 30)):
            token = fresh_token()
            ms, status, body = post("/password-reset/confirm",
                                    {"uid": uid, "token": token, "new_password": f"violin kettle mango {i} quartz"})
            assert status == 200, body
            samples.append(ms)
        results["POST /password-reset/confirm (200, argon2id)"] = samples

        print(f"binary: {BIN}")
        print(f"{'route':<52} {'n':>4} {'median ms':>10} {'p90 ms':>8}")
        for name, s in results.items():
            s = sorted(s)
            p90 = s[int(len(s) * 0.9) - 1]
            print(f"{name:<52} {len(s):>4} {statistics.median(s):>10.3f} {p90:>8.3f}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
