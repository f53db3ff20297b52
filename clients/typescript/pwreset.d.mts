// Types of pwreset.mjs (the API of openapi.yaml), for TypeScript: `import { PwresetClient }
// from "./pwreset.mjs"` picks them up. No runtime code here; `tsc --noEmit --strict` checks
// them against example.mts in scripts/test.

export type ProblemCode =
  | "invalid_request"
  | "invalid_email"
  | "invalid_return_to"
  | "invalid_token"
  | "expired_token"
  | "weak_password"
  | "invalid_credentials"
  | "payload_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "not_found"
  | "method_not_allowed"
  | "unavailable"
  | "internal_error";

export type ReasonCode =
  | "too_long"
  | "too_short"
  | "all_digits"
  | "similar_to_email"
  | "too_guessable"
  | "same_as_current";

export declare const PROBLEM_CODES: readonly ProblemCode[];
export declare const REASON_CODES: readonly ReasonCode[];

/** A refusal (4xx), a failure (5xx), or no answer at all (status 0, "network_error"). */
export declare class PwresetProblem extends Error {
  readonly status: number;
  readonly code: ProblemCode | "network_error" | "unknown";
  readonly title: string;
  readonly detail: string;
  /** `weak_password`: each broken rule in the request's language. */
  readonly reasons: string[];
  /** `weak_password`: the same rules, in the same order, as stable codes. */
  readonly reasonCodes: ReasonCode[];
  /** Seconds, from `Retry-After` (429, 503); null when absent or unreadable. */
  readonly retryAfter: number | null;
}

export interface ClientOptions {
  /** The API's base URL; default: the page's own origin. */
  baseUrl?: string;
  /** An Accept-Language value for reasons and mails; a browser sends its own. */
  language?: string;
  fetch?: typeof fetch;
}

export interface Verified {
  valid: true;
  expiresAt: Date;
  /** The account's stored address (for a hidden autocomplete="username" field). */
  email: string;
}

export declare class PwresetClient {
  constructor(options?: ClientOptions);
  requestReset(email: string, options?: { returnTo?: string }): Promise<void>;
  verify(uid: string, token: string): Promise<Verified>;
  confirm(uid: string, token: string, newPassword: string): Promise<void>;
  changePassword(email: string, oldPassword: string, newPassword: string): Promise<void>;
}

export declare function linkParameters(href: string): { uid: string; token: string; returnTo: string };
