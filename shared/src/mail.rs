//! The two messages pwreset sends, the reset link and the "your password was changed"
//! notice, each a text and an HTML part rendered from the askama templates in
//! `shared/templates/mail/` (compiled in; the engine HTML-escapes every value in the HTML
//! parts). Inline styles only, no remote images.

use crate::domain::{EmailAddress, UserId};
use crate::ports::{ChangedVia, OutgoingMail};
use crate::token::ResetToken;

/// `RESET_LINK_TEMPLATE`: an absolute http(s) URL with `{uid}` and `{token}`. The link in
/// a mail always comes from here, never from a request's Host header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTemplate(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkTemplateError {
    #[error("must start with https:// or http://")]
    Scheme,
    #[error("must contain both {{uid}} and {{token}}")]
    Placeholders,
    #[error("must not contain whitespace, quotes or angle brackets")]
    Characters,
}

impl LinkTemplate {
    pub fn parse(raw: &str) -> Result<Self, LinkTemplateError> {
        let raw = raw.trim();
        if !(raw.starts_with("https://") || raw.starts_with("http://")) {
            return Err(LinkTemplateError::Scheme);
        }
        if !raw.contains("{uid}") || !raw.contains("{token}") {
            return Err(LinkTemplateError::Placeholders);
        }
        if raw.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`')
        }) {
            return Err(LinkTemplateError::Characters);
        }
        Ok(Self(raw.to_owned()))
    }

    /// uid and token are URL-safe by construction, so they go in as they are.
    pub fn render(&self, uid: &UserId, token: &ResetToken) -> String {
        self.0
            .replace("{uid}", uid.as_str())
            .replace("{token}", token.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// "1 hour", "90 minutes", "2 days", "45 seconds".
pub fn lifetime_in_words(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if seconds >= 86_400 && seconds % 86_400 == 0 {
        plural(seconds / 86_400, "day")
    } else if seconds >= 3600 && seconds % 3600 == 0 {
        plural(seconds / 3600, "hour")
    } else if seconds >= 60 && seconds % 60 == 0 {
        plural(seconds / 60, "minute")
    } else {
        plural(seconds, "second")
    }
}

/// Font stack for every cell: clients drop styles inherited from `<body>`.
pub(crate) const FONT: &str =
    "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";

/// Zero-width fillers after the preheader keep the client from pulling body text into the
/// inbox preview.
pub(crate) const PREHEADER_FILLER: &str = "&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;";

/// The reset link, text part (`templates/mail/reset_link.txt`).
#[derive(askama::Template)]
#[template(path = "mail/reset_link.txt")]
struct ResetLinkText<'a> {
    product: &'a str,
    to: &'a str,
    link: &'a str,
    lifetime: &'a str,
}

/// The reset link, HTML part (`templates/mail/reset_link.html` in `layout.html`).
#[derive(askama::Template)]
#[template(path = "mail/reset_link.html")]
struct ResetLinkHtml<'a> {
    title: &'a str,
    product: &'a str,
    to: &'a str,
    link: &'a str,
    lifetime: &'a str,
}

/// The "password changed" notice, text part.
#[derive(askama::Template)]
#[template(path = "mail/password_changed.txt")]
struct PasswordChangedText<'a> {
    product: &'a str,
    to: &'a str,
    /// "with a password-reset link" or "by someone who entered the current password".
    how: &'a str,
}

/// The "password changed" notice, HTML part.
#[derive(askama::Template)]
#[template(path = "mail/password_changed.html")]
struct PasswordChangedHtml<'a> {
    title: &'a str,
    product: &'a str,
    to: &'a str,
    how: &'a str,
    /// The callout's text, which names the product.
    warning: &'a str,
}

#[derive(Debug, Clone)]
pub struct MailComposer {
    product: String,
    links: LinkTemplate,
    lifetime_secs: i64,
}

impl MailComposer {
    pub fn new(product: impl Into<String>, links: LinkTemplate, lifetime_secs: i64) -> Self {
        Self {
            product: product.into(),
            links,
            lifetime_secs,
        }
    }

    /// The reset link: subject, a plain-text part that reads well on its own (the link on a
    /// line by itself, the first URL in the text), and an HTML part built the way mail
    /// clients render reliably (tables, inline styles, no remote images, a preheader).
    pub fn reset_link(&self, to: &EmailAddress, uid: &UserId, token: &ResetToken) -> OutgoingMail {
        let link = self.links.render(uid, token);
        let product = self.product.as_str();
        let lifetime = lifetime_in_words(self.lifetime_secs);
        let subject = format!("Reset your {product} password");
        let (to_text, link, lifetime) = (to.as_str(), link.as_str(), lifetime.as_str());
        let text = ResetLinkText {
            product,
            to: to_text,
            link,
            lifetime,
        }
        .to_string();
        let html = ResetLinkHtml {
            title: &subject,
            product,
            to: to_text,
            link,
            lifetime,
        }
        .to_string();
        OutgoingMail {
            to: to.clone(),
            subject,
            text,
            html: Some(html),
        }
    }

    /// The notice sent after a reset or a change lands. It carries no link at all: a
    /// phishing copy of it could not be told apart if the real one had one.
    pub fn password_changed(&self, to: &EmailAddress, via: ChangedVia) -> OutgoingMail {
        let product = self.product.as_str();
        let subject = format!("Your {product} password was changed");
        let how = match via {
            ChangedVia::Reset => "with a password-reset link",
            ChangedVia::Change => "by someone who entered the current password",
        };
        let text = PasswordChangedText {
            product,
            to: to.as_str(),
            how,
        }
        .to_string();
        let warning = format!(
            "Secure your e-mail account first (change its password): whoever can read your mail can reset your {product} password. \
             Then ask for a new {product} password reset, choose a new password, and tell the {product} team so they can check your account."
        );
        let html = PasswordChangedHtml {
            title: &subject,
            product,
            to: to.as_str(),
            how,
            warning: &warning,
        }
        .to_string();
        OutgoingMail {
            to: to.clone(),
            subject,
            text,
            html: Some(html),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PasswordHash;
    use crate::token::{TokenKeys, TokenSigner, TokenSubject};

    fn token(uid: &UserId, email: &EmailAddress) -> ResetToken {
        let hash = PasswordHash::new("$argon2id$x");
        TokenSigner::new(TokenKeys::generate(), 3600).sign(
            TokenSubject {
                uid,
                email,
                password_hash: &hash,
            },
            0,
        )
    }

    #[test]
    fn lifetimes_read_as_words() {
        assert_eq!(lifetime_in_words(3600), "1 hour");
        assert_eq!(lifetime_in_words(7200), "2 hours");
        assert_eq!(lifetime_in_words(5400), "90 minutes");
        assert_eq!(lifetime_in_words(60), "1 minute");
        assert_eq!(lifetime_in_words(90), "90 seconds");
        assert_eq!(lifetime_in_words(86_400), "1 day");
    }

    #[test]
    fn link_templates_need_a_scheme_and_both_placeholders() {
        assert!(LinkTemplate::parse("https://app.example/reset#uid={uid}&token={token}").is_ok());
        assert_eq!(
            LinkTemplate::parse("app.example/{uid}/{token}"),
            Err(LinkTemplateError::Scheme)
        );
        assert_eq!(
            LinkTemplate::parse("https://app.example/{uid}"),
            Err(LinkTemplateError::Placeholders)
        );
        assert_eq!(
            LinkTemplate::parse("https://app.example/\"{uid}{token}"),
            Err(LinkTemplateError::Characters)
        );
    }

    #[test]
    fn the_reset_mail_carries_the_templated_link_and_its_lifetime() {
        let uid = UserId::parse("abc_DEF-1").expect("valid");
        let to = EmailAddress::parse("Mike@Example.org").expect("valid");
        let token = token(&uid, &to);
        let links = LinkTemplate::parse("https://app.example/reset#uid={uid}&token={token}")
            .expect("valid");
        let mail = MailComposer::new("Acme", links, 3600).reset_link(&to, &uid, &token);
        let link = format!(
            "https://app.example/reset#uid=abc_DEF-1&token={}",
            token.as_str()
        );
        assert_eq!(mail.to, to);
        assert!(mail.text.contains(&link));
        assert!(mail.text.contains("expires in 1 hour"));
        let html = mail.html.expect("html part");
        // The engine escapes `&` as the numeric reference `&#38;`.
        assert!(html.contains(&link.replace('&', "&#38;")));
        assert!(html.contains("expires in 1 hour"));
        assert!(!html.contains("<img"));
        assert!(
            !format!(
                "{:?}",
                OutgoingMail {
                    to: to.clone(),
                    subject: String::new(),
                    text: link.clone(),
                    html: None
                }
            )
            .contains(&link)
        );
    }

    #[test]
    fn the_changed_notice_has_no_link() {
        let links = LinkTemplate::parse("https://app.example/r#{uid}.{token}").expect("valid");
        let to = EmailAddress::parse("a@b.org").expect("valid");
        let mail = MailComposer::new("Acme", links, 3600).password_changed(&to, ChangedVia::Reset);
        assert!(!mail.text.contains("https://"));
        assert!(mail.subject.contains("changed"));
    }

    #[test]
    fn the_reset_mail_reads_well_in_text_and_renders_in_mail_clients() {
        let uid = UserId::parse("u1").expect("valid");
        let to = EmailAddress::parse("mike@example.org").expect("valid");
        let token = token(&uid, &to);
        let links = LinkTemplate::parse("https://app.example/reset#uid={uid}&token={token}")
            .expect("valid");
        let mail = MailComposer::new("Acme", links, 1800).reset_link(&to, &uid, &token);
        let link = format!("https://app.example/reset#uid=u1&token={}", token.as_str());
        // Plain text: the link alone on its line, the first URL; expiry and "not you" in words.
        assert!(mail.text.lines().any(|line| line == link), "{}", mail.text);
        assert_eq!(
            mail.text.split_whitespace().find(|w| w.starts_with("http")),
            Some(link.as_str())
        );
        assert!(mail.text.contains("expires in 30 minutes"));
        assert!(
            mail.text
                .contains("Did not ask for this? You can ignore this message")
        );
        assert!(
            mail.text
                .lines()
                .all(|line| line.chars().count() <= 78 || line == link)
        );
        // HTML: tables with inline styles, a hidden preheader, no remote resources, no CSS
        // blocks that clients strip.
        let html = mail.html.expect("html part");
        assert!(html.contains("role=\"presentation\""));
        assert!(html.contains("display:none"), "preheader");
        assert!(html.contains("Choose a new Acme password. The link expires in 30 minutes"));
        assert!(html.contains("expires in 30 minutes"));
        assert!(html.contains("Did not ask for this?"));
        assert!(!html.contains("<style") && !html.contains("<img") && !html.contains("<script"));
        assert!(!html.contains("src="), "no remote resources");
        assert_eq!(
            html.matches(&link.replace('&', "&#38;")).count(),
            3,
            "button, href and text"
        );
    }

    #[test]
    fn the_changed_notice_says_what_to_do_and_links_nowhere() {
        let links = LinkTemplate::parse("https://app.example/r#{uid}.{token}").expect("valid");
        let to = EmailAddress::parse("a@b.org").expect("valid");
        let mail = MailComposer::new("Acme", links, 3600).password_changed(&to, ChangedVia::Reset);
        assert!(mail.text.contains("If you did not:"));
        assert!(mail.text.contains("Secure your e-mail account first"));
        let html = mail.html.expect("html");
        assert!(html.contains("Did not change it?"));
        assert!(html.contains("display:none"), "preheader");
        assert!(!html.contains("href="), "no link at all in the notice");
        assert!(!html.contains("<img"));
    }

    #[test]
    fn markup_in_names_is_escaped_in_html() {
        let links = LinkTemplate::parse("https://app.example/r#{uid}.{token}").expect("valid");
        let to = EmailAddress::parse("a@b.org").expect("valid");
        let mail =
            MailComposer::new("<b>Acme</b>", links, 3600).password_changed(&to, ChangedVia::Reset);
        let html = mail.html.expect("html");
        assert!(!html.contains("<b>Acme"));
        assert!(html.contains("&#60;b&#62;Acme"));
    }
}
