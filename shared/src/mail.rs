//! The two messages pwreset sends, rendered from templates: the reset link and the
//! "your password was changed" notice. Inline styles only, no remote images.

use crate::domain::{EmailAddress, UserId};
use crate::ports::OutgoingMail;
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

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
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
        let product = &self.product;
        let to_text = to.as_str();
        let lifetime = lifetime_in_words(self.lifetime_secs);
        let subject = format!("Reset your {product} password");
        let text = format!(
            "Reset your {product} password\n\
             \n\
             Someone, probably you, asked to reset the password of the {product}\n\
             account for {to_text}.\n\
             \n\
             To choose a new password, open this link:\n\
             \n\
             {link}\n\
             \n\
             The link expires in {lifetime} and works only once. If it has expired,\n\
             you can ask for a new one on the page it opens.\n\
             \n\
             Did not ask for this? You can ignore this message: your password stays\n\
             as it is, and nobody can change it without this link. Do not forward\n\
             this message to anyone.\n\
             \n\
             -- \n\
             {product}\n"
        );
        let (p, t, l, life) = (
            escape_html(product),
            escape_html(to_text),
            escape_html(&link),
            escape_html(&lifetime),
        );
        let body = format!(
            "<p style=\"margin:0 0 16px;\">Someone, probably you, asked to reset the password of the {p} account for <strong style=\"overflow-wrap:break-word;word-wrap:break-word;\">{t}</strong>.</p>\
             <p style=\"margin:0 0 8px;\">To choose a new password, use this button:</p>\
             {button}\
             <p style=\"margin:0 0 16px;\">The link expires in {life} and works only once. If it has expired, you can ask for a new one on the page it opens.</p>\
             <p style=\"margin:0 0 24px;font-size:14px;line-height:20px;color:#57606a;\">Button not working? Copy this address into your browser:<br>\
             <a href=\"{l}\" target=\"_blank\" style=\"color:#1a56db;text-decoration:underline;word-break:break-all;\">{l}</a></p>\
             {note}",
            button = button(&l, "Choose a new password"),
            note = callout(
                "#f6f8fa",
                "#d0d7de",
                "Did not ask for this?",
                "You can ignore this message: your password stays as it is, and nobody can change it without this link. Do not forward this message to anyone.",
            ),
        );
        let html = layout(
            &subject,
            &format!("Choose a new {p} password. The link expires in {life} and works once."),
            &body,
            &format!(
                "You received this message because a password reset was asked for {t} at {p}."
            ),
        );
        OutgoingMail {
            to: to.clone(),
            subject,
            text,
            html: Some(html),
        }
    }

    /// The notice sent after a reset lands. It carries no link at all: a phishing copy of
    /// it could not be told apart if the real one had one.
    pub fn password_changed(&self, to: &EmailAddress) -> OutgoingMail {
        let product = &self.product;
        let to_text = to.as_str();
        let subject = format!("Your {product} password was changed");
        let text = format!(
            "Your {product} password was changed\n\
             \n\
             The password of the {product} account for {to_text}\n\
             was just changed with a password-reset link.\n\
             \n\
             If you did this, there is nothing more to do.\n\
             \n\
             If you did not:\n\
             1. Secure your e-mail account first (change its password): whoever\n   \
                can read your mail can reset your {product} password.\n\
             2. Then ask for a new {product} password reset and choose a new password.\n\
             3. Tell the {product} team, so they can check your account.\n\
             \n\
             -- \n\
             {product}\n"
        );
        let (p, t) = (escape_html(product), escape_html(to_text));
        let body = format!(
            "<p style=\"margin:0 0 16px;\">The password of the {p} account for <strong style=\"overflow-wrap:break-word;word-wrap:break-word;\">{t}</strong> was just changed with a password-reset link.</p>\
             <p style=\"margin:0 0 24px;\">If you did this, there is nothing more to do.</p>\
             {warning}",
            warning = callout(
                "#fef3f2",
                "#b42318",
                "Did not change it?",
                &format!(
                    "Secure your e-mail account first (change its password): whoever can read your mail can reset your {p} password. \
                     Then ask for a new {p} password reset, choose a new password, and tell the {p} team so they can check your account."
                ),
            ),
        );
        let html = layout(
            &subject,
            &format!("The password of your {p} account was just changed. Not you? Act now."),
            &body,
            &format!(
                "You received this message because the password of the {p} account for {t} was changed."
            ),
        );
        OutgoingMail {
            to: to.clone(),
            subject,
            text,
            html: Some(html),
        }
    }
}

/// Font stack for every cell: clients drop styles inherited from `<body>`.
const FONT: &str = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";

/// A "bulletproof" button: the coloured cell still shows where a client ignores the
/// link's padding (Outlook). `link` is already escaped.
fn button(link: &str, label: &str) -> String {
    format!(
        "<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"margin:0 0 24px;border-collapse:separate;\"><tr>\
         <td align=\"center\" bgcolor=\"#1a56db\" style=\"border-radius:6px;background-color:#1a56db;\">\
         <a href=\"{link}\" target=\"_blank\" style=\"display:inline-block;padding:12px 24px;font-family:{FONT};font-size:16px;line-height:20px;font-weight:600;color:#ffffff;text-decoration:none;border-radius:6px;\">{label}</a>\
         </td></tr></table>",
        label = escape_html(label),
    )
}

/// A shaded box with a bold lead-in. `text` is already escaped.
fn callout(background: &str, border: &str, title: &str, text: &str) -> String {
    format!(
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\"><tr>\
         <td bgcolor=\"{background}\" style=\"padding:12px 16px;background-color:{background};border-left:4px solid {border};font-family:{FONT};font-size:14px;line-height:20px;color:#424a53;\">\
         <strong style=\"color:#1f2328;\">{title}</strong> {text}</td></tr></table>",
        title = escape_html(title),
    )
}

/// The frame shared by both messages: a hidden preheader (the inbox preview line), a
/// centred 560px card built from tables (with an MSO wrapper for Outlook's fixed width),
/// inline styles only, and a small footer. `preheader`, `body` and `footer` are escaped
/// HTML already; `title` is escaped here.
fn layout(title: &str, preheader: &str, body: &str, footer: &str) -> String {
    // Zero-width fillers keep the client from pulling body text into the preview.
    let filler = "&#847;&zwnj;&nbsp;".repeat(40);
    let title = escape_html(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head>\
         <meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"x-apple-disable-message-reformatting\">\
         <meta name=\"color-scheme\" content=\"light\">\
         <meta name=\"supported-color-schemes\" content=\"light\">\
         <title>{title}</title></head>\n\
         <body style=\"margin:0;padding:0;width:100%;background-color:#f4f5f7;\">\n\
         <div style=\"display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;color:#f4f5f7;\">{preheader}{filler}</div>\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"#f4f5f7\" style=\"background-color:#f4f5f7;\"><tr>\
         <td align=\"center\" style=\"padding:24px 12px;\">\n\
         <!--[if mso]><table role=\"presentation\" width=\"560\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\"><tr><td><![endif]-->\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" bgcolor=\"#ffffff\" style=\"max-width:560px;background-color:#ffffff;border-radius:8px;border:1px solid #e4e7eb;\">\
         <tr><td style=\"padding:32px 32px 0;font-family:{FONT};\">\
         <h1 style=\"margin:0 0 16px;font-family:{FONT};font-size:22px;line-height:28px;font-weight:700;color:#1f2328;\">{title}</h1></td></tr>\
         <tr><td style=\"padding:0 32px 32px;font-family:{FONT};font-size:16px;line-height:24px;color:#1f2328;\">\n{body}\n</td></tr>\
         </table>\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"max-width:560px;\"><tr>\
         <td align=\"center\" style=\"padding:16px 32px;font-family:{FONT};font-size:12px;line-height:18px;color:#6e7781;\">{footer}</td></tr></table>\n\
         <!--[if mso]></td></tr></table><![endif]-->\n\
         </td></tr></table>\n</body></html>\n"
    )
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
        assert!(html.contains(&link.replace('&', "&amp;")));
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
        let mail = MailComposer::new("Acme", links, 3600).password_changed(&to);
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
            html.matches(&link.replace('&', "&amp;")).count(),
            3,
            "button, href and text"
        );
    }

    #[test]
    fn the_changed_notice_says_what_to_do_and_links_nowhere() {
        let links = LinkTemplate::parse("https://app.example/r#{uid}.{token}").expect("valid");
        let to = EmailAddress::parse("a@b.org").expect("valid");
        let mail = MailComposer::new("Acme", links, 3600).password_changed(&to);
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
        let mail = MailComposer::new("<b>Acme</b>", links, 3600).password_changed(&to);
        let html = mail.html.expect("html");
        assert!(!html.contains("<b>Acme"));
        assert!(html.contains("&lt;b&gt;Acme"));
    }
}
