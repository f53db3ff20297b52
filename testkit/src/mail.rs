//! The reset link in a mail's text, and its uid and token.

/// The first word of `text` that holds both `uid=` and `token=`: the reset link.
pub fn reset_link(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|w| w.contains("uid=") && w.contains("token="))
}

/// (uid, token) from a link of the default shape `…#uid=U&token=T` or any link whose
/// query/fragment holds `uid=` and `token=`.
pub fn link_parts(text: &str) -> Option<(String, String)> {
    let params = reset_link(text)?.split(['#', '?']).nth(1)?;
    let mut uid = None;
    let mut token = None;
    for pair in params.split('&') {
        match pair.split_once('=') {
            Some(("uid", v)) => uid = Some(v.to_owned()),
            Some(("token", v)) => token = Some(v.to_owned()),
            _ => {}
        }
    }
    Some((uid?, token?))
}

/// The first link in a mail text.
pub fn first_link(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parts_reads_the_default_link_shape() {
        assert_eq!(
            link_parts("open http://127.0.0.1:3000/reset#uid=abc&token=def-_1 now"),
            Some(("abc".to_owned(), "def-_1".to_owned()))
        );
    }
}
