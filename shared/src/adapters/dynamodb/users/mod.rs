//! The users table, in either layout ([`UsersLayout`]): pwreset's own (`USER#` items and
//! `EMAIL#` lookup items, see [`super::item`]) or a team's table described by `USERS_*`
//! ([`UserMapping`]). Only these calls touch it: `GetItem`, `Query` on the e-mail index,
//! the conditional `UpdateItem` of a password change (inside the change's transaction),
//! and the puts of the admin commands and dev routes.
//!
//! A team's item is read leniently: an item pwreset cannot read (no address, an address
//! with spaces around it, a hash that is not a string) is a user who takes no part in
//! resets, logged without its contents, never an error that would fail a batch.
//!
//! [`admin`]: what an operator changes by hand (active flag, address, deletion).

mod admin;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::error::{build_error, map_sdk_error};
use super::item::{self, Item, string_value};
use crate::config::{EmailMatch, KeyType, UserMapping, UsersLayout, UsersTable};
use crate::domain::{EmailAddress, EmailLookup, PasswordHash, User, UserId};
use crate::ports::{PasswordChange, StoreError};

pub use admin::AdminOutcome;

/// More matches than this for one address are not mailed (and logged): a table where
/// that many accounts share an address is not one to send that many links from.
const MAX_MATCHES: usize = 25;

/// The attribute names a password change's expressions use, in either layout.
struct ChangeNames<'a> {
    key: &'a str,
    hash: &'a str,
    email: &'a str,
    active: Option<&'a str>,
    version: Option<&'a str>,
}

/// The users table with its layout, and the key type once known.
#[derive(Debug, Clone)]
pub struct Users {
    pub table: UsersTable,
    /// `USERS_KEY_TYPE`, or what the table's first answer showed.
    learned_key_type: Arc<OnceLock<KeyType>>,
}

impl Users {
    pub fn new(table: UsersTable) -> Self {
        let learned_key_type = Arc::new(OnceLock::new());
        if let UsersLayout::Mapped(UserMapping {
            key_type: Some(key_type),
            ..
        }) = &table.layout
        {
            let _ = learned_key_type.set(*key_type);
        }
        Self {
            table,
            learned_key_type,
        }
    }

    pub(super) fn key_type_unknown(&self) -> bool {
        matches!(self.table.layout, UsersLayout::Mapped(_)) && self.learned_key_type.get().is_none()
    }

    pub(super) fn learn_string_key(&self) {
        let _ = self.learned_key_type.set(KeyType::S);
    }

    fn name(&self) -> &str {
        &self.table.name
    }

    /// A fresh id the key can hold: digits for a team table whose key may be a number.
    pub fn fresh_uid(&self) -> UserId {
        match &self.table.layout {
            UsersLayout::Own => UserId::generate(),
            UsersLayout::Mapped(_) if self.learned_key_type.get() == Some(&KeyType::S) => {
                UserId::generate()
            }
            UsersLayout::Mapped(_) => UserId::generate_numeric(),
        }
    }

    async fn get(
        &self,
        client: &Client,
        operation: &str,
        key: Item,
    ) -> Result<Option<Item>, StoreError> {
        let output = client
            .get_item()
            .table_name(self.name())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(operation, &e))?;
        Ok(output.item)
    }

    pub async fn find_by_uid(
        &self,
        client: &Client,
        uid: &UserId,
    ) -> Result<Option<User>, StoreError> {
        let mapping = match &self.table.layout {
            UsersLayout::Own => {
                return match self
                    .get(client, "GetItem(user)", item::user_key(uid))
                    .await?
                {
                    Some(found) => item::user_from_item(&found).map(Some),
                    None => Ok(None),
                };
            }
            UsersLayout::Mapped(mapping) => mapping,
        };
        let value = uid.key_value();
        if let Some(key_type) = self.learned_key_type.get().copied() {
            let Some(attribute) = key_value(key_type, &value) else {
                // Not a number, and the key is one: no such user.
                return Ok(None);
            };
            let key = HashMap::from([(mapping.key_attribute.clone(), attribute)]);
            let found = self.get(client, "GetItem(user)", key).await?;
            return Ok(found.and_then(|found| readable(mapping, &found)));
        }
        // The key type is not known yet: a string first, then (for a number) a number. A
        // key of the other type is a ValidationException on DynamoDB and a miss on some
        // emulators; either way it is not this user. What is found fixes the type.
        for key_type in [KeyType::S, KeyType::N] {
            let Some(attribute) = key_value(key_type, &value) else {
                continue;
            };
            let key = HashMap::from([(mapping.key_attribute.clone(), attribute)]);
            match self.get(client, "GetItem(user)", key).await {
                Ok(Some(found)) => {
                    let _ = self.learned_key_type.set(key_type);
                    return Ok(readable(mapping, &found));
                }
                Ok(None) => {}
                Err(StoreError::Permanent(message)) if message.contains("ValidationException") => {}
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    pub async fn find_by_email(
        &self,
        client: &Client,
        lookup: &EmailLookup,
    ) -> Result<Vec<User>, StoreError> {
        let mapping = match &self.table.layout {
            UsersLayout::Own => return self.find_own_by_email(client, lookup).await,
            UsersLayout::Mapped(mapping) => mapping,
        };
        let wanted = match mapping.email_match {
            EmailMatch::Key => lookup.key.as_str(),
            EmailMatch::Lower => lookup.lower.as_str(),
        };
        // The index may project only keys: read each match's item itself, consistently.
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = client
                .query()
                .table_name(self.name())
                .index_name(&mapping.email_index)
                .key_condition_expression("#email_key = :wanted")
                .projection_expression("#key")
                .expression_attribute_names("#email_key", &mapping.email_key_attribute)
                .expression_attribute_names("#key", &mapping.key_attribute)
                .expression_attribute_values(":wanted", string_value(wanted))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk_error("Query(email index)", &e))?;
            keys.extend(page.items().iter().filter_map(|found| {
                found
                    .get(&mapping.key_attribute)
                    .map(|value| HashMap::from([(mapping.key_attribute.clone(), value.clone())]))
            }));
            match page.last_evaluated_key {
                Some(next) if keys.len() <= MAX_MATCHES => start = Some(next),
                _ => break,
            }
        }
        if keys.len() > MAX_MATCHES {
            tracing::warn!(
                event = "too_many_matches",
                matches = keys.len(),
                "more users share one address than pwreset mails; none of them was mailed"
            );
            return Ok(Vec::new());
        }
        let mut users = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(AttributeValue::N(_)) = key.get(&mapping.key_attribute) {
                let _ = self.learned_key_type.set(KeyType::N);
            } else {
                let _ = self.learned_key_type.set(KeyType::S);
            }
            let Some(found) = self.get(client, "GetItem(user)", key).await? else {
                continue;
            };
            // As Django's form does: the index finds candidates, the stored address decides.
            if let Some(user) = readable(mapping, &found) {
                if user.email_key() == lookup.key {
                    users.push(user);
                }
            }
        }
        Ok(users)
    }

    async fn find_own_by_email(
        &self,
        client: &Client,
        lookup: &EmailLookup,
    ) -> Result<Vec<User>, StoreError> {
        let Some(found) = self
            .get(
                client,
                "GetItem(email)",
                item::email_lookup_key(&lookup.key),
            )
            .await?
        else {
            return Ok(Vec::new());
        };
        let uid = item::uid_from_email_lookup(&found)?;
        let Some(found) = self
            .get(client, "GetItem(user)", item::user_key(&uid))
            .await?
        else {
            // Both items are written in one transaction; a lookup without its user is a
            // broken table, not a missing account.
            return Err(StoreError::Permanent(
                "e-mail lookup item points at a missing user".into(),
            ));
        };
        let user = item::user_from_item(&found)?;
        if user.email_key() != lookup.key {
            return Err(StoreError::Permanent(
                "e-mail lookup item points at a user with another address".into(),
            ));
        }
        Ok(vec![user])
    }

    /// The writes of a new user: in the own layout the user and its lookup item (both only
    /// if absent); in a team's table the one item, only if its key is new (the address is
    /// checked by the caller's lookup first: an index cannot be written conditionally).
    pub fn insert_items(&self, user: &User) -> Result<Vec<TransactWriteItem>, StoreError> {
        let items = match &self.table.layout {
            UsersLayout::Own => vec![
                (item::user_item(user), item::PUT_IF_ABSENT.to_owned(), None),
                (
                    item::email_lookup_item(user),
                    item::PUT_IF_ABSENT.to_owned(),
                    None,
                ),
            ],
            UsersLayout::Mapped(mapping) => vec![(
                self.mapped_item(mapping, user)?,
                "attribute_not_exists(#key)".to_owned(),
                Some(mapping.key_attribute.clone()),
            )],
        };
        items
            .into_iter()
            .map(|(item, condition, key_name)| {
                let put = Put::builder()
                    .table_name(self.name())
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .set_expression_attribute_names(
                        key_name.map(|name| HashMap::from([("#key".to_owned(), name)])),
                    )
                    .build()
                    .map_err(|e| build_error("user put", e))?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    fn mapped_item(&self, mapping: &UserMapping, user: &User) -> Result<Item, StoreError> {
        let value = user.uid.key_value();
        // Not known yet: a number goes in as one (a string key refuses it, and the insert
        // is tried again as a string), anything else as a string.
        let guess = if is_number(&value) {
            KeyType::N
        } else {
            KeyType::S
        };
        let key_type = self.learned_key_type.get().copied().unwrap_or(guess);
        let key = key_value(key_type, &value).ok_or_else(|| {
            StoreError::Permanent("this table's key is a number: the new user id is not".into())
        })?;
        let indexed = match mapping.email_match {
            EmailMatch::Key => user.email_key().as_str().to_owned(),
            EmailMatch::Lower => crate::domain::EmailLower::of(user.email.as_str())
                .as_str()
                .to_owned(),
        };
        let mut item = HashMap::from([(mapping.key_attribute.clone(), key)]);
        if mapping.email_key_attribute == mapping.email_attribute {
            // One attribute for both: it holds the indexed spelling, and mail goes there.
            item.insert(mapping.email_attribute.clone(), string_value(indexed));
        } else {
            item.insert(
                mapping.email_attribute.clone(),
                string_value(user.email.as_str()),
            );
            item.insert(mapping.email_key_attribute.clone(), string_value(indexed));
        }
        if let Some(hash) = &user.password_hash {
            item.insert(mapping.hash_attribute.clone(), string_value(hash.as_str()));
        }
        if let Some(active) = &mapping.active_attribute {
            item.insert(active.clone(), AttributeValue::Bool(user.active));
        }
        if let Some(version) = &mapping.credential_version_attribute {
            item.insert(
                version.clone(),
                AttributeValue::N(user.credential_version.to_string()),
            );
        }
        if let (Some(attribute), Some(locale)) = (&mapping.locale_attribute, user.locale) {
            item.insert(attribute.clone(), string_value(locale.tag()));
        }
        Ok(item)
    }

    /// The item key of user `uid` in this table (a team table's key in the type learned,
    /// a string until one is).
    fn item_key(&self, uid: &UserId) -> Result<Item, StoreError> {
        match &self.table.layout {
            UsersLayout::Own => Ok(item::user_key(uid)),
            UsersLayout::Mapped(mapping) => {
                let key_type = self.learned_key_type.get().copied().unwrap_or(KeyType::S);
                let value = key_value(key_type, &uid.key_value())
                    .ok_or_else(|| StoreError::Permanent("user id does not fit the key".into()))?;
                Ok(HashMap::from([(mapping.key_attribute.clone(), value)]))
            }
        }
    }

    /// The conditional update of a password change: the new hash (and the credential
    /// version plus one) only if the hash, the address, the active flag and the version are
    /// what verify saw.
    pub fn password_update(&self, change: &PasswordChange) -> Result<Update, StoreError> {
        let key = self.item_key(&change.uid)?;
        let names = match &self.table.layout {
            UsersLayout::Own => ChangeNames {
                key: item::PK,
                hash: item::PASSWORD_HASH,
                email: item::EMAIL,
                active: Some(item::ACTIVE),
                version: Some(item::CREDENTIAL_VERSION),
            },
            UsersLayout::Mapped(mapping) => ChangeNames {
                key: &mapping.key_attribute,
                hash: &mapping.hash_attribute,
                email: &mapping.email_attribute,
                active: mapping.active_attribute.as_deref(),
                version: mapping.credential_version_attribute.as_deref(),
            },
        };
        let (update, condition) = password_change_expressions(&names, change.expected_version);
        let mut attribute_names = HashMap::from([
            ("#key".to_owned(), names.key.to_owned()),
            ("#hash".to_owned(), names.hash.to_owned()),
            ("#email".to_owned(), names.email.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":new".to_owned(), string_value(change.new.as_str())),
            (
                ":expected".to_owned(),
                string_value(change.expected.as_str()),
            ),
            (
                ":email".to_owned(),
                string_value(change.expected_email.as_str()),
            ),
        ]);
        if let Some(active) = names.active {
            attribute_names.insert("#active".to_owned(), active.to_owned());
            values.insert(":active".to_owned(), AttributeValue::Bool(true));
            values.insert(":one".to_owned(), AttributeValue::N("1".to_owned()));
        }
        if let Some(version) = names.version {
            attribute_names.insert("#version".to_owned(), version.to_owned());
            values.insert(
                ":version".to_owned(),
                AttributeValue::N(change.expected_version.to_string()),
            );
            values.insert(
                ":next_version".to_owned(),
                AttributeValue::N(change.expected_version.saturating_add(1).to_string()),
            );
        }
        Update::builder()
            .table_name(self.name())
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(attribute_names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| build_error("password update", e))
    }
}

/// What one page of `pwreset users backfill-keys` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackfillPage {
    pub scanned: usize,
    pub written: usize,
    pub already_right: usize,
    /// No address attribute, or not a string.
    pub skipped_no_address: usize,
    /// The stored value is not an address pwreset can mail.
    pub skipped_not_an_address: usize,
    /// The address changed between the scan and the write: the write did not land (run
    /// again to cover it).
    pub skipped_changed: usize,
    /// Where the next page starts (`--resume`); `None` after the last page.
    pub next: Option<String>,
}

impl Users {
    /// The team mapping `backfill-keys` writes into, or why it does not apply.
    pub fn backfill_mapping(&self) -> Result<&UserMapping, String> {
        let UsersLayout::Mapped(mapping) = &self.table.layout else {
            return Err(
                "the users table has pwreset's own layout, which keeps its keys itself: set \
                 USERS_KEY_ATTRIBUTE and USERS_EMAIL_INDEX to describe a team's table"
                    .into(),
            );
        };
        if mapping.email_match != EmailMatch::Key {
            return Err(
                "USERS_EMAIL_MATCH is lower: the index reads the address itself, \
                 there is no key to write"
                    .into(),
            );
        }
        if mapping.email_key_attribute == mapping.email_attribute {
            return Err(format!(
                "USERS_EMAIL_KEY_ATTRIBUTE is the address attribute ({:?}): writing keys \
                 there would change where mail goes; name an attribute of its own",
                mapping.email_attribute
            ));
        }
        Ok(mapping)
    }

    /// Scans one page of up to `limit` items from `resume` (a previous page's `next`) and
    /// writes each item's normalised e-mail key into `USERS_EMAIL_KEY_ATTRIBUTE`, each
    /// write conditional on the address it was computed from.
    pub async fn backfill_page(
        &self,
        client: &Client,
        resume: Option<&str>,
        limit: i32,
    ) -> Result<BackfillPage, StoreError> {
        let mapping = self.backfill_mapping().map_err(StoreError::Permanent)?;
        let start = match resume {
            Some(token) => Some(HashMap::from([(
                mapping.key_attribute.clone(),
                decode_resume(token).ok_or_else(|| {
                    StoreError::Permanent(
                        "the --resume token is not one this command printed".into(),
                    )
                })?,
            )])),
            None => None,
        };
        let page = client
            .scan()
            .table_name(self.name())
            .consistent_read(true)
            .limit(limit)
            .projection_expression("#key, #email, #email_key")
            .expression_attribute_names("#key", &mapping.key_attribute)
            .expression_attribute_names("#email", &mapping.email_attribute)
            .expression_attribute_names("#email_key", &mapping.email_key_attribute)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| map_sdk_error("Scan(users)", &e))?;
        let mut report = BackfillPage {
            next: page
                .last_evaluated_key()
                .and_then(|key| key.get(&mapping.key_attribute))
                .map(encode_resume),
            ..BackfillPage::default()
        };
        for found in page.items() {
            report.scanned += 1;
            let Some(key) = found.get(&mapping.key_attribute) else {
                continue;
            };
            let Some(AttributeValue::S(stored)) = found.get(&mapping.email_attribute) else {
                report.skipped_no_address += 1;
                continue;
            };
            let Ok(address) = EmailAddress::parse(stored) else {
                report.skipped_not_an_address += 1;
                continue;
            };
            let email_key = address.key();
            if let Some(AttributeValue::S(current)) = found.get(&mapping.email_key_attribute) {
                if current == email_key.as_str() {
                    report.already_right += 1;
                    continue;
                }
            }
            let written = client
                .update_item()
                .table_name(self.name())
                .key(&mapping.key_attribute, key.clone())
                .update_expression("SET #email_key = :email_key")
                .condition_expression("attribute_exists(#key) AND #email = :read")
                .expression_attribute_names("#key", &mapping.key_attribute)
                .expression_attribute_names("#email", &mapping.email_attribute)
                .expression_attribute_names("#email_key", &mapping.email_key_attribute)
                .expression_attribute_values(":email_key", string_value(email_key.as_str()))
                .expression_attribute_values(":read", string_value(stored.as_str()))
                .send()
                .await;
            match written {
                Ok(_) => report.written += 1,
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    report.skipped_changed += 1;
                }
                Err(err) => return Err(map_sdk_error("UpdateItem(email key)", &err)),
            }
        }
        Ok(report)
    }
}

/// A scan position as text: the key's type and its value (base64url for a string).
fn encode_resume(key: &AttributeValue) -> String {
    use base64::Engine as _;
    match key {
        AttributeValue::N(n) => format!("N.{n}"),
        AttributeValue::S(s) => format!(
            "S.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        ),
        _ => String::new(),
    }
}

fn decode_resume(token: &str) -> Option<AttributeValue> {
    use base64::Engine as _;
    match token.split_once('.')? {
        ("N", n) if is_number(n) => Some(AttributeValue::N(n.to_owned())),
        ("S", encoded) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|s| !s.is_empty())
            .map(AttributeValue::S),
        _ => None,
    }
}

/// The update and condition expressions of a change verify saw at `expected_version`,
/// over the placeholders `#key #hash #email [#active] [#version]`.
fn password_change_expressions(names: &ChangeNames<'_>, expected_version: u64) -> (String, String) {
    let mut update = "SET #hash = :new".to_owned();
    let mut condition =
        "attribute_exists(#key) AND #hash = :expected AND #email = :email".to_owned();
    if names.active.is_some() {
        // BOOL true, N 1, or absent (absent = active).
        condition.push_str(
            " AND (attribute_not_exists(#active) OR #active = :active OR #active = :one)",
        );
    }
    if names.version.is_some() {
        update.push_str(", #version = :next_version");
        if expected_version == 0 {
            // An item without the attribute reads as version 0.
            condition.push_str(" AND (attribute_not_exists(#version) OR #version = :version)");
        } else {
            condition.push_str(" AND #version = :version");
        }
    }
    (update, condition)
}

/// `value` as a key of `key_type` (`None`: a number key and a value that is no number).
fn key_value(key_type: KeyType, value: &str) -> Option<AttributeValue> {
    match key_type {
        KeyType::S => Some(AttributeValue::S(value.to_owned())),
        KeyType::N => is_number(value).then(|| AttributeValue::N(value.to_owned())),
    }
}

/// A plain decimal number, as DynamoDB gives a number key back.
fn is_number(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && value.len() <= 40
}

/// A team's item as a user, or `None` (logged, without contents) when it cannot take part.
fn readable(mapping: &UserMapping, found: &Item) -> Option<User> {
    match mapped_user(mapping, found) {
        Ok(user) => Some(user),
        Err(reason) => {
            tracing::warn!(
                event = "user_item_unreadable",
                reason,
                "a user item in the users table cannot take part in resets"
            );
            None
        }
    }
}

fn mapped_user(mapping: &UserMapping, found: &Item) -> Result<User, &'static str> {
    let uid = match found.get(&mapping.key_attribute) {
        Some(AttributeValue::S(value)) | Some(AttributeValue::N(value)) => {
            UserId::from_key(value).ok_or("key value too long for a link")?
        }
        _ => return Err("key attribute missing or not a string or number"),
    };
    let stored = match found.get(&mapping.email_attribute) {
        Some(AttributeValue::S(value)) => value,
        _ => return Err("address attribute missing or not a string"),
    };
    let email = EmailAddress::parse(stored).map_err(|_| "stored address is not an address")?;
    if email.as_str() != stored {
        // The change's condition compares the stored value; keep it exactly.
        return Err("stored address has spaces around it");
    }
    let password_hash = match found.get(&mapping.hash_attribute) {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::S(hash)) => Some(PasswordHash::new(hash.clone())),
        Some(_) => return Err("hash attribute is not a string"),
    };
    let active = match mapping.active_attribute.as_ref().map(|a| found.get(a)) {
        None | Some(None) => true,
        Some(Some(AttributeValue::Bool(active))) => *active,
        Some(Some(AttributeValue::N(n))) if n == "1" => true,
        Some(Some(AttributeValue::N(n))) if n == "0" => false,
        Some(Some(_)) => return Err("active attribute is not BOOL or N 0/1"),
    };
    let credential_version = match mapping
        .credential_version_attribute
        .as_ref()
        .map(|a| found.get(a))
    {
        None | Some(None) => 0,
        Some(Some(AttributeValue::N(n))) => n
            .parse()
            .map_err(|_| "credential version is not a whole number")?,
        Some(Some(_)) => return Err("credential version is not a number"),
    };
    let locale = item::locale_from(
        mapping
            .locale_attribute
            .as_ref()
            .and_then(|attribute| found.get(attribute)),
    );
    Ok(User {
        uid,
        email,
        password_hash,
        active,
        credential_version,
        locale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Locale;

    fn mapping() -> UserMapping {
        UserMapping {
            key_attribute: "id".into(),
            key_type: None,
            email_index: "by_email".into(),
            email_attribute: "email".into(),
            email_key_attribute: "email_lower".into(),
            email_match: EmailMatch::Lower,
            hash_attribute: "password".into(),
            active_attribute: Some("is_active".into()),
            credential_version_attribute: Some("session_version".into()),
            locale_attribute: Some("language".into()),
        }
    }

    fn team_item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn team_items_read_leniently_and_safely() {
        let base = [
            ("id", AttributeValue::S("mike@example.org".into())),
            ("email", AttributeValue::S("Mike@Example.org".into())),
            ("password", AttributeValue::S("pbkdf2_sha256$1$s$h".into())),
        ];
        let user = mapped_user(&mapping(), &team_item(&base)).expect("readable");
        assert_eq!(user.uid.key_value(), "mike@example.org");
        assert!(user.active, "absent active attribute means active");
        assert_eq!(user.credential_version, 0);
        for (attribute, value, active) in [
            ("is_active", AttributeValue::N("0".into()), false),
            ("is_active", AttributeValue::N("1".into()), true),
            ("is_active", AttributeValue::Bool(false), false),
        ] {
            let mut item = team_item(&base);
            item.insert(attribute.into(), value);
            assert_eq!(mapped_user(&mapping(), &item).map(|u| u.active), Ok(active));
        }
        let mut numbered = team_item(&base);
        numbered.insert("id".into(), AttributeValue::N("42".into()));
        numbered.insert("session_version".into(), AttributeValue::N("7".into()));
        let user = mapped_user(&mapping(), &numbered).expect("readable");
        assert_eq!((user.uid.as_str(), user.credential_version), ("42", 7));
        for (attribute, value) in [
            ("email", AttributeValue::S(" mike@example.org".into())),
            ("email", AttributeValue::S("not an address".into())),
            ("email", AttributeValue::N("1".into())),
            ("password", AttributeValue::N("1".into())),
            ("is_active", AttributeValue::S("yes".into())),
            ("session_version", AttributeValue::S("7".into())),
            ("id", AttributeValue::Bool(true)),
        ] {
            let mut item = team_item(&base);
            item.insert(attribute.into(), value);
            assert!(mapped_user(&mapping(), &item).is_err(), "{attribute}");
        }
    }

    #[test]
    fn a_stored_language_is_read_and_one_not_shipped_is_none() {
        let base = [
            ("id", AttributeValue::S("lena".into())),
            ("email", AttributeValue::S("lena@example.org".into())),
        ];
        for (value, want) in [
            (AttributeValue::S("de".into()), Some(Locale::De)),
            (AttributeValue::S("fr-CA".into()), Some(Locale::Fr)),
            (AttributeValue::S("ja".into()), None),
            (AttributeValue::N("1".into()), None),
        ] {
            let mut item = team_item(&base);
            item.insert("language".into(), value);
            assert_eq!(mapped_user(&mapping(), &item).map(|u| u.locale), Ok(want));
        }
        assert_eq!(
            mapped_user(&mapping(), &team_item(&base)).map(|u| u.locale),
            Ok(None)
        );
    }

    #[test]
    fn resume_tokens_round_trip_and_strangers_are_refused() {
        for key in [
            AttributeValue::S("mike@example.org".into()),
            AttributeValue::S("a.b".into()),
            AttributeValue::N("-42".into()),
        ] {
            assert_eq!(decode_resume(&encode_resume(&key)), Some(key));
        }
        for bad in ["", "S.", "N.x", "B.AAAA", "S.!!", "42"] {
            assert_eq!(decode_resume(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn number_keys_are_numbers_only() {
        for good in ["0", "42", "-7", "3.25"] {
            assert!(is_number(good), "{good}");
        }
        for bad in ["", "-", "1.", ".5", "1e5", "0x1", "~MQ", "4 2", "NaN"] {
            assert!(!is_number(bad), "{bad}");
        }
    }

    #[test]
    fn the_change_checks_what_verify_saw_and_only_what_is_mapped() {
        let all = ChangeNames {
            key: "id",
            hash: "pw",
            email: "email",
            active: Some("is_active"),
            version: Some("v"),
        };
        let (update, condition) = password_change_expressions(&all, 3);
        assert_eq!(update, "SET #hash = :new, #version = :next_version");
        assert!(condition.contains("#hash = :expected"));
        assert!(condition.contains("#email = :email"));
        assert!(condition.contains("#active = :active"));
        assert!(condition.ends_with("AND #version = :version"));
        let (_, first) = password_change_expressions(&all, 0);
        assert!(first.contains("attribute_not_exists(#version) OR #version = :version"));
        let bare = ChangeNames {
            key: "id",
            hash: "pw",
            email: "email",
            active: None,
            version: None,
        };
        let (update, condition) = password_change_expressions(&bare, 0);
        assert_eq!(update, "SET #hash = :new");
        assert!(!condition.contains("#active") && !condition.contains("#version"));
    }
}
