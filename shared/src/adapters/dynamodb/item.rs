//! pwreset's item layouts, and the one place that knows them: key prefixes, attribute names,
//! the expressions that name attributes, and the encoding of users, e-mail lookups, outbox
//! jobs (reset requests and change notices) and rate counters to and from attribute maps.
//! A team's users table has its own layout, which [`super::users`] reads through the
//! `USERS_*` mapping. The stream consumer ([`crate::delivery::stream`]) reads records' images through it too.
//!
//! | table | item | `pk` | `sk` | attributes |
//! |---|---|---|---|---|
//! | users (own layout) | user | `USER#<uid>` | `USER` | `uid`, `email` (as stored), `email_key`, `password_hash` (absent: none), `active` (BOOL), `credential_version`, `locale` (optional tag) |
//! | users (own layout) | e-mail lookup | `EMAIL#<email_key>` | `EMAIL` | `uid` |
//! | `TABLE_NAME` | outbox job | `OUTBOX#<random id>` | `OUTBOX` | `job` (the [`OutboxJob`] as JSON), `created_at`, `expires_at`, `delivered_at` (once handled) |
//! | `TABLE_NAME` | rate counter | `LIMIT#<bucket>#<window index>` | `LIMIT` | `hits`, `expires_at` |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use time::OffsetDateTime;

use crate::domain::{EmailAddress, EmailKey, PasswordHash, User, UserId};
use crate::i18n::Locale;
use crate::ports::{OutboxJob, StoreError};

/// An item as the SDK reads and writes it.
pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const USER_PREFIX: &str = "USER#";
pub const USER_SK: &str = "USER";
pub const EMAIL_PREFIX: &str = "EMAIL#";
pub const EMAIL_SK: &str = "EMAIL";
pub const OUTBOX_PREFIX: &str = "OUTBOX#";
pub const OUTBOX_SK: &str = "OUTBOX";
pub const LIMIT_PREFIX: &str = "LIMIT#";
pub const LIMIT_SK: &str = "LIMIT";
/// The TTL attribute (epoch seconds) of outbox items and rate counters.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The outbox item's attribute holding the job as JSON.
pub const JOB_ATTRIBUTE: &str = "job";
/// When an outbox item was written (epoch seconds): the order tests read the outbox in.
pub const CREATED_AT_ATTRIBUTE: &str = "created_at";
/// When the job was handled (epoch seconds): set by the stream consumer after delivery, and
/// by a redrive before it delivers (its claim); absent while the job waits.
pub const DELIVERED_AT_ATTRIBUTE: &str = "delivered_at";
/// Marks an outbox item handled, if it still exists.
pub const MARK_DELIVERED: &str = "SET delivered_at = :at";
pub const OUTBOX_ITEM_EXISTS: &str = "attribute_exists(pk)";
/// A redrive's claim: only an item nobody handled yet.
pub const OUTBOX_ITEM_UNCLAIMED: &str =
    "attribute_exists(pk) AND attribute_not_exists(delivered_at)";
/// Gives a claim back after a failed redelivery (only the claim this run made).
pub const RELEASE_CLAIM: &str = "REMOVE delivered_at";
pub const CLAIMED_AT: &str = "delivered_at = :at";
/// The rate counter's count.
pub const HITS_ATTRIBUTE: &str = "hits";
const UID: &str = "uid";
pub const EMAIL: &str = "email";
const EMAIL_KEY: &str = "email_key";
pub const PASSWORD_HASH: &str = "password_hash";
pub const ACTIVE: &str = "active";
pub const CREDENTIAL_VERSION: &str = "credential_version";
/// The user's language (a tag: `de`, `fr`); absent: whatever the request asked for.
pub const LOCALE: &str = "locale";

/// Outbox items outlive every retry of the worker, then expire.
const OUTBOX_TTL_SECS: i64 = 7 * 24 * 3600;

/// Writes only a new item: every `pk` names one item, so a put never overwrites.
pub const PUT_IF_ABSENT: &str = "attribute_not_exists(pk)";
/// One hit on a rate counter; the first hit of a window sets its expiry (`:exp`).
pub const COUNTER_HIT: &str = "ADD hits :one SET expires_at = if_not_exists(expires_at, :exp)";
/// Takes one hit back (`:hits` = -1) from a counter above zero ([`COUNTER_ABOVE_ZERO`]), or
/// all of them (`:hits` = 0) from one that exists ([`COUNTER_EXISTS`]): neither creates a
/// counter or makes one negative.
pub const COUNTER_FORGIVE_ONE: &str = "ADD hits :hits";
pub const COUNTER_FORGIVE_ALL: &str = "SET hits = :hits";
pub const COUNTER_ABOVE_ZERO: &str = "hits > :zero";
pub const COUNTER_EXISTS: &str = "attribute_exists(hits)";

/// A string attribute value.
pub fn string_value(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn number_value(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn version_value(version: u64) -> AttributeValue {
    AttributeValue::N(version.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), string_value(pk)),
        (SK.to_owned(), string_value(sk)),
    ])
}

pub fn user_key(uid: &UserId) -> Item {
    key(format!("{USER_PREFIX}{uid}"), USER_SK)
}

pub fn email_lookup_key(email_key: &EmailKey) -> Item {
    key(format!("{EMAIL_PREFIX}{}", email_key.as_str()), EMAIL_SK)
}

/// The counter of `bucket` for the window with this index.
pub fn counter_key(bucket: &str, window_index: i64) -> Item {
    key(format!("{LIMIT_PREFIX}{bucket}#{window_index}"), LIMIT_SK)
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A fresh outbox id: 128 random bits, URL-safe.
fn outbox_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn user_item(user: &User) -> Item {
    let mut item = user_key(&user.uid);
    item.insert(UID.to_owned(), string_value(user.uid.as_str()));
    item.insert(EMAIL.to_owned(), string_value(user.email.as_str()));
    item.insert(
        EMAIL_KEY.to_owned(),
        string_value(user.email_key().as_str()),
    );
    if let Some(hash) = &user.password_hash {
        item.insert(PASSWORD_HASH.to_owned(), string_value(hash.as_str()));
    }
    item.insert(ACTIVE.to_owned(), AttributeValue::Bool(user.active));
    item.insert(
        CREDENTIAL_VERSION.to_owned(),
        version_value(user.credential_version),
    );
    if let Some(locale) = user.locale {
        item.insert(LOCALE.to_owned(), string_value(locale.tag()));
    }
    item
}

/// The item that finds `user` by the lookup key of its address.
pub fn email_lookup_item(user: &User) -> Item {
    let mut item = email_lookup_key(&user.email_key());
    item.insert(UID.to_owned(), string_value(user.uid.as_str()));
    item
}

/// A new outbox item for `job`, under a fresh random key, expiring after a week.
pub fn outbox_item(job: &OutboxJob) -> Result<Item, StoreError> {
    let json = serde_json::to_string(job)
        .map_err(|e| StoreError::Permanent(format!("outbox job not serialisable: {e}")))?;
    let now = unix_now();
    let mut item = key(format!("{OUTBOX_PREFIX}{}", outbox_id()), OUTBOX_SK);
    item.insert(JOB_ATTRIBUTE.to_owned(), string_value(json));
    item.insert(CREATED_AT_ATTRIBUTE.to_owned(), number_value(now));
    item.insert(
        TTL_ATTRIBUTE.to_owned(),
        number_value(now.saturating_add(OUTBOX_TTL_SECS)),
    );
    Ok(item)
}

/// The values [`COUNTER_HIT`] refers to.
pub fn counter_hit_values(expires_at: i64) -> Item {
    HashMap::from([
        (":one".to_owned(), number_value(1)),
        (":exp".to_owned(), number_value(expires_at)),
    ])
}

fn required_string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        Some(_) => Err(StoreError::Permanent(format!(
            "attribute {name} is not a string"
        ))),
        None => Err(StoreError::Permanent(format!(
            "attribute {name} is missing"
        ))),
    }
}

/// The key of the outbox item whose `pk` is `item_key` (`OUTBOX#<id>`).
pub fn outbox_key(item_key: &str) -> Item {
    key(item_key.to_owned(), OUTBOX_SK)
}

/// The `pk` of the item a stream record's `Keys` name, if it is an outbox item.
pub fn outbox_item_key(keys: &Item) -> Option<&str> {
    match keys.get(PK) {
        Some(AttributeValue::S(pk)) if pk.starts_with(OUTBOX_PREFIX) => Some(pk),
        _ => None,
    }
}

/// Whether an outbox item was handled already.
pub fn is_delivered(item: &Item) -> bool {
    item.contains_key(DELIVERED_AT_ATTRIBUTE)
}

/// When an outbox item was written (epoch seconds), if it says.
pub fn created_at(item: &Item) -> Option<i64> {
    match item.get(CREATED_AT_ATTRIBUTE) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// Whether `item` is an outbox item (rather than a user, a lookup or a counter).
pub fn is_outbox_item(item: &Item) -> bool {
    matches!(item.get(PK), Some(AttributeValue::S(pk)) if pk.starts_with(OUTBOX_PREFIX))
}

/// Reads an outbox job back from an item (or a stream's `NEW_IMAGE`).
pub fn outbox_job_from_item(item: &Item) -> Result<OutboxJob, StoreError> {
    let json = required_string(item, JOB_ATTRIBUTE)?;
    serde_json::from_str(json).map_err(|e| {
        // serde_json's messages can quote the offending value (an e-mail key): keep only
        // the category.
        StoreError::Permanent(format!(
            "outbox item holds no valid job ({:?} error)",
            e.classify()
        ))
    })
}

/// The uid an e-mail lookup item points at.
pub fn uid_from_email_lookup(item: &Item) -> Result<UserId, StoreError> {
    UserId::parse(required_string(item, UID)?)
        .map_err(|_| StoreError::Permanent("e-mail lookup item holds a malformed uid".into()))
}

/// A stored language tag as a shipped language; anything else (not a string, a language
/// pwreset does not ship) is none, not a fault: the request's language is used.
pub fn locale_from(value: Option<&AttributeValue>) -> Option<Locale> {
    match value {
        Some(AttributeValue::S(tag)) => Locale::from_tag(tag),
        _ => None,
    }
}

/// Parses a user item back into the domain type; anything unexpected is our fault.
pub fn user_from_item(item: &Item) -> Result<User, StoreError> {
    let uid = UserId::parse(required_string(item, UID)?)
        .map_err(|_| StoreError::Permanent("stored uid is malformed".into()))?;
    let email = EmailAddress::parse(required_string(item, EMAIL)?)
        .map_err(|e| StoreError::Permanent(format!("stored e-mail address is malformed: {e}")))?;
    let password_hash = match item.get(PASSWORD_HASH) {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::S(hash)) => Some(PasswordHash::new(hash.clone())),
        Some(_) => {
            return Err(StoreError::Permanent(
                "attribute password_hash is not a string".into(),
            ));
        }
    };
    let active = match item.get(ACTIVE) {
        Some(AttributeValue::Bool(active)) => *active,
        Some(_) => {
            return Err(StoreError::Permanent(
                "attribute active is not a boolean".into(),
            ));
        }
        None => return Err(StoreError::Permanent("attribute active is missing".into())),
    };
    let credential_version = match item.get(CREDENTIAL_VERSION) {
        None => 0,
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| {
            StoreError::Permanent("attribute credential_version is not a whole number".into())
        })?,
        Some(_) => {
            return Err(StoreError::Permanent(
                "attribute credential_version is not a number".into(),
            ));
        }
    };
    let locale = locale_from(item.get(LOCALE));
    Ok(User {
        uid,
        email,
        password_hash,
        active,
        credential_version,
        locale,
    })
}

/// The count a [`COUNTER_HIT`] update answers with (`UPDATED_NEW`).
pub fn hits_from_update(attributes: Option<&Item>) -> Result<u64, StoreError> {
    match attributes.and_then(|a| a.get(HITS_ATTRIBUTE)) {
        Some(AttributeValue::N(hits)) => hits
            .parse()
            .map_err(|_| StoreError::Permanent("rate counter is not an integer".into())),
        _ => Err(StoreError::Permanent(
            "rate counter missing from the update's answer".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ChangedVia;

    #[test]
    fn user_items_round_trip_and_bad_ones_are_faults() {
        let user = User {
            uid: UserId::generate(),
            email: EmailAddress::parse("Mike@Example.org").expect("valid"),
            password_hash: Some(PasswordHash::new("$argon2id$v=19$x")),
            active: true,
            credential_version: 0,
            locale: None,
        };
        let item = user_item(&user);
        assert_eq!(user_from_item(&item).expect("parses"), user);
        let mut no_hash = user.clone();
        no_hash.password_hash = None;
        assert_eq!(
            user_from_item(&user_item(&no_hash)).expect("parses"),
            no_hash
        );
        let mut broken = item.clone();
        broken.insert("email".into(), string_value("not an address"));
        assert!(matches!(
            user_from_item(&broken),
            Err(StoreError::Permanent(_))
        ));
        let mut broken = item;
        broken.remove("active");
        assert!(matches!(
            user_from_item(&broken),
            Err(StoreError::Permanent(_))
        ));
    }

    #[test]
    fn outbox_items_carry_the_job_and_a_ttl() {
        let job = OutboxJob::PasswordChanged {
            uid: UserId::generate(),
            changed_at: 5,
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        };
        let item = outbox_item(&job).expect("item");
        assert_eq!(outbox_job_from_item(&item).expect("job"), job);
        assert!(
            required_string(&item, PK)
                .expect("pk")
                .starts_with(OUTBOX_PREFIX)
        );
        assert!(is_outbox_item(&item));
        assert!(matches!(
            item.get(TTL_ATTRIBUTE),
            Some(AttributeValue::N(_))
        ));
    }

    #[test]
    fn outbox_items_for_addresses_that_fold_twice_read_back() {
        // "ß" + combining acute: a key that was not closed failed to parse on the way back
        // from the stream, so that user never got mail.
        for raw in [
            "stra\u{DF}\u{301}e@example.org",
            "\u{3AA}\u{301}@example.org",
        ] {
            let job = OutboxJob::ResetRequested {
                email_key: EmailKey::normalise(raw).expect("valid"),
                email_lower: None,
                requested_at: 5,
                suppressed: false,
                locale: None,
                return_to: None,
            };
            let item = outbox_item(&job).expect("item");
            assert_eq!(outbox_job_from_item(&item).expect("job"), job, "{raw:?}");
        }
    }

    #[test]
    fn only_outbox_keys_are_outbox_items() {
        let user = User {
            uid: UserId::generate(),
            email: EmailAddress::parse("a@example.org").expect("valid"),
            password_hash: None,
            active: true,
            credential_version: 0,
            locale: None,
        };
        assert!(!is_outbox_item(&user_item(&user)));
        assert!(!is_outbox_item(&email_lookup_item(&user)));
        assert!(!is_outbox_item(&counter_key("ip#192.0.2.1", 7)));
        assert!(!is_outbox_item(&Item::new()));
    }

    #[test]
    fn an_unreadable_job_is_a_fault_that_does_not_quote_the_item() {
        let mut item = outbox_item(&OutboxJob::PasswordChanged {
            uid: UserId::generate(),
            changed_at: 5,
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        })
        .expect("item");
        item.insert(
            JOB_ATTRIBUTE.into(),
            string_value(r#"{"kind":"reset_requested","email_key":"Secret@Example.org"}"#),
        );
        match outbox_job_from_item(&item) {
            Err(StoreError::Permanent(message)) => {
                assert!(!message.contains("Secret"), "{message}")
            }
            other => panic!("expected a fault, got {other:?}"),
        }
        item.remove(JOB_ATTRIBUTE);
        assert!(matches!(
            outbox_job_from_item(&item),
            Err(StoreError::Permanent(_))
        ));
    }

    #[test]
    fn the_expressions_use_the_attribute_names_defined_here() {
        for (expression, attributes) in [
            (PUT_IF_ABSENT, &[PK][..]),
            (COUNTER_HIT, &[HITS_ATTRIBUTE, TTL_ATTRIBUTE][..]),
            (COUNTER_FORGIVE_ONE, &[HITS_ATTRIBUTE][..]),
            (COUNTER_FORGIVE_ALL, &[HITS_ATTRIBUTE][..]),
            (COUNTER_ABOVE_ZERO, &[HITS_ATTRIBUTE][..]),
            (COUNTER_EXISTS, &[HITS_ATTRIBUTE][..]),
        ] {
            for attribute in attributes {
                assert!(expression.contains(attribute), "{expression}: {attribute}");
            }
        }
    }
}
