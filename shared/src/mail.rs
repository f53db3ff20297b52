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

    pub fn reset_link(&self, to: &EmailAddress, uid: &UserId, token: &ResetToken) -> OutgoingMail {
        let link = self.links.render(uid, token);
        let product = &self.product;
        let lifetime = lifetime_in_words(self.lifetime_secs);
        let subject = format!("Reset your {product} password");
        let text = format!(
            "Hello,\n\n\
             Someone asked to reset the password of the {product} account for {to}.\n\
             To choose a new password, open this link:\n\n\
             {link}\n\n\
             The link expires in {lifetime} and works once.\n\n\
             If you did not ask for this, ignore this message: your password stays as it is.\n"
        );
        let html = layout(
            &subject,
            &format!(
                "<p style=\"margin:0 0 16px\">Someone asked to reset the password of the {product} account for <strong>{to}</strong>.</p>\
                 <p style=\"margin:0 0 24px\"><a href=\"{link}\" style=\"display:inline-block;background:#1a56db;color:#ffffff;text-decoration:none;padding:12px 20px;border-radius:6px;font-weight:600\">Choose a new password</a></p>\
                 <p style=\"margin:0 0 16px\">The link expires in {lifetime} and works once. If the button does not work, copy this address into your browser:<br><span style=\"word-break:break-all;color:#1a56db\">{link}</span></p>\
                 <p style=\"margin:0;color:#555555\">If you did not ask for this, ignore this message: your password stays as it is.</p>",
                product = escape_html(product),
                to = escape_html(to.as_str()),
                link = escape_html(&link),
                lifetime = escape_html(&lifetime),
            ),
        );
        OutgoingMail {
            to: to.clone(),
            subject,
            text,
            html: Some(html),
        }
    }

    pub fn password_changed(&self, to: &EmailAddress) -> OutgoingMail {
        let product = &self.product;
        let subject = format!("Your {product} password was changed");
        let text = format!(
            "Hello,\n\n\
             The password of the {product} account for {to} was just changed using a reset link.\n\n\
             If this was you, there is nothing to do.\n\
             If it was not, reset your password again right away and contact support: someone may have access to your e-mail.\n"
        );
        let html = layout(
            &subject,
            &format!(
                "<p style=\"margin:0 0 16px\">The password of the {product} account for <strong>{to}</strong> was just changed using a reset link.</p>\
                 <p style=\"margin:0 0 16px\">If this was you, there is nothing to do.</p>\
                 <p style=\"margin:0;color:#555555\">If it was not, reset your password again right away and contact support: someone may have access to your e-mail.</p>",
                product = escape_html(product),
                to = escape_html(to.as_str()),
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

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"margin:0;padding:24px;background:#f4f5f7;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#1f2328\">\
         <div style=\"max-width:560px;margin:0 auto;background:#ffffff;border-radius:8px;padding:32px\">\
         <h1 style=\"margin:0 0 16px;font-size:20px\">{title}</h1>{body}</div></body></html>",
        title = escape_html(title),
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
    fn markup_in_names_is_escaped_in_html() {
        let links = LinkTemplate::parse("https://app.example/r#{uid}.{token}").expect("valid");
        let to = EmailAddress::parse("a@b.org").expect("valid");
        let mail = MailComposer::new("<b>Acme</b>", links, 3600).password_changed(&to);
        let html = mail.html.expect("html");
        assert!(!html.contains("<b>Acme"));
        assert!(html.contains("&lt;b&gt;Acme"));
    }
}
