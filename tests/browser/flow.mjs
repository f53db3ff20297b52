// Browser test of the reference pages: starts `pwreset serve` itself, drives Debian's
// Chromium through playwright-core, walks the whole reset flow, and fails loudly.
//
//   node tests/browser/flow.mjs        (scripts/browser-test installs what it needs first)
//
// Environment: PWRESET_BIN (default target/debug/pwreset), CHROMIUM_BIN (/usr/bin/chromium),
// PWRESET_CACHE_DIR (~/.cache/pwreset; playwright-core is looked up in its node/ prefix),
// BROWSER_TEST_TIMEOUT_SECS (180: the whole run is killed after that, never a hang),
// BROWSER_SCREENSHOTS (target/browser-screenshots).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const cache =
  process.env.PWRESET_CACHE_DIR ||
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "pwreset");
const BIN = path.resolve(root, process.env.PWRESET_BIN || "target/debug/pwreset");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const SHOTS = path.resolve(root, process.env.BROWSER_SCREENSHOTS || "target/browser-screenshots");
const TOTAL_TIMEOUT_MS = 1000 * Number(process.env.BROWSER_TEST_TIMEOUT_SECS || 180);
const STEP_TIMEOUT_MS = 10_000;

const require = createRequire(path.join(cache, "node", "package.json"));
const { chromium } = require("playwright-core");

const started = Date.now();
const servers = [];
let context = null;
let userDataDir = null;
const results = [];

// ------------------------------------------------------------------ cleanup, always
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  if (context) {
    await Promise.race([context.close().catch(() => {}), sleep(5000)]);
  }
  for (const server of servers) stopServer(server);
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
}

function stopServer(server) {
  if (server.exited) return;
  try { process.kill(server.child.pid, "SIGTERM"); } catch (_) { return; }
  // A server that ignores SIGTERM is killed; the timer must not keep node alive.
  setTimeout(() => {
    if (!server.exited) try { process.kill(server.child.pid, "SIGKILL"); } catch (_) { /* gone */ }
  }, 2000).unref();
}

const watchdog = setTimeout(async () => {
  console.error(`browser: the run took longer than ${TOTAL_TIMEOUT_MS / 1000}s; stopping`);
  dumpServerLogs();
  await Promise.race([cleanup(), sleep(8000)]);
  console.log(`browser: ${passed()} passed, ${failed() + 1} failed`);
  process.exit(2);
}, TOTAL_TIMEOUT_MS);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await Promise.race([cleanup(), sleep(8000)]);
    process.exit(130);
  });
}

// ------------------------------------------------------------------ helpers
function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
const passed = () => results.filter((r) => r.ok).length;
const failed = () => results.filter((r) => !r.ok).length;

async function check(name, body) {
  const t0 = Date.now();
  try {
    await body();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (error) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name} (${Date.now() - t0} ms)\n     ${String(error && error.stack || error).split("\n").slice(0, 6).join("\n     ")}`);
  }
}

function startServer(label, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ["serve", "--addr", "127.0.0.1:0", "--no-demo"], {
      cwd: root,
      env: { ...process.env, RUST_LOG: "warn", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const server = { label, child, log: "", exited: false, base: null };
    servers.push(server);
    const timer = setTimeout(() => reject(new Error(`${label}: no "listening on" line within 20 s`)), 20_000);
    const keep = (chunk) => {
      server.log = (server.log + chunk).slice(-20_000);
      const match = !server.base && /listening on (http:\/\/\S+)/.exec(server.log);
      if (match) {
        server.base = match[1].replace(/\/$/, "");
        clearTimeout(timer);
        resolve(server);
      }
    };
    child.stdout.setEncoding("utf8").on("data", keep);
    child.stderr.setEncoding("utf8").on("data", (chunk) => { server.log = (server.log + chunk).slice(-20_000); });
    child.on("error", (error) => { clearTimeout(timer); reject(new Error(`${label}: cannot start ${BIN}: ${error.message}`)); });
    child.on("exit", (code, signal) => {
      server.exited = true;
      clearTimeout(timer);
      if (!server.base) reject(new Error(`${label}: exited (${code ?? signal}) before listening:\n${server.log}`));
    });
  });
}

function dumpServerLogs() {
  for (const server of servers) {
    console.error(`--- last lines of ${server.label} (pid ${server.child.pid}) ---`);
    // The mail bodies it prints hold tokens of this throwaway server only.
    console.error(server.log.split("\n").slice(-30).join("\n"));
  }
}

async function api(server, method, route, body) {
  const response = await fetch(server.base + route, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: response.status, headers: response.headers, json, text };
}

async function waitForMail(server, predicate, what) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const { json } = await api(server, "GET", "/_dev/mail");
    const found = (json.messages || []).filter(predicate);
    if (found.length) return found;
    await sleep(100);
  }
  throw new Error(`no mail ${what} within ${STEP_TIMEOUT_MS / 1000} s`);
}

function linkIn(text) {
  const match = /(https?:\/\/\S+#uid=[^\s&]+&token=\S+)/.exec(text);
  assert.ok(match, `no reset link in the mail text:\n${text}`);
  return match[1];
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  shots.push(`${name}.png`);
}
const shots = [];

const focusedId = (page) => page.evaluate(() => (document.activeElement ? document.activeElement.id : ""));
const visible = (page, selector) => page.locator(selector).waitFor({ state: "visible" });
const text = async (page, selector) => ((await page.locator(selector).textContent()) || "").replace(/\s+/g, " ").trim();

function describedBy(page, inputSelector) {
  return page.locator(inputSelector).evaluate((input) => (input.getAttribute("aria-describedby") || "").split(/\s+/));
}

// ------------------------------------------------------------------ the run
async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const server = await startServer("pwreset serve");
  console.log(`browser: server ${server.base} (pid ${server.child.pid}), chromium ${CHROMIUM}`);
  const origins = new Set([server.base]);

  userDataDir = mkdtempSync(path.join(os.tmpdir(), "pwreset-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 820, height: 760 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);

  // Everything the pages do is watched: errors, CSP violations, requests elsewhere.
  const problems = [];
  const apiCalls = [];
  context.on("console", (message) => {
    if (message.type() !== "error") return;
    // Chromium logs every 4xx answer to fetch; those are the API's expected answers.
    if (/Failed to load resource: the server responded with a status of (400|401|422|429)/.test(message.text())) return;
    problems.push(`console: ${message.text()}`);
  });
  context.on("weberror", (error) => problems.push(`page error: ${error.error().message}`));
  context.on("request", (request) => {
    const url = request.url();
    if (url.startsWith("about:") || url.startsWith("data:")) return;
    const origin = new URL(url).origin;
    if (!origins.has(origin)) problems.push(`request to another origin: ${url}`);
    if (request.method() === "POST") apiCalls.push(new URL(url).pathname);
  });

  const page = context.pages()[0] || (await context.newPage());
  const email = "browser.user@example.org";
  const oldPassword = "an old password 42";
  const weak = "password1234";
  const strong = "violin kettle mango quartz";
  const state = {};

  const created = await api(server, "POST", "/_dev/users", { email, password: oldPassword });
  assert.equal(created.status, 201, `create user: ${created.text}`);

  await check("request page: the address is asked for and the link sent", async () => {
    await page.goto(server.base + "/");
    await visible(page, "#request-form");
    assert.equal(await page.title(), "Forgot your password?");
    assert.equal(await page.locator('label[for="email"]').count(), 1, "the field has a label");
    await shot(page, "01-request-form");
    await page.fill("#email", email);
    await page.click("#request-submit");
    await visible(page, "#request-done");
    assert.ok(await page.locator("#request-form").isHidden(), "the form goes away");
    assert.match(await text(page, "#request-done"), new RegExp(`If ${email.replace(/\./g, "\\.")} belongs to an account`));
    assert.equal(await page.locator("#request-done").getAttribute("role"), "status");
    assert.equal(await focusedId(page), "request-done", "focus moves to the confirmation");
    await shot(page, "02-request-sent");
  });

  await check("mail: the reset link arrives, text and HTML render", async () => {
    const [mail] = await waitForMail(server, (m) => m.to === email && /^Reset your/.test(m.subject), "with the reset link");
    state.link = linkIn(mail.text);
    assert.ok(state.link.startsWith(server.base + "/reset#uid="), state.link);
    assert.match(mail.text, /expires in 1 hour/);
    assert.match(mail.text, /Did not ask for this\?/);
    assert.ok(mail.html && !/<img|<script|src=/i.test(mail.html), "HTML part without images or remote resources");
    // Render the HTML part like a mail client would (nothing may be fetched).
    const viewer = await context.newPage();
    await viewer.setContent(mail.html, { waitUntil: "load" });
    assert.equal(await viewer.getByRole("link", { name: "Choose a new password" }).count(), 1);
    await viewer.screenshot({ path: path.join(SHOTS, "mail-reset-link.png"), fullPage: true });
    shots.push("mail-reset-link.png");
    await viewer.close();
  });

  await check("reset page: the link opens the form and leaves the address bar", async () => {
    assert.ok(state.link, "no link from the mail step");
    await page.goto(state.link);
    await visible(page, "#confirm-form");
    const url = page.url();
    assert.ok(!url.includes("#") && !url.includes("token") && !url.includes("uid"), `fragment still in the URL: ${url}`);
    assert.equal(await page.evaluate(() => window.location.hash), "");
    assert.equal(await focusedId(page), "new-password", "focus starts in the password field");
    assert.ok(apiCalls.includes("/password-reset/verify"), "the link was checked with verify");
    await shot(page, "03-reset-form");
    await page.setViewportSize({ width: 390, height: 760 });
    await shot(page, "03-reset-form-phone");
    await page.setViewportSize({ width: 820, height: 760 });
  });

  await check("live feedback: length against the minimum while typing, short refused locally", async () => {
    await page.locator("#new-password").pressSequentially("violin");
    assert.equal(await text(page, "#password-length"), "6 of 12 characters: 6 more needed");
    assert.equal(await page.locator("#password-length").getAttribute("data-state"), "short");
    assert.ok((await describedBy(page, "#new-password")).includes("password-length"));
    const confirmsBefore = apiCalls.filter((p) => p === "/password-reset/confirm").length;
    await page.keyboard.press("Enter");
    await visible(page, "#password-error");
    assert.match(await text(page, "#password-error"), /at least 12 characters \(it has 6\)/);
    assert.equal(apiCalls.filter((p) => p === "/password-reset/confirm").length, confirmsBefore, "no request for a too-short password");
    await shot(page, "04-reset-too-short");
    await page.locator("#new-password").pressSequentially(" kettle");
    assert.equal(await text(page, "#password-length"), "13 characters: long enough");
    assert.equal(await page.locator("#password-length").getAttribute("data-state"), "ok");
    assert.equal(await text(page, "#password-length-live"), "Long enough.");
    await page.fill("#new-password", "");
  });

  await check("weak password: the reasons are shown and the typed password is kept", async () => {
    await page.fill("#new-password", weak);
    await page.click("#confirm-submit");
    await page.waitForFunction(() => document.querySelectorAll("#password-reasons li").length > 0
      && !document.getElementById("password-error").hidden);
    const reasons = await page.locator("#password-reasons li").allTextContents();
    assert.ok(reasons.length >= 1 && reasons.every((r) => r.trim().length > 10), JSON.stringify(reasons));
    assert.equal(await page.inputValue("#new-password"), weak, "the typed password stays in the field");
    assert.equal(await page.getAttribute("#new-password", "aria-invalid"), "true");
    assert.ok((await describedBy(page, "#new-password")).includes("password-error"), "errors are tied to the input");
    assert.equal(await focusedId(page), "new-password", "focus back on the field");
    await shot(page, "05-reset-weak-password");
  });

  await check("strong password: success, where to sign in, and the password works", async () => {
    await page.fill("#new-password", strong);
    await page.keyboard.press("Enter");
    await visible(page, "#reset-done");
    assert.match(await text(page, "#reset-done"), /Your password was changed/);
    assert.equal(await page.getAttribute("#signin-link", "href"), "/", "default sign-in URL");
    assert.equal(await focusedId(page), "reset-done", "focus moves to the success message");
    assert.ok(await page.locator("#confirm-form").isHidden());
    await shot(page, "06-reset-done");
    const login = await api(server, "POST", "/_dev/login", { email, password: strong });
    assert.deepEqual(login.json, { valid: true }, login.text);
    const old = await api(server, "POST", "/_dev/login", { email, password: oldPassword });
    assert.deepEqual(old.json, { valid: false }, old.text);
    const [notice] = await waitForMail(server, (m) => m.to === email && /changed/.test(m.subject), "saying the password changed");
    assert.ok(!/https?:\/\//.test(notice.text), "no link in the notice");
    const viewer = await context.newPage();
    await viewer.setContent(notice.html, { waitUntil: "load" });
    await viewer.screenshot({ path: path.join(SHOTS, "mail-password-changed.png"), fullPage: true });
    shots.push("mail-password-changed.png");
    await viewer.close();
  });

  await check("used link: a clear message and an inline \"send me a new link\" form", async () => {
    assert.ok(state.link, "no link from the mail step");
    await page.goto(state.link);
    await visible(page, "#link-problem");
    assert.equal(await text(page, "#link-problem-title"), "This link can't be used");
    assert.match(await text(page, "#link-problem-text"), /already been used/);
    assert.ok(await page.locator("#confirm-form").isHidden(), "no password form for a dead link");
    assert.ok(await page.locator("#resend-form").isVisible());
    assert.equal(await page.locator('label[for="resend-email"]').count(), 1);
    assert.equal(await focusedId(page), "link-problem-title", "focus moves to the message");
    assert.ok(!page.url().includes("#"), page.url());
    await shot(page, "07-link-used");
  });

  await check("keyboard only: Tab to the field, type, Enter submits (on /reset and /)", async () => {
    const mailsBefore = (await api(server, "GET", "/_dev/mail")).json.messages.length;
    await page.keyboard.press("Tab");
    assert.equal(await focusedId(page), "resend-email", "Tab reaches the e-mail field first");
    await page.keyboard.type(email);
    await page.keyboard.press("Enter");
    await visible(page, "#resend-done");
    assert.equal(await focusedId(page), "resend-done");
    await shot(page, "08-resend-sent");
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while ((await api(server, "GET", "/_dev/mail")).json.messages.length <= mailsBefore) {
      assert.ok(Date.now() < deadline, "the new link was not mailed");
      await sleep(100);
    }
    await page.goto(server.base + "/");
    await visible(page, "#request-form");
    await page.keyboard.press("Tab");
    assert.equal(await focusedId(page), "email", "Tab reaches the e-mail field first");
    await page.keyboard.type("nobody@example.net");
    await page.keyboard.press("Enter");
    await visible(page, "#request-done");
    assert.equal(await focusedId(page), "request-done");
    await page.keyboard.press("Tab");
    assert.equal(await focusedId(page), "request-again", "the next Tab reaches the \"try again\" link");
  });

  await check("invalid e-mail: the API's detail is shown and tied to the input", async () => {
    const bad = "not an address";
    const expected = await api(server, "POST", "/password-reset", { email: bad });
    assert.equal(expected.status, 400);
    assert.equal(expected.json.code, "invalid_email");
    await page.goto(server.base + "/");
    await page.fill("#email", bad);
    await page.click("#request-submit");
    await visible(page, "#email-error");
    // The page's own words (in the reader's language), not the API's English detail.
    assert.equal(await text(page, "#email-error"), "Enter an e-mail address like name@example.com.");
    assert.equal(await page.getAttribute("#email", "aria-invalid"), "true");
    assert.ok((await describedBy(page, "#email")).includes("email-error"));
    assert.equal(await focusedId(page), "email");
    assert.equal(await page.inputValue("#email"), bad, "the typed address is kept");
    await shot(page, "09-request-invalid-email");
  });

  // Each language end to end: the pages (written by the server from Accept-Language),
  // the mail the request leads to, and the API's reasons, all in that language.
  const LANGUAGES = {
    de: {
      title: "Passwort vergessen?", done: "zu einem Konto gehört", subject: "Ihr pwreset-Passwort zurücksetzen",
      expires: "läuft in 1 Stunde ab", resetTitle: "Neues Passwort wählen", reason: "Dieses Passwort ist zu leicht zu erraten",
      changed: "Ihr Passwort wurde geändert", notice: "Ihr pwreset-Passwort wurde geändert",
    },
    fr: {
      title: "Mot de passe oublié ?", done: "correspond à un compte", subject: "Réinitialisez votre mot de passe pwreset",
      expires: "expire dans 1 heure", resetTitle: "Choisissez un nouveau mot de passe", reason: "Ce mot de passe est trop facile à deviner",
      changed: "Votre mot de passe a été modifié", notice: "Le mot de passe de votre compte pwreset a été modifié",
    },
    es: {
      title: "¿Has olvidado tu contraseña?", done: "corresponde a una cuenta", subject: "Restablece tu contraseña de pwreset",
      expires: "caduca en 1 hora", resetTitle: "Elige una contraseña nueva", reason: "Esta contraseña es demasiado fácil de adivinar",
      changed: "Se ha cambiado tu contraseña", notice: "Se ha cambiado tu contraseña de pwreset",
    },
  };
  for (const [lang, words] of Object.entries(LANGUAGES)) {
    await check(`${lang}: pages, both mails and the reasons in the language asked for`, async () => {
      const user = `browser.${lang}@example.org`;
      assert.equal((await api(server, "POST", "/_dev/users", { email: user, password: oldPassword })).status, 201);
      const tab = await context.newPage();
      try {
        await tab.setExtraHTTPHeaders({ "Accept-Language": `${lang};q=0.9,en;q=0.5` });
        await tab.goto(server.base + "/");
        await visible(tab, "#request-form");
        assert.equal(await tab.title(), words.title);
        assert.equal(await tab.getAttribute("html", "lang"), lang);
        await tab.fill("#email", user);
        await tab.click("#request-submit");
        await visible(tab, "#request-done");
        assert.ok((await text(tab, "#request-done")).includes(words.done), await text(tab, "#request-done"));
        await tab.screenshot({ path: path.join(SHOTS, `lang-${lang}-1-request-sent.png`), fullPage: true });
        shots.push(`lang-${lang}-1-request-sent.png`);
        const [mail] = await waitForMail(server, (m) => m.to === user, `in ${lang}`);
        assert.equal(mail.subject, words.subject);
        assert.ok(mail.text.includes(words.expires), mail.text);
        assert.ok(mail.html.includes(`<html lang="${lang}">`));
        await tab.goto(linkIn(mail.text));
        await visible(tab, "#confirm-form");
        assert.equal(await text(tab, "#page-title"), words.resetTitle);
        assert.equal(await tab.inputValue("#reset-username"), user, "the hidden username field holds the account's address");
        await tab.fill("#new-password", weak);
        await tab.click("#confirm-submit");
        await tab.waitForFunction(() => document.querySelectorAll("#password-reasons li").length > 0);
        const reasons = await tab.locator("#password-reasons li").allTextContents();
        assert.ok(reasons[0].startsWith(words.reason), JSON.stringify(reasons));
        await tab.screenshot({ path: path.join(SHOTS, `lang-${lang}-2-weak-password.png`), fullPage: true });
        shots.push(`lang-${lang}-2-weak-password.png`);
        await tab.fill("#new-password", `${strong} ${lang}`);
        await tab.click("#confirm-submit");
        await visible(tab, "#reset-done");
        assert.ok((await text(tab, "#reset-done")).includes(words.changed));
        const [notice] = await waitForMail(server, (m) => m.to === user && m.subject === words.notice, `the ${lang} notice`);
        assert.ok(!/https?:\/\//.test(notice.text));
      } finally {
        await tab.close();
      }
    });
  }

  await check("a static copy of the pages speaks the browser's language (app.js with i18n.json)", async () => {
    // The page exactly as it is in cli/assets (no data block from the server), in a browser
    // whose languages are French: app.js fetches i18n.json beside itself and writes the texts.
    const { readFileSync } = await import("node:fs");
    const raw = readFileSync(path.join(root, "cli", "assets", "index.html"), "utf8");
    assert.ok(!raw.includes("pwreset-i18n"));
    const tab = await context.newPage();
    try {
      await tab.addInitScript(() => {
        Object.defineProperty(navigator, "languages", { get: () => ["fr-FR", "fr", "en"] });
      });
      await tab.route(server.base + "/static-copy", (route) => route.fulfill({
        status: 200,
        contentType: "text/html; charset=utf-8",
        headers: { "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'" },
        body: raw,
      }));
      await tab.goto(server.base + "/static-copy");
      await tab.waitForFunction(() => document.documentElement.lang === "fr");
      assert.equal(await tab.title(), "Mot de passe oublié ?");
      assert.equal(await text(tab, "label[for=email]"), "Adresse e-mail");
    } finally {
      await tab.close();
    }
  });

  await check("200 % and 400 % zoom: no sideways scrolling, and the reset works from the keyboard", async () => {
    // A 1280 px wide window at 200 % lays out in 640 CSS pixels (at 400 %, WCAG's reflow
    // case, in 320).
    const user = "zoom.keyboard@example.org";
    assert.equal((await api(server, "POST", "/_dev/users", { email: user, password: oldPassword })).status, 201);
    assert.equal((await api(server, "POST", "/password-reset", { email: user })).status, 202);
    const [mail] = await waitForMail(server, (m) => m.to === user, "for the zoom check");
    const tab = await context.newPage();
    try {
      for (const width of [640, 320]) {
        await tab.setViewportSize({ width, height: 480 });
        for (const route of ["/", "/change", "/reset"]) {
          await tab.goto(server.base + route);
          await tab.locator("main").waitFor();
          const sideways = await tab.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          assert.ok(sideways <= 0, `${route} at ${width} px scrolls sideways by ${sideways} px`);
        }
      }
      await tab.setViewportSize({ width: 640, height: 480 });
      await tab.goto(linkIn(mail.text));
      await visible(tab, "#confirm-form");
      assert.equal(await focusedId(tab), "new-password");
      await tab.keyboard.type(strong + " zoomed");
      await tab.keyboard.press("Tab");
      assert.equal(await focusedId(tab), "show-password", "Tab reaches \"Show password\"");
      await tab.keyboard.press("Space");
      assert.equal(await tab.getAttribute("#new-password", "type"), "text", "Space shows the password");
      await tab.keyboard.press("Tab");
      assert.equal(await focusedId(tab), "confirm-submit", "then the button");
      const button = await tab.locator("#confirm-submit").boundingBox();
      assert.ok(button && button.x >= 0 && button.x + button.width <= 640, JSON.stringify(button));
      await tab.screenshot({ path: path.join(SHOTS, "14-reset-form-200-percent.png"), fullPage: true });
      shots.push("14-reset-form-200-percent.png");
      await tab.keyboard.press("Enter");
      await visible(tab, "#reset-done");
      assert.equal(await focusedId(tab), "reset-done");
      const sideways = await tab.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(sideways <= 0, `the success message scrolls sideways by ${sideways} px`);
      const login = await api(server, "POST", "/_dev/login", { email: user, password: strong + " zoomed" });
      assert.equal(login.json.valid, true);
    } finally {
      await tab.close();
    }
  });

  await check("rate limited: 429 says when to try again, from Retry-After", async () => {
    // Use up this IP's real limit (RESET_LIMIT_PER_IP, 20/1m) with unknown addresses.
    let retryAfter = null;
    for (let i = 0; i < 60 && retryAfter === null; i++) {
      const reply = await api(server, "POST", "/password-reset", { email: `flood${i}@example.net` });
      if (reply.status === 429) {
        retryAfter = Number(reply.headers.get("retry-after"));
        // Too close to the end of the window: the browser's request could land in the next.
        if (retryAfter < 5) { await sleep((retryAfter + 1) * 1000); retryAfter = null; }
      } else {
        assert.equal(reply.status, 202, reply.text);
      }
    }
    assert.ok(retryAfter > 0, "the API never answered 429");
    await page.goto(server.base + "/");
    await page.fill("#email", email);
    await page.click("#request-submit");
    await visible(page, "#request-problem");
    const message = await text(page, "#request-problem");
    const match = /try again in (\d+) seconds?/i.exec(message);
    assert.ok(match, message);
    assert.ok(Math.abs(Number(match[1]) - retryAfter) <= 2, `${message} vs Retry-After ${retryAfter}`);
    assert.equal(await page.locator("#request-problem").getAttribute("role"), "alert");
    assert.ok(await page.locator("#request-form").isVisible(), "the form stays to try again");
    await shot(page, "10-request-rate-limited");
  });

  await check("expired link: its own message and the new-link form", async () => {
    // A second server whose links live one second.
    const short = await startServer("pwreset serve (1 s links)", { PASSWORD_RESET_TIMEOUT: "1" });
    origins.add(short.base);
    const user = "expiring@example.org";
    assert.equal((await api(short, "POST", "/_dev/users", { email: user, password: oldPassword })).status, 201);
    assert.equal((await api(short, "POST", "/password-reset", { email: user })).status, 202);
    const [mail] = await waitForMail(short, (m) => m.to === user, "from the short-lived server");
    assert.match(mail.text, /expires in 1 second/);
    await sleep(2100);
    await page.goto(linkIn(mail.text));
    await visible(page, "#link-problem");
    assert.equal(await text(page, "#link-problem-title"), "This link has expired");
    assert.equal(await page.title(), "This link has expired");
    assert.ok(await page.locator("#resend-form").isVisible());
    await shot(page, "11-link-expired");
    stopServer(short);
  });

  await check("return_to: an allow-listed sign-in page rides in the link and \"Sign in\" goes there", async () => {
    const signin = "https://app.example/signin";
    const app = await startServer("pwreset serve (return URLs)", { RESET_RETURN_URLS: signin });
    origins.add(app.base);
    const user = "returning@example.org";
    assert.equal((await api(app, "POST", "/_dev/users", { email: user, password: oldPassword })).status, 201);
    const tab = await context.newPage();
    try {
      // Not on the list: refused, nothing mailed, the page says why.
      await tab.goto(app.base + "/?return_to=" + encodeURIComponent("https://evil.example/signin"));
      await tab.fill("#email", user);
      await tab.click("#request-submit");
      await visible(tab, "#request-problem");
      assert.match(await text(tab, "#request-problem"), /cannot send you back/);
      // On the list: accepted, and the link carries it back.
      await tab.goto(app.base + "/?return_to=" + encodeURIComponent(signin));
      await tab.fill("#email", user);
      await tab.click("#request-submit");
      await visible(tab, "#request-done");
      const mails = await waitForMail(app, (m) => m.to === user, "with return_to");
      assert.equal(mails.length, 1, "the refused request mailed nothing");
      const link = linkIn(mails[0].text);
      assert.ok(link.endsWith("&return_to=" + encodeURIComponent(signin)), link);
      await tab.goto(link);
      await visible(tab, "#confirm-form");
      await tab.fill("#new-password", strong + " back");
      await tab.click("#confirm-submit");
      await visible(tab, "#reset-done");
      assert.equal(await tab.getAttribute("#signin-link", "href"), signin);
    } finally {
      await tab.close();
      stopServer(app);
    }
  });

  await check("a link without uid/token says what to do", async () => {
    await page.goto(server.base + "/reset");
    await visible(page, "#link-problem");
    assert.equal(await text(page, "#link-problem-title"), "This page needs the link from your e-mail");
  });

  await check("change a known password at /change: wrong password, weak one, then success", async () => {
    const user = "changer@example.org";
    assert.equal((await api(server, "POST", "/_dev/users", { email: user, password: oldPassword })).status, 201);
    await page.goto(server.base + "/change");
    await visible(page, "#change-form");
    assert.equal(await page.locator("#change-email").getAttribute("autocomplete"), "username");
    await page.fill("#change-email", user);
    await page.fill("#current-password", "not the password at all");
    await page.fill("#changed-password", strong);
    await page.click("#change-submit");
    await visible(page, "#current-password-error");
    assert.equal(await page.locator("#current-password").getAttribute("aria-invalid"), "true");
    await shot(page, "12-change-wrong-password");
    await page.fill("#current-password", oldPassword);
    await page.fill("#changed-password", oldPassword);
    await page.click("#change-submit");
    await visible(page, "#changed-password-error");
    assert.match(await text(page, "#changed-password-reasons"), /different from your current/);
    await page.fill("#changed-password", strong + " again");
    await page.click("#change-submit");
    await visible(page, "#change-done");
    assert.equal(await page.title(), "Password changed");
    await shot(page, "13-change-done");
    const login = await api(server, "POST", "/_dev/login", { email: user, password: strong + " again" });
    assert.equal(login.json.valid, true);
  });

  await check("no console errors, CSP violations or requests to other origins", async () => {
    assert.deepEqual(problems, []);
  });
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  console.log(`FAIL setup: ${error && error.stack || error}`);
  results.push({ name: "setup", ok: false });
}
if (failed() > 0) {
  exitCode = 1;
  dumpServerLogs();
}
await cleanup();
clearTimeout(watchdog);
console.log(`browser: screenshots in ${path.relative(root, SHOTS) || SHOTS}: ${shots.join(", ")}`);
console.log(`browser: took ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`browser: ${passed()} passed, ${failed()} failed`);
process.exit(exitCode);
