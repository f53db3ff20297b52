#!/usr/bin/env python3
"""CPU per request of Django 5.2's own password-reset views, for comparison with
`pwreset-bench cpu` (pwreset serve against a hello-world axum server).

Usage: <python with django and gunicorn> bench/django_cpu.py [requests] [rounds] [concurrency]

Sets up bench/django (SQLite in a temporary directory, one user), serves it with gunicorn
(one gthread worker, `concurrency` threads, keep-alive) on a free 127.0.0.1 port, and per
phase sends `requests` requests over `concurrency` keep-alive connections, reading the
server's user + system CPU time (master and worker, /proc/<pid>/stat) before and after.
Phases, order rotating each round:
  existing  POST /password_reset/ for the user's address (302; the mail rendered and kept)
  missing   POST /password_reset/ for an unknown address (302; nothing sent)
  verify    GET /reset/<uidb64>/<token>/ with a valid token (302 to the set-password form,
            the token moved into a new session: what following the mailed link does)
Each POST carries the CSRF cookie and form token that a GET of the form handed that
connection (fetched before the phase's CPU time is read). Stops gunicorn by PID.
"""
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "django")
REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
CONCURRENCY = int(sys.argv[3]) if len(sys.argv) > 3 else 8
EXISTING = "cpu-here@example.org"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system time of `pid` and its children that are running now."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except FileNotFoundError:
        pass
    total = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS


def setup(db):
    """The schema and one user; Django's own generator makes the link the mail would carry."""
    sys.path.insert(0, PROJECT)
    os.environ["DJANGO_SETTINGS_MODULE"] = "djbench_settings"
    os.environ["DJBENCH_DB"] = db
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    user = User.objects.create_user("cpu-here", EXISTING, "an old password here")
    return urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)


class Client:
    """One keep-alive connection with the CSRF pair a GET of the form gave it."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        status, headers, body = self.request("GET", "/password_reset/")
        if status != 200:
            raise SystemExit(f"GET /password_reset/: {status}")
        cookie = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", ""))
        field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        if not cookie or not field:
            raise SystemExit("no CSRF cookie or form token in the reset form")
        self.cookie = cookie.group(1)
        self.form_token = field.group(1)

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response.status, response.headers, text

    def ask(self, email):
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": self.form_token, "email": email})
        status, headers, _ = self.request("POST", "/password_reset/", form, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={self.cookie}",
            "Referer": "http://127.0.0.1/password_reset/",
        })
        if status != 302 or not headers.get("Location", "").endswith("/password_reset/done/"):
            raise SystemExit(f"POST /password_reset/: {status} {headers.get('Location')}")

    def follow(self, path):
        status, headers, _ = self.request("GET", path)
        if status != 302 or not headers.get("Location", "").endswith("/set-password/"):
            raise SystemExit(f"GET {path}: {status} {headers.get('Location')}")


def drive(clients, phase, count, link):
    errors = []

    def worker(index, client):
        try:
            for i in range(index, count, len(clients)):
                if phase == "existing":
                    client.ask(EXISTING)
                elif phase == "missing":
                    client.ask(f"cpu-nobody-{i}@example.org")
                else:
                    client.follow(link)
        except BaseException as e:  # noqa: BLE001 - reported below, the phase fails
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{phase}: {errors[0]}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        uid, token = setup(os.path.join(tmp, "db.sqlite3"))
        link = f"/reset/{uid}/{token}/"
        port = free_port()
        env = dict(os.environ, DJBENCH_DB=os.path.join(tmp, "db.sqlite3"))
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--chdir", PROJECT, "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--worker-class", "gthread", "--threads", str(CONCURRENCY),
             "--keep-alive", "60", "--log-level", "warning", "djbench_wsgi:application"],
            env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    Client(port)
                    break
                except (ConnectionError, OSError):
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("gunicorn did not start")
                    time.sleep(0.1)
            phases = ["existing", "missing", "verify"]
            per_request = {p: [] for p in phases}
            clients = [Client(port) for _ in range(CONCURRENCY)]
            for p in phases:  # warm-up
                drive(clients, p, REQUESTS // 4, link)
            for r in range(ROUNDS):
                for k in range(len(phases)):
                    phase = phases[(k + r) % len(phases)]
                    before = cpu_seconds(server.pid)
                    drive(clients, phase, REQUESTS, link)
                    after = cpu_seconds(server.pid)
                    per_request[phase].append((after - before) * 1e6 / REQUESTS)
        finally:
            server.terminate()
            server.wait(timeout=30)
    import django
    print(f"Django {django.get_version()} under gunicorn (1 gthread worker, {CONCURRENCY} threads): "
          f"CPU per request (user + system, /proc/<pid>/stat), {ROUNDS} rounds x {REQUESTS} requests")
    labels = {"existing": "POST /password_reset/, existing", "missing": "POST /password_reset/, missing",
              "verify": "GET /reset/<uidb64>/<token>/ (verify)"}
    result = {}
    for p in phases:
        m = statistics.median(per_request[p])
        print(f"  {labels[p]:40} median {m:9.1f} µs  rounds {' '.join(f'{v:.1f}' for v in per_request[p])}")
        result[p] = {"median_us": m, "rounds_us": per_request[p]}
    print("RESULT " + json.dumps({"django_cpu_per_request": result}))


if __name__ == "__main__":
    main()
