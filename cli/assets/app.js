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
"use strict";

(function () {
  function meta(name) {
    const el = document.querySelector('meta[name="' + name + '"]');
    return el ? (el.getAttribute("content") || "").trim() : "";
  }

  const API = String(window.PWRESET_API || meta("pwreset-api") || "").replace(/\/+$/, "");
  const SIGNIN = meta("pwreset-signin") || "/";
  const MIN_LENGTH = parseInt(meta("pwreset-min-length"), 10) || 12;

  const OFFLINE = "We could not reach the server. Check your connection and try again.";
  const GENERIC = "Something went wrong on our side. Please try again in a few minutes.";

  const $ = (id) => document.getElementById(id);

  // One JSON POST to the API. Never throws: a network failure is status 0.
  async function post(path, body) {
    let response;
    try {
      response = await fetch(API + path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        referrerPolicy: "no-referrer",
        cache: "no-store",
      });
    } catch (_) {
      return { status: 0, body: {}, retryAfter: null };
    }
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON */ }
    return {
      status: response.status,
      body: json && typeof json === "object" ? json : {},
      // Cross-origin, readable only when the API exposes it (Access-Control-Expose-Headers).
      retryAfter: response.headers.get("Retry-After"),
    };
  }

  // Retry-After (seconds or an HTTP date) in words: "in 42 seconds", "in 3 minutes".
  function retryInWords(value) {
    let seconds = NaN;
    if (value && /^\s*\d+\s*$/.test(value)) {
      seconds = parseInt(value, 10);
    } else if (value) {
      seconds = Math.ceil((Date.parse(value) - Date.now()) / 1000);
    }
    if (!Number.isFinite(seconds) || seconds < 0) return "in a little while";
    if (seconds <= 1) return "in 1 second";
    if (seconds < 120) return "in " + seconds + " seconds";
    return "in " + Math.ceil(seconds / 60) + " minutes";
  }

  function serviceProblem(result) {
    if (result.status === 0) return OFFLINE;
    if (result.status === 429) {
      return "Too many requests from your network. Please try again " + retryInWords(result.retryAfter) + ".";
    }
    if (result.status === 503) {
      return "The service is busy or briefly unavailable. Please try again " + retryInWords(result.retryAfter) + ".";
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
  function requestForm(ids, onSent) {
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
          fieldError(input, error, "Enter your e-mail address.");
          return;
        }
        const result = await post("/password-reset", { email });
        if (result.status === 202) {
          onSent(email);
        } else if (result.status === 400 || result.status === 413 || result.status === 415) {
          fieldError(input, error, result.body.detail || result.body.title
            || "Enter an e-mail address like name@example.com.");
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
        document.title = "Check your e-mail";
        focus(show($("request-done")));
      },
    );
  }

  // ----------------------------------------------------- `/reset`: choose a new password
  if ($("reset-page")) {
    // The link carries uid and token in the fragment, which never reaches a server or a
    // Referer. Read them, then take them out of the address bar and the history entry.
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    let uid = params.get("uid") || "";
    let token = params.get("token") || "";
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
      expired_token: [
        "This link has expired",
        "Reset links work for a limited time, and this one ran out. Ask for a new link below; it goes to the same address.",
      ],
      invalid_token: [
        "This link can't be used",
        "It has already been used, the password was changed after it was sent, or it was not copied completely. Ask for a new link below.",
      ],
      missing: [
        "This page needs the link from your e-mail",
        "Open the link in the reset e-mail again (all of it), or ask for a new link below.",
      ],
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
      $("page-title").textContent = "Reset your password";
      document.title = title;
      show($("link-problem"));
      focus($("link-problem-title"));
    }

    requestForm(
      { form: "resend-form", input: "resend-email", error: "resend-email-error", problem: "resend-problem", submit: "resend-submit" },
      (email) => {
        hide($("resend-form"));
        $("resend-done-address").textContent = email;
        document.title = "Check your e-mail";
        focus(show($("resend-done")));
      },
    );

    async function verify() {
      hide($("verify-failed"));
      show($("checking"));
      const result = await post("/password-reset/verify", { uid, token });
      if (result.status === 200 && result.body.valid === true) {
        hide($("checking"));
        show(form);
        input.focus();
      } else if (result.status === 400) {
        linkProblem(result.body.code === "expired_token" ? "expired_token" : "invalid_token");
      } else {
        hide($("checking"));
        show($("verify-failed"));
        problem($("verify-failed-text"), "We could not check your link. " + serviceProblem(result));
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
        length.textContent = n + " characters: long enough";
      } else if (state === "short") {
        const missing = MIN_LENGTH - n;
        length.textContent = n + " of " + MIN_LENGTH + " characters: " + missing + " more needed";
      } else {
        length.textContent = "0 of " + MIN_LENGTH + " characters";
      }
      length.dataset.state = state;
      if (state !== lengthState) {
        if (state === "ok") lengthLive.textContent = "Long enough.";
        else if (lengthState === "ok") lengthLive.textContent = "Too short: at least " + MIN_LENGTH + " characters.";
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
          passwordProblems("This password is too short:", [
            "Use at least " + MIN_LENGTH + " characters (it has " + n + ").",
          ]);
          return;
        }
        const result = await post("/password-reset/confirm", { uid, token, new_password: input.value });
        if (result.status === 200) {
          uid = "";
          token = "";
          input.value = "";
          hide(form);
          $("signin-link").href = SIGNIN;
          $("page-title").textContent = "Reset your password";
          document.title = "Password changed";
          focus(show($("reset-done")));
        } else if (result.status === 422) {
          const list = Array.isArray(result.body.reasons) && result.body.reasons.length
            ? result.body.reasons.map(String)
            : [result.body.detail || "Choose a longer, less common password."];
          passwordProblems("Choose a different password:", list);
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
          fieldError(email, $("change-email-error"), "Enter your e-mail address.");
          return;
        }
        if (!current.value) {
          fieldError(current, $("current-password-error"), "Enter your current password.");
          return;
        }
        const result = await post("/password-change", {
          email: email.value.trim(),
          old_password: current.value,
          new_password: fresh.value,
        });
        if (result.status === 200) {
          current.value = "";
          fresh.value = "";
          hide(form);
          document.title = "Password changed";
          focus(show($("change-done")));
        } else if (result.status === 401) {
          current.value = "";
          fieldError(current, $("current-password-error"),
            "The e-mail address or the current password is not right. Check both and try again.");
        } else if (result.status === 422) {
          const list = Array.isArray(result.body.reasons) && result.body.reasons.length
            ? result.body.reasons.map(String)
            : [result.body.detail || "Choose a longer, less common password."];
          const reasons = $("changed-password-reasons");
          reasons.replaceChildren();
          for (const reason of list) {
            const li = document.createElement("li");
            li.textContent = reason;
            reasons.appendChild(li);
          }
          fieldError(fresh, $("changed-password-error"));
        } else if (result.status === 400) {
          fieldError(email, $("change-email-error"), result.body.detail || result.body.title
            || "Enter an e-mail address like name@example.com.");
        } else if (result.status === 429) {
          problem(problemEl, "Too many attempts. Please try again " + retryInWords(result.retryAfter) + ".");
        } else {
          problem(problemEl, serviceProblem(result));
        }
      });
    });
  }
})();
