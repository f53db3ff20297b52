//! The reference web pages: `GET /` (ask for a link), `GET /reset` (choose a password) and
//! `GET /change` (change a known one), and the API's OpenAPI document at `GET /openapi.json`.
//! Plain HTML, CSS and JavaScript embedded in the binary: no build step, no inline script
//! or style, no remote resources. `tests/browser/flow.mjs` walks them in Chromium.
//!
//! Each page is written in the language the request's `Accept-Language` asks for: the text
//! of every `data-i18n` element comes from `assets/i18n.json`, and that language's words go
//! into the page as a JSON data block for `app.js`'s messages.

use axum::Router;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodRouter, get};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_LANGUAGE, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue};
use pwreset_core::http::Problem;
use pwreset_core::i18n::Locale;

const INDEX: &str = include_str!("../assets/index.html");
const RESET: &str = include_str!("../assets/reset.html");
const CHANGE: &str = include_str!("../assets/change.html");
const SCRIPT: &str = include_str!("../assets/app.js");
/// The API client app.js imports; a frontend of yours can import it too.
const CLIENT: &str = include_str!("../../clients/typescript/pwreset.mjs");
const STYLE: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/favicon.svg");
/// Every text of the pages in every shipped language (`{"en": {"key": "text", …}, …}`).
const WORDS: &str = include_str!("../assets/i18n.json");
/// The repository's `openapi.yaml` as JSON (converted by `build.rs`).
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// Scripts and styles only from this origin, no inline code, no framing, no referrer: a
/// reset page holds a live token.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /`, `GET /reset`, `GET /change`, their assets and `GET /openapi.json`.
pub fn router() -> Router {
    Router::new()
        .route("/", html_page(Page::Index))
        .route("/index.html", html_page(Page::Index))
        .route("/reset", html_page(Page::Reset))
        .route("/change", html_page(Page::Change))
        .route("/assets/i18n.json", page("application/json", WORDS))
        .route(
            "/assets/pwreset.mjs",
            page("text/javascript; charset=utf-8", CLIENT),
        )
        .route(
            "/assets/app.js",
            page("text/javascript; charset=utf-8", SCRIPT),
        )
        .route("/assets/app.css", page("text/css; charset=utf-8", STYLE))
        .route("/assets/favicon.svg", page("image/svg+xml", ICON))
        .route("/favicon.ico", page("image/svg+xml", ICON))
        .route("/openapi.json", page("application/json", OPENAPI_JSON))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Page {
    Index,
    Reset,
    Change,
}

impl Page {
    const ALL: [Self; 3] = [Self::Index, Self::Reset, Self::Change];

    fn source(self) -> &'static str {
        match self {
            Self::Index => INDEX,
            Self::Reset => RESET,
            Self::Change => CHANGE,
        }
    }
}

type Words = BTreeMap<String, BTreeMap<String, String>>;

/// The dictionary, read once (it is compiled in; the tests below check that it parses and
/// covers every key in every language).
fn words() -> &'static Words {
    static WORDS_PARSED: OnceLock<Words> = OnceLock::new();
    WORDS_PARSED.get_or_init(|| serde_json::from_str(WORDS).unwrap_or_default())
}

/// Every page in every language, written once.
fn localized(page: Page, locale: Locale) -> &'static str {
    static PAGES: OnceLock<HashMap<(Page, Locale), String>> = OnceLock::new();
    PAGES
        .get_or_init(|| {
            let mut pages = HashMap::new();
            for page in Page::ALL {
                for locale in Locale::ALL {
                    pages.insert((page, locale), localize(page.source(), locale, words()));
                }
            }
            pages
        })
        .get(&(page, locale))
        .map_or(page.source(), String::as_str)
}

/// `html` in `locale`: `lang` set, the text of every `data-i18n` element replaced (each
/// holds text only, no markup), and the language's words as a JSON data block before
/// `</head>` (not a script: the CSP's `script-src 'self'` is untouched).
fn localize(html: &str, locale: Locale, all: &Words) -> String {
    const MARK: &str = "data-i18n=\"";
    let empty = BTreeMap::new();
    let language = all.get(locale.tag()).unwrap_or(&empty);
    let mut out = String::with_capacity(html.len() + 8192);
    let mut rest = html;
    while let Some(at) = rest.find(MARK) {
        let key_start = at + MARK.len();
        let Some(key_len) = rest[key_start..].find('"') else {
            break;
        };
        let key = &rest[key_start..key_start + key_len];
        let Some(tag_end) = rest[key_start..].find('>').map(|i| key_start + i + 1) else {
            break;
        };
        let Some(text_end) = rest[tag_end..].find('<').map(|i| tag_end + i) else {
            break;
        };
        out.push_str(&rest[..tag_end]);
        match language.get(key) {
            Some(text) => out.push_str(&escape_html(text)),
            None => out.push_str(&rest[tag_end..text_end]),
        }
        rest = &rest[text_end..];
    }
    out.push_str(rest);
    let block = serde_json::to_string(language)
        .unwrap_or_else(|_| "{}".to_owned())
        .replace('<', "\\u003c");
    out.replacen(
        "<html lang=\"en\">",
        &format!("<html lang=\"{}\">", locale.tag()),
        1,
    )
    .replacen(
        "</head>",
        &format!("<script type=\"application/json\" id=\"pwreset-i18n\">{block}</script>\n</head>"),
        1,
    )
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page in the request's language (`Vary: Accept-Language`).
fn html_page(which: Page) -> MethodRouter {
    get(move |headers: HeaderMap| async move {
        let locale = Locale::negotiate(
            headers
                .get(ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok()),
        );
        let mut response = asset("text/html; charset=utf-8", localized(which, locale));
        let headers = response.headers_mut();
        headers.insert(CONTENT_LANGUAGE, HeaderValue::from_static(locale.tag()));
        headers.insert(VARY, HeaderValue::from_static("Accept-Language"));
        response
    })
    .fallback(|| async { Problem::method_not_allowed("GET, HEAD") })
}

/// One static page: `GET` and `HEAD`, any other method a 405 problem.
fn page(content_type: &'static str, body: &'static str) -> MethodRouter {
    get(move || async move { asset(content_type, body) })
        .fallback(|| async { Problem::method_not_allowed("GET, HEAD") })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `data-i18n` key of `html`.
    fn keys(html: &str) -> Vec<&str> {
        html.split("data-i18n=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[test]
    fn every_language_has_every_text_of_every_page_and_every_message() {
        let all = words();
        let english = all.get("en").expect("English");
        for locale in Locale::ALL {
            let language = all.get(locale.tag()).expect("every shipped language");
            let mut mine: Vec<&String> = language.keys().collect();
            let mut theirs: Vec<&String> = english.keys().collect();
            mine.sort();
            theirs.sort();
            assert_eq!(mine, theirs, "{locale} has the same keys as English");
            for page in Page::ALL {
                for key in keys(page.source()) {
                    assert!(language.contains_key(key), "{locale}: {key}");
                }
            }
            // Every message app.js asks for.
            let asked: Vec<&str> = SCRIPT
                .match_indices("t(\"")
                .filter(|(at, _)| {
                    !SCRIPT[..*at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                })
                .filter_map(|(at, _)| SCRIPT[at + 3..].split('"').next())
                .collect();
            assert!(asked.len() >= 30, "{asked:?}");
            for key in asked {
                assert!(language.contains_key(key), "{locale}: {key} (app.js)");
            }
        }
    }

    #[test]
    fn a_page_is_written_in_the_language_asked_for() {
        for page in Page::ALL {
            let english = localized(page, Locale::En);
            for locale in [Locale::De, Locale::Fr, Locale::Es] {
                let html = localized(page, locale);
                assert!(html.contains(&format!("<html lang=\"{}\">", locale.tag())));
                assert!(html.contains("id=\"pwreset-i18n\""));
                // Not one element keeps its English text.
                let language = &words()[locale.tag()];
                for key in keys(page.source()) {
                    let text = escape_html(&language[key]);
                    assert!(html.contains(&format!(">{text}<")), "{locale} {key}");
                    let en = escape_html(&words()["en"][key]);
                    if en != text {
                        assert!(
                            !html.contains(&format!(">{en}<")),
                            "{locale} {key} still English"
                        );
                    }
                }
                assert_ne!(html, english);
            }
            // The data block holds no markup.
            let block = english.split("id=\"pwreset-i18n\">").nth(1).expect("block");
            let json = block.split("</script>").next().expect("end");
            assert!(!json.contains('<'));
            assert!(serde_json::from_str::<BTreeMap<String, String>>(json).is_ok());
        }
    }
}
