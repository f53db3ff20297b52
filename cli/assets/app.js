// pwreset reference frontend for `/` (ask for a link), `/reset` (choose a new password)
// and `/change` (change a known password).
// Plain JavaScript: no framework, no build step, no third-party code, no inline script or
// style (the pages are served under a strict Content-Security-Policy).
//
// Configuration, all optional, from <meta> tags in the page:
//   pwreset-api         base URL of the API; empty = same origin. window.PWRESET_API (set by
//                       a script of yours loaded before this one) wins over the meta tag.
//   pwreset-signin      where "Sign in" points after a successful reset (default "/").
//   pwreset-min-length  minimum length shown while typing (default 12); keep it equal to
//                       the API's PASSWORD_MIN_LENGTH. The API has the last word.
//
// Words: every text comes from assets/i18n.json (English, German, French, Spanish).
// `pwreset serve` writes the page in the language the request's Accept-Language asks for
// and puts that language's words in a JSON data block (#pwreset-i18n); a static copy of the
// pages has no data block, so this script fetches i18n.json from beside itself, picks the
// browser's language and writes the page's texts itself. The API's `reasons` come back in
// the same language (the browser sends its Accept-Language with every call).
// Every call goes through the API client (pwreset.mjs, the same module a frontend of yours
// can import; its types are in clients/typescript/pwreset.d.ts).
import { PwresetClient, PwresetProblem } from "./pwreset.mjs";

(async function () {
  const SCRIPT_URL = import.meta.url;
  const LANGUAGES = ["en", "de", "fr", "es"];

  // The words of this page's language: from the data block the server wrote, or else from
  // i18n.json (and then the page's own texts are replaced here).
  async function loadWords() {
    const block = document.getElementById("pwreset-i18n");
    if (block) {
      try { return JSON.parse(block.textContent); } catch (_) { return {}; }
    }
    let all = {};
    try {
      const response = await fetch(new URL("i18n.json", SCRIPT_URL), { credentials: "omit", cache: "no-store" });
      all = await response.json();
    } catch (_) {
      return {};
    }
    const wanted = (navigator.languages || [navigator.language || "en"])
      .map((tag) => String(tag).toLowerCase().split(/[-_]/)[0]);
    const lang = wanted.find((tag) => LANGUAGES.includes(tag) && all[tag]) || "en";
    const words = all[lang] || {};
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const text = words[el.dataset.i18n];
      if (typeof text === "string") el.textContent = text;
    }
    return words;
  }

  const WORDS = await loadWords();
  // The text for `key`, with {name} replaced from `values`.
  function t(key, values) {
    let text = typeof WORDS[key] === "string" ? WORDS[key] : key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function meta(name) {
    const el = document.querySelector('meta[name="' + name + '"]');
    return el ? (el.getAttribute("content") || "").trim() : "";
  }

  const API = String(window.PWRESET_API || meta("pwreset-api") || "").replace(/\/+$/, "");
  const SIGNIN = meta("pwreset-signin") || "/";
  const MIN_LENGTH = parseInt(meta("pwreset-min-length"), 10) || 12;

  const OFFLINE = t("js.offline");
  const GENERIC = t("js.generic");

  const $ = (id) => document.getElementById(id);

  const client = new PwresetClient({ baseUrl: API });

  // One call through the client, as { status, body, retryAfter }. Never throws: a network
  // failure is status 0.
  async function call(okStatus, work) {
    try {
      const body = await work();
      return { status: okStatus, body: body || {}, retryAfter: null };
    } catch (error) {
      if (!(error instanceof PwresetProblem)) throw error;
      return {
        status: error.status,
        body: { code: error.code, title: error.title, detail: error.detail, reasons: error.reasons },
        retryAfter: error.retryAfter === null ? null : String(error.retryAfter),
      };
    }
  }

  // Retry-After (seconds or an HTTP date) in words: "in 42 seconds", "in 3 minutes".
  function retryInWords(value) {
    let seconds = NaN;
    if (value && /^\s*\d+\s*$/.test(value)) {
      seconds = parseInt(value, 10);
    } else if (value) {
      seconds = Math.ceil((Date.parse(value) - Date.now()) / 1000);
    }
    if (!Number.isFinite(seconds) || seconds < 0) return t("js.retry.later");
    if (seconds <= 1) return t("js.retry.second");
    if (seconds < 120) return t("js.retry.seconds", { n: seconds });
    return t("js.retry.minutes", { n: Math.ceil(seconds / 60) });
  }

  function serviceProblem(result) {
    if (result.status === 0) return OFFLINE;
    if (result.status === 429) {
      return t("js.limited", { when: retryInWords(result.retryAfter) });
    }
    if (result.status === 503) {
      return t("js.unavailable", { when: retryInWords(result.retryAfter) });
    }
    return GENERIC;
  }

  function show(el) { el.hidden = false; return el; }
  function hide(el) { el.hidden = true; return el; }

  function focus(el) {
    if (!el.hasAttribute("tabindex") && !/^(INPUT|BUTTON|A|SELECT|TEXTAREA)$/.test(el.tagName)) {
      el.setAttribute("tabindex", "-1");
    }
    el.focus();
  }

  // An error tied to its input: visible text, aria-describedby (set in the HTML),
  // aria-invalid, and focus on the input so a screen reader reads the error with it.
  function fieldError(input, error, text) {
    if (text !== undefined) error.textContent = text;
    show(error);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
  function clearFieldError(input, error) {
    hide(error);
    input.removeAttribute("aria-invalid");
  }

  function problem(el, text) {
    el.textContent = text;
    show(el);
    focus(el);
  }

  // Guards a form against double submission while a request is in flight.
  async function busy(button, work) {
    if (button.getAttribute("aria-busy") === "true") return;
    button.setAttribute("aria-busy", "true");
    try { await work(); } finally { button.removeAttribute("aria-busy"); }
  }

  // The "send me a link" form, on `/` and inline on `/reset` when a link cannot be used.
  // `returnTo` (from this page's own address) goes with the request; the API accepts it
  // only from its allow-list, and the link it mails carries it.
  function requestForm(ids, onSent, returnTo) {
    const form = $(ids.form);
    const input = $(ids.input);
    const error = $(ids.error);
    const problemEl = $(ids.problem);
    const button = $(ids.submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(button, async () => {
        clearFieldError(input, error);
        hide(problemEl);
        const email = input.value.trim();
        if (!email) {
          fieldError(input, error, t("js.email.missing"));
          return;
        }
        const result = await call(202, () => client.requestReset(email, { returnTo }));
        if (result.status === 202) {
          onSent(email);
        } else if (result.body.code === "invalid_return_to") {
          problem(problemEl, t("js.return_to.invalid"));
        } else if (result.status === 400 || result.status === 413 || result.status === 415) {
          fieldError(input, error, t("js.email.invalid"));
        } else {
          problem(problemEl, serviceProblem(result));
        }
      });
    });
  }

  // ---------------------------------------------------------------- `/`: ask for a link
  if ($("request-page")) {
    show($("request-section"));
    requestForm(
      { form: "request-form", input: "email", error: "email-error", problem: "request-problem", submit: "request-submit" },
      (email) => {
        hide($("request-section"));
        $("request-done-address").textContent = email;
        document.title = t("done.title");
        focus(show($("request-done")));
      },
      // An app links here as `/?return_to=<its sign-in page>`.
      new URLSearchParams(window.location.search).get("return_to") || "",
    );
  }

  // ----------------------------------------------------- `/reset`: choose a new password
  if ($("reset-page")) {
    // The link carries uid and token in the fragment, which never reaches a server or a
    // Referer. Read them, then take them out of the address bar and the history entry.
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    let uid = params.get("uid") || "";
    let token = params.get("token") || "";
    // Where "Sign in" goes after success: the return_to the link carries (the API accepted
    // it from its RESET_RETURN_URLS allow-list when the link was asked for; only a valid
    // token gets this far), else the page's own setting.
    const returnTo = /^https?:\/\//.test(params.get("return_to") || "") ? params.get("return_to") : "";
    if (window.location.hash) {
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    // A link pasted into this tab's address bar only changes the fragment: start over with it.
    window.addEventListener("hashchange", () => {
      if (/(^|[#&])token=/.test(window.location.hash)) window.location.reload();
    });

    const form = $("confirm-form");
    const input = $("new-password");
    const error = $("password-error");
    const errorTitle = $("password-error-title");
    const reasons = $("password-reasons");
    const length = $("password-length");
    const lengthLive = $("password-length-live");

    for (const el of document.querySelectorAll(".min-length")) el.textContent = String(MIN_LENGTH);

    const LINK_PROBLEMS = {
      expired_token: [t("js.link.expired.title"), t("js.link.expired.text")],
      invalid_token: [t("js.link.invalid.title"), t("js.link.invalid.text")],
      missing: [t("js.link.missing.title"), t("js.link.missing.text")],
    };

    function linkProblem(code) {
      const [title, text] = LINK_PROBLEMS[code] || LINK_PROBLEMS.invalid_token;
      uid = "";
      token = "";
      hide($("checking"));
      hide($("verify-failed"));
      hide(form);
      $("link-problem-title").textContent = title;
      $("link-problem-text").textContent = text;
      $("link-problem").dataset.code = code;
      $("page-title").textContent = t("js.reset.heading");
      document.title = title;
      show($("link-problem"));
      focus($("link-problem-title"));
    }

    requestForm(
      { form: "resend-form", input: "resend-email", error: "resend-email-error", problem: "resend-problem", submit: "resend-submit" },
      (email) => {
        hide($("resend-form"));
        $("resend-done-address").textContent = email;
        document.title = t("done.title");
        focus(show($("resend-done")));
      },
      returnTo,
    );

    async function verify() {
      hide($("verify-failed"));
      show($("checking"));
      const result = await call(200, () => client.verify(uid, token));
      if (result.status === 200 && result.body.valid === true) {
        // For password managers: the account the new password belongs to.
        $("reset-username").value = typeof result.body.email === "string" ? result.body.email : "";
        hide($("checking"));
        show(form);
        input.focus();
      } else if (result.status === 400) {
        linkProblem(result.body.code === "expired_token" ? "expired_token" : "invalid_token");
      } else {
        hide($("checking"));
        show($("verify-failed"));
        problem($("verify-failed-text"), t("js.verify.failed") + " " + serviceProblem(result));
      }
    }
    $("verify-retry").addEventListener("click", verify);

    // Live feedback: characters as the API counts them (NFKC code points) against the minimum.
    // The visible line is read with the input (aria-describedby); the live region speaks only
    // when the verdict changes, not on every keystroke.
    let lengthState = "empty";
    function characters() { return Array.from(input.value.normalize("NFKC")).length; }
    function updateLength() {
      const n = characters();
      const state = n === 0 ? "empty" : n < MIN_LENGTH ? "short" : "ok";
      if (state === "ok") {
        length.textContent = t("js.length.ok", { n });
      } else if (state === "short") {
        length.textContent = t("js.length.short", { n, min: MIN_LENGTH, missing: MIN_LENGTH - n });
      } else {
        length.textContent = t("js.length.empty", { min: MIN_LENGTH });
      }
      length.dataset.state = state;
      if (state !== lengthState) {
        if (state === "ok") lengthLive.textContent = t("js.length.live.ok");
        else if (lengthState === "ok") lengthLive.textContent = t("js.length.live.short", { min: MIN_LENGTH });
        lengthState = state;
      }
    }
    input.addEventListener("input", updateLength);
    updateLength();

    $("show-password").addEventListener("change", (event) => {
      input.type = event.target.checked ? "text" : "password";
    });

    function passwordProblems(title, list) {
      errorTitle.textContent = title;
      reasons.replaceChildren();
      for (const reason of list) {
        const li = document.createElement("li");
        li.textContent = reason;
        reasons.appendChild(li);
      }
      // The typed password stays in the field: the user may only need to add to it.
      fieldError(input, error);
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy($("confirm-submit"), async () => {
        clearFieldError(input, error);
        hide($("confirm-problem"));
        const n = characters();
        if (n < MIN_LENGTH) {
          passwordProblems(t("js.short.title"), [t("js.short.reason", { min: MIN_LENGTH, n })]);
          return;
        }
        const result = await call(200, () => client.confirm(uid, token, input.value));
        if (result.status === 200) {
          uid = "";
          token = "";
          input.value = "";
          hide(form);
          $("signin-link").href = returnTo || SIGNIN;
          $("page-title").textContent = t("js.reset.heading");
          document.title = t("js.changed.title");
          focus(show($("reset-done")));
        } else if (result.status === 422) {
          const list = Array.isArray(result.body.reasons) && result.body.reasons.length
            ? result.body.reasons.map(String)
            : [result.body.detail || t("js.weak.fallback")];
          passwordProblems(t("password.error.title"), list);
        } else if (result.body.code === "invalid_token" || result.body.code === "expired_token") {
          linkProblem(result.body.code);
        } else {
          problem($("confirm-problem"), serviceProblem(result));
        }
      });
    });

    if (!uid || !token) {
      linkProblem("missing");
    } else {
      verify();
    }
  }

  // ------------------------------------------------- `/change`: change a known password
  if ($("change-page")) {
    const form = show($("change-form"));
    const email = $("change-email");
    const current = $("current-password");
    const fresh = $("changed-password");
    const problemEl = $("change-problem");
    for (const el of document.querySelectorAll(".min-length")) el.textContent = String(MIN_LENGTH);
    const fields = [
      [email, $("change-email-error")],
      [current, $("current-password-error")],
      [fresh, $("changed-password-error")],
    ];

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy($("change-submit"), async () => {
        for (const [input, error] of fields) clearFieldError(input, error);
        hide(problemEl);
        if (!email.value.trim()) {
          fieldError(email, $("change-email-error"), t("js.email.missing"));
          return;
        }
        if (!current.value) {
          fieldError(current, $("current-password-error"), t("js.current.missing"));
          return;
        }
        const result = await call(200, () => client.changePassword(email.value.trim(), current.value, fresh.value));
        if (result.status === 200) {
          current.value = "";
          fresh.value = "";
          hide(form);
          document.title = t("js.changed.title");
          focus(show($("change-done")));
        } else if (result.status === 401) {
          current.value = "";
          fieldError(current, $("current-password-error"), t("js.credentials"));
        } else if (result.status === 422) {
          const list = Array.isArray(result.body.reasons) && result.body.reasons.length
            ? result.body.reasons.map(String)
            : [result.body.detail || t("js.weak.fallback")];
          const reasons = $("changed-password-reasons");
          reasons.replaceChildren();
          for (const reason of list) {
            const li = document.createElement("li");
            li.textContent = reason;
            reasons.appendChild(li);
          }
          fieldError(fresh, $("changed-password-error"));
        } else if (result.status === 400) {
          fieldError(email, $("change-email-error"), t("js.email.invalid"));
        } else if (result.status === 429) {
          problem(problemEl, t("js.change.limited", { when: retryInWords(result.retryAfter) }));
        } else {
          problem(problemEl, serviceProblem(result));
        }
      });
    });
  }
})();
