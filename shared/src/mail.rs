//! The two messages pwreset sends, the reset link and the "your password was changed"
//! notice, each a text and an HTML part rendered from the askama templates in
//! `shared/templates/mail/` (compiled in; the engine HTML-escapes every value in the HTML
//! parts). Inline styles only, no remote images.

use crate::domain::{EmailAddress, UserId};
use crate::i18n::{Locale, duration_in_words};
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
        self.render_returning(uid, token, None)
    }

    /// The link, carrying `return_to` (percent-encoded) where the template says
    /// (`{return_to}`), else as a last `return_to=` parameter of the fragment (or of the
    /// query when the template has no fragment), which the reference page reads.
    pub fn render_returning(
        &self,
        uid: &UserId,
        token: &ResetToken,
        return_to: Option<&str>,
    ) -> String {
        let link = self
            .0
            .replace("{uid}", uid.as_str())
            .replace("{token}", token.as_str());
        let encoded = return_to.map(percent_encode).unwrap_or_default();
        if link.contains("{return_to}") {
            return link.replace("{return_to}", &encoded);
        }
        match return_to {
            None => link,
            Some(_) => {
                let separator = match (link.find('#'), link.find('?')) {
                    (Some(hash), _) if link.len() > hash + 1 => "&",
                    (Some(_), _) => "",
                    (None, Some(_)) => "&",
                    (None, None) => "?",
                };
                format!("{link}{separator}return_to={encoded}")
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything but RFC 3986's unreserved characters as `%XX`, so a URL fits in one
/// parameter of another.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// "1 hour", "90 minutes", "2 days", "45 seconds" (English; see
/// [`crate::i18n::duration_in_words`] for the others).
pub fn lifetime_in_words(seconds: i64) -> String {
    duration_in_words(Locale::En, seconds)
}

/// Font stack for every cell: clients drop styles inherited from `<body>`.
pub(crate) const FONT: &str =
    "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";

/// Zero-width fillers after the preheader keep the client from pulling body text into the
/// inbox preview.
pub(crate) const PREHEADER_FILLER: &str = "&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#847;&zwnj;&nbsp;";

/// One message's words in one language, every sentence whole (word order differs between
/// languages, so the address sits between `intro_before` and `intro_after`).
#[derive(Debug, Clone, Default)]
struct Words {
    lang: &'static str,
    subject: String,
    preheader: String,
    intro_before: String,
    intro_after: String,
    /// Reset link only: the text part's and the HTML part's lead-in to the link.
    open_link: String,
    use_button: String,
    button: String,
    expiry: String,
    copy_hint: String,
    /// Notice only: "if you did this, nothing to do".
    if_you: String,
    /// Notice only: the three steps if it was not the reader.
    steps: [String; 3],
    not_you_title: String,
    not_you_text: String,
    footer: String,
}

fn reset_words(locale: Locale, product: &str, to: &str, lifetime: &str) -> Words {
    match locale {
        Locale::En => Words {
            lang: "en",
            subject: format!("Reset your {product} password"),
            preheader: format!(
                "Choose a new {product} password. The link expires in {lifetime} and works once."
            ),
            intro_before: format!(
                "Someone, probably you, asked to reset the password of the {product} account for "
            ),
            intro_after: ".".into(),
            open_link: "To choose a new password, open this link:".into(),
            use_button: "To choose a new password, use this button:".into(),
            button: "Choose a new password".into(),
            expiry: format!(
                "The link expires in {lifetime} and works only once. If it has expired, you can \
                 ask for a new one on the page it opens."
            ),
            copy_hint: "Button not working? Copy this address into your browser:".into(),
            not_you_title: "Did not ask for this?".into(),
            not_you_text: "You can ignore this message: your password stays as it is, and \
                           nobody can change it without this link. Do not forward this message \
                           to anyone."
                .into(),
            footer: format!(
                "You received this message because a password reset was asked for {to} at {product}."
            ),
            ..Words::default()
        },
        Locale::De => Words {
            lang: "de",
            subject: format!("Ihr {product}-Passwort zurücksetzen"),
            preheader: format!(
                "Wählen Sie ein neues {product}-Passwort. Der Link läuft in {lifetime} ab und funktioniert nur einmal."
            ),
            intro_before: format!(
                "Jemand – wahrscheinlich Sie – möchte das Passwort des {product}-Kontos "
            ),
            intro_after: " zurücksetzen.".into(),
            open_link: "Um ein neues Passwort zu wählen, öffnen Sie diesen Link:".into(),
            use_button: "Um ein neues Passwort zu wählen, klicken Sie auf diese Schaltfläche:"
                .into(),
            button: "Neues Passwort wählen".into(),
            expiry: format!(
                "Der Link läuft in {lifetime} ab und funktioniert nur ein einziges Mal. Ist er \
                 abgelaufen, können Sie auf der Seite, die er öffnet, einen neuen anfordern."
            ),
            copy_hint: "Die Schaltfläche funktioniert nicht? Kopieren Sie diese Adresse in Ihren \
                        Browser:"
                .into(),
            not_you_title: "Das waren nicht Sie?".into(),
            not_you_text: "Dann ignorieren Sie diese Nachricht einfach: Ihr Passwort bleibt, wie \
                           es ist, und ohne diesen Link kann es niemand ändern. Leiten Sie diese \
                           Nachricht an niemanden weiter."
                .into(),
            footer: format!(
                "Sie erhalten diese Nachricht, weil für {to} bei {product} ein neues Passwort angefordert wurde."
            ),
            ..Words::default()
        },
        Locale::Fr => Words {
            lang: "fr",
            subject: format!("Réinitialisez votre mot de passe {product}"),
            preheader: format!(
                "Choisissez un nouveau mot de passe {product}. Le lien expire dans {lifetime} et ne sert qu'une fois."
            ),
            intro_before: format!(
                "Quelqu'un, probablement vous, a demandé à réinitialiser le mot de passe du compte {product} associé à "
            ),
            intro_after: ".".into(),
            open_link: "Pour choisir un nouveau mot de passe, ouvrez ce lien :".into(),
            use_button: "Pour choisir un nouveau mot de passe, utilisez ce bouton :".into(),
            button: "Choisir un nouveau mot de passe".into(),
            expiry: format!(
                "Le lien expire dans {lifetime} et ne fonctionne qu'une seule fois. S'il a \
                 expiré, vous pourrez en demander un nouveau sur la page qu'il ouvre."
            ),
            copy_hint: "Le bouton ne fonctionne pas ? Copiez cette adresse dans votre navigateur :"
                .into(),
            not_you_title: "Vous n'avez rien demandé ?".into(),
            not_you_text: "Vous pouvez ignorer ce message : votre mot de passe reste inchangé, et \
                           personne ne peut le modifier sans ce lien. Ne transférez ce message à \
                           personne."
                .into(),
            footer: format!(
                "Vous recevez ce message parce qu'une réinitialisation du mot de passe a été demandée pour {to} sur {product}."
            ),
            ..Words::default()
        },
        Locale::Es => Words {
            lang: "es",
            subject: format!("Restablece tu contraseña de {product}"),
            preheader: format!(
                "Elige una nueva contraseña de {product}. El enlace caduca en {lifetime} y solo funciona una vez."
            ),
            intro_before: format!(
                "Alguien, probablemente tú, ha pedido restablecer la contraseña de la cuenta de {product} de "
            ),
            intro_after: ".".into(),
            open_link: "Para elegir una contraseña nueva, abre este enlace:".into(),
            use_button: "Para elegir una contraseña nueva, usa este botón:".into(),
            button: "Elegir una contraseña nueva".into(),
            expiry: format!(
                "El enlace caduca en {lifetime} y solo funciona una vez. Si ha caducado, puedes \
                 pedir otro en la página que abre."
            ),
            copy_hint: "¿El botón no funciona? Copia esta dirección en tu navegador:".into(),
            not_you_title: "¿No lo has pedido tú?".into(),
            not_you_text: "Puedes ignorar este mensaje: tu contraseña no cambia y nadie puede \
                           modificarla sin este enlace. No reenvíes este mensaje a nadie."
                .into(),
            footer: format!(
                "Recibes este mensaje porque se pidió restablecer la contraseña de {to} en {product}."
            ),
            ..Words::default()
        },
    }
}

fn notice_words(locale: Locale, product: &str, to: &str, via: ChangedVia) -> Words {
    match locale {
        Locale::En => Words {
            lang: "en",
            subject: format!("Your {product} password was changed"),
            preheader: format!(
                "The password of your {product} account was just changed. Not you? Act now."
            ),
            intro_before: format!("The password of the {product} account for "),
            intro_after: format!(
                " was just changed {}.",
                match via {
                    ChangedVia::Reset => "with a password-reset link",
                    ChangedVia::Change => "by someone who entered the current password",
                }
            ),
            if_you: "If you did this, there is nothing more to do.".into(),
            steps: [
                format!(
                    "Secure your e-mail account first (change its password): whoever can read \
                     your mail can reset your {product} password."
                ),
                format!("Then ask for a new {product} password reset and choose a new password."),
                format!("Tell the {product} team, so they can check your account."),
            ],
            not_you_title: "Did not change it?".into(),
            footer: format!(
                "You received this message because the password of the {product} account for {to} was changed."
            ),
            ..Words::default()
        },
        Locale::De => Words {
            lang: "de",
            subject: format!("Ihr {product}-Passwort wurde geändert"),
            preheader: format!(
                "Das Passwort Ihres {product}-Kontos wurde gerade geändert. Das waren nicht Sie? Handeln Sie jetzt."
            ),
            intro_before: format!("Das Passwort des {product}-Kontos "),
            intro_after: format!(
                " wurde soeben {} geändert.",
                match via {
                    ChangedVia::Reset => "über einen Link zum Zurücksetzen",
                    ChangedVia::Change => "von jemandem, der das bisherige Passwort kannte,",
                }
            ),
            if_you: "Wenn Sie das waren, müssen Sie nichts weiter tun.".into(),
            steps: [
                format!(
                    "Sichern Sie zuerst Ihr E-Mail-Konto (ändern Sie dessen Passwort): Wer Ihre \
                     E-Mails lesen kann, kann Ihr {product}-Passwort zurücksetzen."
                ),
                format!(
                    "Fordern Sie dann bei {product} einen neuen Link zum Zurücksetzen an und \
                     wählen Sie ein neues Passwort."
                ),
                format!("Informieren Sie das {product}-Team, damit es Ihr Konto überprüfen kann."),
            ],
            not_you_title: "Das waren nicht Sie?".into(),
            footer: format!(
                "Sie erhalten diese Nachricht, weil das Passwort des {product}-Kontos {to} geändert wurde."
            ),
            ..Words::default()
        },
        Locale::Fr => Words {
            lang: "fr",
            subject: format!("Le mot de passe de votre compte {product} a été modifié"),
            preheader: format!(
                "Le mot de passe de votre compte {product} vient d'être modifié. Ce n'était pas vous ? Agissez maintenant."
            ),
            intro_before: format!("Le mot de passe du compte {product} associé à "),
            intro_after: format!(
                " vient d'être modifié {}.",
                match via {
                    ChangedVia::Reset => "à l'aide d'un lien de réinitialisation",
                    ChangedVia::Change => "par quelqu'un qui a saisi le mot de passe actuel",
                }
            ),
            if_you: "Si c'est vous, vous n'avez rien d'autre à faire.".into(),
            steps: [
                format!(
                    "Sécurisez d'abord votre messagerie (changez son mot de passe) : quiconque \
                     peut lire vos e-mails peut réinitialiser votre mot de passe {product}."
                ),
                format!(
                    "Demandez ensuite une nouvelle réinitialisation du mot de passe {product} \
                     et choisissez un nouveau mot de passe."
                ),
                format!("Prévenez l'équipe {product} pour qu'elle vérifie votre compte."),
            ],
            not_you_title: "Ce n'était pas vous ?".into(),
            footer: format!(
                "Vous recevez ce message parce que le mot de passe du compte {product} associé à {to} a été modifié."
            ),
            ..Words::default()
        },
        Locale::Es => Words {
            lang: "es",
            subject: format!("Se ha cambiado tu contraseña de {product}"),
            preheader: format!(
                "Se acaba de cambiar la contraseña de tu cuenta de {product}. ¿No has sido tú? Actúa ya."
            ),
            intro_before: format!("La contraseña de la cuenta de {product} de "),
            intro_after: format!(
                " se acaba de cambiar {}.",
                match via {
                    ChangedVia::Reset => "con un enlace para restablecerla",
                    ChangedVia::Change => "por alguien que introdujo la contraseña actual",
                }
            ),
            if_you: "Si has sido tú, no tienes que hacer nada más.".into(),
            steps: [
                format!(
                    "Primero protege tu cuenta de correo (cambia su contraseña): quien pueda leer \
                     tu correo puede restablecer tu contraseña de {product}."
                ),
                format!(
                    "Después pide un nuevo restablecimiento de contraseña en {product} y elige \
                     una contraseña nueva."
                ),
                format!("Avisa al equipo de {product} para que revise tu cuenta."),
            ],
            not_you_title: "¿No has sido tú?".into(),
            footer: format!(
                "Recibes este mensaje porque se cambió la contraseña de la cuenta de {product} de {to}."
            ),
            ..Words::default()
        },
    }
}

/// "If you did not:" before the notice's numbered steps, in the text part.
fn if_not_lead(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "If you did not:",
        Locale::De => "Wenn nicht:",
        Locale::Fr => "Si ce n'est pas vous :",
        Locale::Es => "Si no has sido tú:",
    }
}

/// A paragraph of the text part, broken at spaces into lines of at most [`TEXT_WIDTH`]
/// characters (a longer word stays whole on its own line), each line after the first
/// indented by `indent`.
fn wrapped(paragraph: &str, indent: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in paragraph.split_whitespace() {
        let prefix = if lines.is_empty() { "" } else { indent };
        if !line.is_empty()
            && prefix.chars().count() + line.chars().count() + 1 + word.chars().count() > TEXT_WIDTH
        {
            lines.push(format!("{prefix}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let prefix = if lines.is_empty() { "" } else { indent };
        lines.push(format!("{prefix}{line}"));
    }
    lines.join("\n")
}

/// Lines of the text part are at most this long (RFC 5322 recommends 78).
const TEXT_WIDTH: usize = 76;

/// The reset link, text part (`templates/mail/reset_link.txt`).
#[derive(askama::Template)]
#[template(path = "mail/reset_link.txt")]
struct ResetLinkText<'a> {
    t: &'a Words,
    product: &'a str,
    intro: String,
    open_link: String,
    link: &'a str,
    expiry: String,
    not_you: String,
}

/// The reset link, HTML part (`templates/mail/reset_link.html` in `layout.html`).
#[derive(askama::Template)]
#[template(path = "mail/reset_link.html")]
struct ResetLinkHtml<'a> {
    t: &'a Words,
    to: &'a str,
    link: &'a str,
}

/// The "password changed" notice, text part.
#[derive(askama::Template)]
#[template(path = "mail/password_changed.txt")]
struct PasswordChangedText<'a> {
    t: &'a Words,
    product: &'a str,
    changed: String,
    if_you: String,
    if_not: String,
}

/// The "password changed" notice, HTML part.
#[derive(askama::Template)]
#[template(path = "mail/password_changed.html")]
struct PasswordChangedHtml<'a> {
    t: &'a Words,
    to: &'a str,
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

    /// The reset link in English: [`Self::reset_link_in`].
    pub fn reset_link(&self, to: &EmailAddress, uid: &UserId, token: &ResetToken) -> OutgoingMail {
        self.reset_link_in(Locale::En, to, uid, token, None)
    }

    /// The reset link in `locale`: subject, a plain-text part that reads well on its own
    /// (the link on a line by itself, the first URL in the text), and an HTML part built
    /// the way mail clients render reliably (tables, inline styles, no remote images, a
    /// preheader).
    pub fn reset_link_in(
        &self,
        locale: Locale,
        to: &EmailAddress,
        uid: &UserId,
        token: &ResetToken,
        return_to: Option<&str>,
    ) -> OutgoingMail {
        let link = self.links.render_returning(uid, token, return_to);
        let product = self.product.as_str();
        let lifetime = duration_in_words(locale, self.lifetime_secs);
        let words = reset_words(locale, product, to.as_str(), &lifetime);
        let text = ResetLinkText {
            t: &words,
            product,
            intro: wrapped(
                &format!("{}{}{}", words.intro_before, to.as_str(), words.intro_after),
                "",
            ),
            open_link: wrapped(&words.open_link, ""),
            link: &link,
            expiry: wrapped(&words.expiry, ""),
            not_you: wrapped(
                &format!("{} {}", words.not_you_title, words.not_you_text),
                "",
            ),
        }
        .to_string();
        let html = ResetLinkHtml {
            t: &words,
            to: to.as_str(),
            link: &link,
        }
        .to_string();
        OutgoingMail {
            to: to.clone(),
            subject: words.subject,
            text,
            html: Some(html),
        }
    }

    /// The notice in English: [`Self::password_changed_in`].
    pub fn password_changed(&self, to: &EmailAddress, via: ChangedVia) -> OutgoingMail {
        self.password_changed_in(Locale::En, to, via)
    }

    /// The notice sent after a reset or a change lands, in `locale`. It carries no link at
    /// all: a phishing copy of it could not be told apart if the real one had one.
    pub fn password_changed_in(
        &self,
        locale: Locale,
        to: &EmailAddress,
        via: ChangedVia,
    ) -> OutgoingMail {
        let product = self.product.as_str();
        let mut words = notice_words(locale, product, to.as_str(), via);
        words.not_you_text = words.steps.join(" ");
        let steps: Vec<String> = words
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| wrapped(&format!("{}. {step}", i + 1), "   "))
            .collect();
        let text = PasswordChangedText {
            t: &words,
            product,
            // The address ends the first line and what happened starts the next, so the
            // how ("by someone who entered the current password") reads in one piece.
            changed: format!(
                "{}\n{}",
                wrapped(&format!("{}{}", words.intro_before, to.as_str()), ""),
                wrapped(words.intro_after.trim_start(), "")
            ),
            if_you: wrapped(&words.if_you, ""),
            if_not: format!("{}\n{}", if_not_lead(locale), steps.join("\n")),
        }
        .to_string();
        let html = PasswordChangedHtml {
            t: &words,
            to: to.as_str(),
        }
        .to_string();
        OutgoingMail {
            to: to.clone(),
            subject: words.subject,
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
    fn a_return_url_rides_in_the_link_encoded_where_the_template_says() {
        let uid = UserId::parse("u1").expect("valid");
        let to = EmailAddress::parse("a@b.org").expect("valid");
        let token = token(&uid, &to);
        let back = "https://app.example/signin?next=/home&x=1#top";
        let encoded = "https%3A%2F%2Fapp.example%2Fsignin%3Fnext%3D%2Fhome%26x%3D1%23top";
        let cases = [
            (
                "https://a.example/reset#uid={uid}&token={token}",
                format!(
                    "https://a.example/reset#uid=u1&token={}&return_to={encoded}",
                    token.as_str()
                ),
            ),
            (
                "https://a.example/reset?uid={uid}&token={token}",
                format!(
                    "https://a.example/reset?uid=u1&token={}&return_to={encoded}",
                    token.as_str()
                ),
            ),
            (
                "https://a.example/reset/{uid}/{token}",
                format!(
                    "https://a.example/reset/u1/{}?return_to={encoded}",
                    token.as_str()
                ),
            ),
            (
                "https://a.example/r#{uid}.{token}.{return_to}",
                format!("https://a.example/r#u1.{}.{encoded}", token.as_str()),
            ),
        ];
        for (template, want) in cases {
            let links = LinkTemplate::parse(template).expect("valid");
            assert_eq!(links.render_returning(&uid, &token, Some(back)), want);
        }
        let plain =
            LinkTemplate::parse("https://a.example/r#{uid}.{token}.{return_to}").expect("valid");
        assert_eq!(
            plain.render_returning(&uid, &token, None),
            format!("https://a.example/r#u1.{}.", token.as_str())
        );
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
        assert!(
            mail.text
                .contains("a@b.org\nwas just changed with a password-reset link."),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("Secure your e-mail account first"));
        let html = mail.html.expect("html");
        assert!(html.contains("Did not change it?"));
        assert!(html.contains("display:none"), "preheader");
        assert!(!html.contains("href="), "no link at all in the notice");
        assert!(!html.contains("<img"));
    }

    #[test]
    fn each_language_writes_both_mails_in_its_own_words() {
        let uid = UserId::parse("u1").expect("valid");
        let to = EmailAddress::parse("ana@example.org").expect("valid");
        let token = token(&uid, &to);
        let links = LinkTemplate::parse("https://app.example/reset#uid={uid}&token={token}")
            .expect("valid");
        let composer = MailComposer::new("Acme", links, 3600);
        let link = format!("https://app.example/reset#uid=u1&token={}", token.as_str());
        // What each language says about an hour, and a word only that language uses.
        let cases = [
            (
                Locale::En,
                "expires in 1 hour",
                "Reset your Acme password",
                "changed",
            ),
            (
                Locale::De,
                "läuft in 1 Stunde ab",
                "Ihr Acme-Passwort zurücksetzen",
                "geändert",
            ),
            (
                Locale::Fr,
                "expire dans 1 heure",
                "Réinitialisez votre mot de passe Acme",
                "modifié",
            ),
            (
                Locale::Es,
                "caduca en 1 hora",
                "Restablece tu contraseña de Acme",
                "cambiado",
            ),
        ];
        let mut subjects = std::collections::BTreeSet::new();
        for (locale, lifetime, subject, changed) in cases {
            let mail = composer.reset_link_in(locale, &to, &uid, &token, None);
            assert_eq!(mail.subject, subject);
            assert!(mail.text.contains(lifetime), "{locale}: {}", mail.text);
            assert!(mail.text.lines().any(|line| line == link), "{locale}");
            assert!(
                mail.text
                    .lines()
                    .all(|line| line.chars().count() <= 78 || line == link),
                "{locale}: {}",
                mail.text
            );
            let html = mail.html.expect("html");
            assert!(html.contains(&format!("<html lang=\"{}\">", locale.tag())));
            assert!(html.contains(lifetime), "{locale}");
            assert!(html.contains("ana@example.org"));
            subjects.insert(mail.subject.clone());
            let notice = composer.password_changed_in(locale, &to, ChangedVia::Change);
            assert!(
                notice.subject.contains(changed),
                "{locale}: {}",
                notice.subject
            );
            assert!(notice.text.contains("1. ") && notice.text.contains("3. "));
            assert!(!notice.text.contains("https://"));
            subjects.insert(notice.subject);
        }
        assert_eq!(subjects.len(), 8, "no language borrows another's subject");
        // Plurals: two hours, thirty minutes.
        let longer = MailComposer::new(
            "Acme",
            LinkTemplate::parse("https://a.example/#{uid}.{token}").expect("valid"),
            7200,
        );
        let de = longer.reset_link_in(Locale::De, &to, &uid, &token, None);
        assert!(de.text.contains("läuft in 2 Stunden ab"), "{}", de.text);
        let fr = longer.reset_link_in(Locale::Fr, &to, &uid, &token, None);
        assert!(fr.text.contains("expire dans 2 heures"), "{}", fr.text);
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
