// The client against a real `pwreset serve` (PWRESET_BIN, default target/debug/pwreset),
// and its codes against the OpenAPI document that server serves. Run by scripts/test:
//   node --test clients/typescript/client.test.mjs
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { PROBLEM_CODES, PwresetClient, PwresetProblem, REASON_CODES, linkParameters } from "./pwreset.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = path.resolve(root, process.env.PWRESET_BIN || "target/debug/pwreset");
const OLD = "an old password 42";
const STRONG = "violin kettle mango quartz";
let server;
let base;

before(async () => {
  server = spawn(BIN, ["serve", "--addr", "127.0.0.1:0", "--no-demo"], {
    env: { ...process.env, RUST_LOG: "warn", RESET_RETURN_URLS: "https://app.example/signin", CHANGE_LIMIT_FAILURES: "off" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  base = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`no "listening on" line:\n${out}`)), 20_000);
    server.stdout.setEncoding("utf8").on("data", (chunk) => {
      out += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) { clearTimeout(timer); resolve(match[1].replace(/\/$/, "")); }
    });
    server.on("exit", (code) => { clearTimeout(timer); reject(new Error(`exited ${code}:\n${out}`)); });
  });
});

after(() => { if (server && server.exitCode === null) server.kill("SIGTERM"); });

async function dev(route, body) {
  const response = await fetch(base + route, body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  return response.json();
}

async function linkFor(email) {
  for (let i = 0; i < 100; i++) {
    const { messages } = await dev("/_dev/mail");
    const mail = messages.filter((m) => m.to === email && /token=/.test(m.text)).pop();
    if (mail) return /(https?:\/\/\S+#uid=\S+)/.exec(mail.text)[1];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no link mailed to ${email}`);
}

test("the codes the client knows are exactly the document's", async () => {
  const spec = await (await fetch(base + "/openapi.json")).json();
  assert.deepEqual([...PROBLEM_CODES].sort(), [...spec.components.schemas.Problem.properties.code.enum].sort());
  assert.deepEqual([...REASON_CODES].sort(), [...spec.components.schemas.ReasonCode.enum].sort());
  const operations = Object.entries(spec.paths).flatMap(([route, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${route}`));
  assert.deepEqual(operations.sort(), [
    "POST /password-change", "POST /password-reset", "POST /password-reset/confirm", "POST /password-reset/verify",
  ]);
});

test("reset: request, verify, a weak password as a typed error in German, then success", async () => {
  const email = "client.reset@example.org";
  await dev("/_dev/users", { email, password: OLD });
  const api = new PwresetClient({ baseUrl: base, language: "de" });
  await api.requestReset(email, { returnTo: "https://app.example/signin" });
  const { uid, token, returnTo } = linkParameters(await linkFor(email));
  assert.equal(returnTo, "https://app.example/signin");
  const verified = await api.verify(uid, token);
  assert.equal(verified.valid, true);
  assert.equal(verified.email, email);
  assert.ok(verified.expiresAt > new Date());
  const weak = await api.confirm(uid, token, "12345").then(() => null, (e) => e);
  assert.ok(weak instanceof PwresetProblem);
  assert.equal(weak.status, 422);
  assert.equal(weak.code, "weak_password");
  assert.deepEqual(weak.reasonCodes, ["too_short", "all_digits"]);
  assert.match(weak.reasons[0], /^Verwenden Sie mindestens 12 Zeichen/);
  await api.confirm(uid, token, STRONG);
  const used = await api.verify(uid, token).then(() => null, (e) => e);
  assert.equal(used.code, "invalid_token");
  assert.equal(used.status, 400);
});

test("refusals are typed: invalid_email, invalid_return_to, invalid_credentials, network_error", async () => {
  const api = new PwresetClient({ baseUrl: base });
  const cases = [
    [() => api.requestReset("not an address"), 400, "invalid_email"],
    [() => api.requestReset("a@example.org", { returnTo: "https://evil.example/" }), 400, "invalid_return_to"],
    [() => api.changePassword("nobody@example.org", OLD, STRONG), 401, "invalid_credentials"],
  ];
  for (const [call, status, code] of cases) {
    const problem = await call().then(() => null, (e) => e);
    assert.ok(problem instanceof PwresetProblem, code);
    assert.equal(problem.status, status);
    assert.equal(problem.code, code);
  }
  const offline = new PwresetClient({ baseUrl: "http://127.0.0.1:9" });
  const problem = await offline.requestReset("a@example.org").then(() => null, (e) => e);
  assert.equal(problem.status, 0);
  assert.equal(problem.code, "network_error");
});

test("change a known password, and 429 carries Retry-After", async () => {
  const email = "client.change@example.org";
  await dev("/_dev/users", { email, password: OLD });
  const api = new PwresetClient({ baseUrl: base });
  await api.changePassword(email, OLD, STRONG);
  assert.deepEqual(await dev("/_dev/login", { email, password: STRONG }), { valid: true });
  // The per-IP request limit (20/1m by default) answers 429 with Retry-After.
  let limited = null;
  for (let i = 0; i < 40 && !limited; i++) {
    limited = await api.requestReset(`flood${i}@example.net`).then(() => null, (e) => e);
  }
  assert.ok(limited, "never limited");
  assert.equal(limited.code, "rate_limited");
  assert.ok(Number.isInteger(limited.retryAfter) && limited.retryAfter > 0, String(limited.retryAfter));
});
