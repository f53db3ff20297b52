// pwreset's API from a browser or Node 18+: ask for a link, check it, choose a new
// password, change a known one. One ES module, no dependencies; types in pwreset.d.mts.
// Every answer that is not a success throws a PwresetProblem carrying the RFC 9457 problem
// document's fields (code, status, reasons, reasonCodes, retryAfter); a network failure
// throws a PwresetProblem with status 0 and code "network_error".
//
//   import { PwresetClient } from "./pwreset.mjs";
//   const api = new PwresetClient({ baseUrl: "https://abc123.execute-api.eu-west-1.amazonaws.com" });
//   await api.requestReset("ana@example.org", { returnTo: "https://app.example.com/signin" });
//
// The operations, codes and shapes are those of openapi.yaml; clients/typescript/client.test.mjs
// checks them against the document a running pwreset serves.

/** Every problem code the API answers (openapi.yaml, components.schemas.Problem). */
export const PROBLEM_CODES = Object.freeze([
  "invalid_request",
  "invalid_email",
  "invalid_return_to",
  "invalid_token",
  "expired_token",
  "weak_password",
  "invalid_credentials",
  "payload_too_large",
  "unsupported_media_type",
  "rate_limited",
  "not_found",
  "method_not_allowed",
  "unavailable",
  "internal_error",
]);

/** Every rule a new password can break (openapi.yaml, components.schemas.ReasonCode). */
export const REASON_CODES = Object.freeze([
  "too_long",
  "too_short",
  "all_digits",
  "similar_to_email",
  "too_guessable",
  "same_as_current",
]);

/** A refusal or failure, with the problem document's fields. */
export class PwresetProblem extends Error {
  constructor(status, body, retryAfter) {
    const problem = body && typeof body === "object" ? body : {};
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "PwresetProblem";
    this.status = status;
    this.code = typeof problem.code === "string" ? problem.code : status === 0 ? "network_error" : "unknown";
    this.title = typeof problem.title === "string" ? problem.title : "";
    this.detail = typeof problem.detail === "string" ? problem.detail : "";
    this.reasons = Array.isArray(problem.reasons) ? problem.reasons.map(String) : [];
    this.reasonCodes = Array.isArray(problem.reason_codes) ? problem.reason_codes.map(String) : [];
    this.retryAfter = retryAfter;
  }
}

export class PwresetClient {
  /**
   * @param {{baseUrl?: string, language?: string, fetch?: typeof fetch}} [options]
   *   baseUrl: the API's base URL (default: this page's origin); language: an
   *   Accept-Language value for reasons and mails (a browser sends its own); fetch: for tests.
   */
  constructor(options = {}) {
    this.baseUrl = String(options.baseUrl || "").replace(/\/+$/, "");
    this.language = options.language || "";
    this.fetch = options.fetch || globalThis.fetch.bind(globalThis);
  }

  async #post(path, body, okStatus) {
    const headers = { "Content-Type": "application/json" };
    if (this.language) headers["Accept-Language"] = this.language;
    let response;
    try {
      response = await this.fetch(this.baseUrl + path, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (_) {
      throw new PwresetProblem(0, null, null);
    }
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON */ }
    if (response.status === okStatus) return json;
    const retry = response.headers.get("Retry-After");
    throw new PwresetProblem(response.status, json, retry !== null && /^\d+$/.test(retry) ? Number(retry) : null);
  }

  /** POST /password-reset: 202 for every well-formed address, known or not. */
  async requestReset(email, options = {}) {
    const body = { email };
    if (options.returnTo) body.return_to = options.returnTo;
    await this.#post("/password-reset", body, 202);
  }

  /** POST /password-reset/verify: no side effect. */
  async verify(uid, token) {
    const body = await this.#post("/password-reset/verify", { uid, token }, 200);
    return { valid: body.valid === true, expiresAt: new Date(body.expires_at), email: body.email };
  }

  /** POST /password-reset/confirm: a weak password throws with reasons; the link stays usable. */
  async confirm(uid, token, newPassword) {
    await this.#post("/password-reset/confirm", { uid, token, new_password: newPassword }, 200);
  }

  /** POST /password-change. */
  async changePassword(email, oldPassword, newPassword) {
    await this.#post("/password-change", { email, old_password: oldPassword, new_password: newPassword }, 200);
  }
}

/** uid, token and return_to from a reset link's fragment (or query). */
export function linkParameters(href) {
  const url = new URL(href);
  const params = new URLSearchParams(url.hash.replace(/^#/, "") || url.search.replace(/^\?/, ""));
  return { uid: params.get("uid") || "", token: params.get("token") || "", returnTo: params.get("return_to") || "" };
}
