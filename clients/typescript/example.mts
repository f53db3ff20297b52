// A frontend's use of the client, type-checked by `tsc --noEmit --strict` in scripts/test:
// if the declarations and the way a caller is meant to use them drift apart, it fails.
import { PwresetClient, PwresetProblem, linkParameters, type ReasonCode } from "./pwreset.mjs";

const messages: Record<ReasonCode, string> = {
  too_long: "Shorter, please.",
  too_short: "Longer, please.",
  all_digits: "Not only digits.",
  similar_to_email: "Not your address.",
  too_guessable: "Too easy to guess.",
  same_as_current: "Not the current one.",
};

export async function resetFromLink(href: string, password: string): Promise<string[]> {
  const api = new PwresetClient({ baseUrl: "https://api.example.com", language: "fr" });
  const { uid, token } = linkParameters(href);
  const verified = await api.verify(uid, token);
  const expires: Date = verified.expiresAt;
  void expires;
  try {
    await api.confirm(uid, token, password);
    return [];
  } catch (error) {
    if (error instanceof PwresetProblem && error.code === "weak_password") {
      return error.reasonCodes.map((code) => messages[code]);
    }
    if (error instanceof PwresetProblem && error.retryAfter !== null) {
      return [`Try again in ${error.retryAfter} s.`];
    }
    throw error;
  }
}
