#!/usr/bin/env python3
"""Regenerates the sample events from `sam local generate-event` output.

    PATH=.cache/venv/bin:$PATH python3 events/generate.py

Each API Gateway HTTP API event starts as `sam local generate-event apigateway
http-api-proxy`, with sam's placeholders (cookies, query string, JWT claims, client cert)
removed and a real-looking source IP, content type and body put in. The stream event
starts as `sam local generate-event dynamodb update` with its record turned into an
outbox INSERT. `expected.json` gives the status (or batch response) each must produce; the
tests in tests/tests/lambda_mode.rs and functions/*/tests hold the functions to it.
"""
import base64
import copy
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def sam(*args):
    out = subprocess.run(["sam", "local", "generate-event", *args], check=True,
                         capture_output=True, text=True, env=dict(os.environ, SAM_CLI_TELEMETRY="0"))
    return json.loads(out.stdout)


def http_event(method, path, body, content_type="application/json", b64=False):
    event = sam("apigateway", "http-api-proxy", "--method", method, "--path", path.lstrip("/"))
    for key in ("cookies", "queryStringParameters"):
        event.pop(key, None)
    event["rawQueryString"] = ""
    event["routeKey"] = f"{method} {path}"
    ctx = event["requestContext"]
    ctx.pop("authentication", None)
    ctx.pop("authorizer", None)
    ctx["routeKey"] = event["routeKey"]
    ctx["http"]["sourceIp"] = "198.51.100.7"
    ctx["http"]["userAgent"] = "curl/8.5.0"
    event["headers"] = {"host": "id.execute-api.us-east-1.amazonaws.com", "user-agent": "curl/8.5.0"}
    if content_type:
        event["headers"]["content-type"] = content_type
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    elif b64:
        event["body"] = base64.b64encode(body.encode()).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body
        event["isBase64Encoded"] = False
    return event


def stream_event():
    event = sam("dynamodb", "update")
    record = copy.deepcopy(event["Records"][0])
    job = {"kind": "reset_requested", "email_key": "nobody@example.org", "requested_at": 1767225600}
    record["eventName"] = "INSERT"
    record["dynamodb"] = {
        "ApproximateCreationDateTime": 1767225600,
        "Keys": {"pk": {"S": "OUTBOX#0f8fad5bd9cb469fa16570867728950e"}, "sk": {"S": "OUTBOX"}},
        "NewImage": {
            "pk": {"S": "OUTBOX#0f8fad5bd9cb469fa16570867728950e"},
            "sk": {"S": "OUTBOX"},
            "job": {"S": json.dumps(job, separators=(",", ":"))},
            "created_at": {"N": "1767225600"},
            "expires_at": {"N": "1767830400"},
        },
        "SequenceNumber": "111100000000000000000001",
        "SizeBytes": 220,
        "StreamViewType": "NEW_IMAGE",
    }
    return {"Records": [record]}


EVENTS = {
    # name: (event, expected)
    "request-reset.json": (http_event("POST", "/password-reset", '{"email":"alice@example.org"}', b64=True), 202),
    "request-reset-invalid-email.json": (http_event("POST", "/password-reset", '{"email":"alice@example.org\\r\\nBcc: x@example.org"}'), 400),
    "request-reset-malformed-json.json": (http_event("POST", "/password-reset", '{"email":'), 400),
    "request-reset-text-plain.json": (http_event("POST", "/password-reset", "email=alice@example.org", content_type="text/plain"), 415),
    "request-reset-oversized.json": (http_event("POST", "/password-reset", json.dumps({"email": "a@example.org", "pad": "x" * 17000})), 413),
    "request-reset-get.json": (http_event("GET", "/password-reset", None, content_type=None), 405),
    "verify-invalid-token.json": (http_event("POST", "/password-reset/verify", '{"uid":"bm9ib2R5","token":"AQAAAABpVZ2A"}'), 400),
    "verify-missing-token.json": (http_event("POST", "/password-reset/verify", '{"uid":"bm9ib2R5"}'), 400),
    "confirm-invalid-token.json": (http_event("POST", "/password-reset/confirm", '{"uid":"bm9ib2R5","token":"forged","new_password":"123"}'), 400),
    "confirm-unknown-route.json": (http_event("POST", "/password-reset/other", "{}"), 404),
    "change-password-unknown-account.json": (http_event("POST", "/password-change", '{"email":"nobody@example.org","old_password":"a guess at it","new_password":"violin kettle mango quartz"}'), 401),
    "change-password-invalid-email.json": (http_event("POST", "/password-change", '{"email":"nobody","old_password":"a guess at it","new_password":"violin kettle mango quartz"}'), 400),
    "outbox-insert-stream.json": (stream_event(), {"batchItemFailures": []}),
}


def main():
    expected = {}
    for name, (event, want) in EVENTS.items():
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(event, f, indent=2)
            f.write("\n")
        expected[name] = want
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(EVENTS)} events and expected.json")


if __name__ == "__main__":
    main()
