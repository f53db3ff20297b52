// The reference frontend: no framework, no build step. The API base URL can point at a
// deployed API (set window.PWRESET_API or <meta name="pwreset-api">); same origin by default.
"use strict";

(function () {
  const meta = document.querySelector('meta[name="pwreset-api"]');
  const API = (window.PWRESET_API || (meta && meta.content) || "").replace(/\/$/, "");

  async function post(path, body) {
    const response = await fetch(API + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON */ }
    return { status: response.status, body: json || {} };
  }

  function show(id, text) {
    const el = document.getElementById(id);
    if (text !== undefined) el.textContent = text;
    el.hidden = false;
    return el;
  }
  function hide(id) { document.getElementById(id).hidden = true; }

  const requestForm = document.getElementById("request-form");
  if (requestForm) {
    requestForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      hide("email-error");
      const email = document.getElementById("email");
      const result = await post("/password-reset", { email: email.value });
      if (result.status === 202) {
        requestForm.hidden = true;
        show("request-done").focus();
      } else {
        email.setAttribute("aria-invalid", "true");
        show("email-error", result.body.detail || result.body.title || "Something went wrong. Try again.");
        email.focus();
      }
    });
  }

  const confirmForm = document.getElementById("confirm-form");
  if (confirmForm) {
    // The token travels in the fragment, which never reaches a server or a Referer.
    // Take it, then remove it from the address bar and history.
    const params = new URLSearchParams(window.location.hash.slice(1));
    const uid = params.get("uid") || "";
    const token = params.get("token") || "";
    history.replaceState(null, "", window.location.pathname);

    function linkProblem(body) {
      hide("checking");
      confirmForm.hidden = true;
      const text = body.code === "expired_token"
        ? "This link has expired."
        : "This link is not valid: it may have been used already or replaced by a newer one.";
      show("link-problem");
      show("link-problem-text", text);
    }

    (async () => {
      if (!uid || !token) { linkProblem({}); return; }
      const result = await post("/password-reset/verify", { uid, token });
      if (result.status === 200 && result.body.valid) {
        hide("checking");
        confirmForm.hidden = false;
        document.getElementById("new-password").focus();
      } else {
        linkProblem(result.body);
      }
    })();

    confirmForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("new-password");
      const errors = document.getElementById("password-error");
      errors.replaceChildren();
      errors.hidden = true;
      const result = await post("/password-reset/confirm", { uid, token, new_password: input.value });
      if (result.status === 200) {
        confirmForm.hidden = true;
        show("reset-done").focus();
      } else if (result.status === 422) {
        for (const reason of result.body.reasons || []) {
          const li = document.createElement("li");
          li.textContent = reason;
          errors.appendChild(li);
        }
        errors.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.focus();
      } else if (result.body.code === "invalid_token" || result.body.code === "expired_token") {
        linkProblem(result.body);
      } else {
        const li = document.createElement("li");
        li.textContent = result.body.title || "Something went wrong. Try again.";
        errors.appendChild(li);
        errors.hidden = false;
      }
    });
  }
})();
