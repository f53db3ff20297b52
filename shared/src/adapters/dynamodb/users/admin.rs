//! What an operator changes by hand (`pwreset user disable|enable|delete|set-email`), in
//! either layout. Each change is conditional on the item still being the one that was read,
//! and a change of address moves the own layout's lookup item in the same transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::super::error::{build_error, map_sdk_error};
use super::super::item::{self, string_value};
use super::super::transaction::transact;
use super::Users;
use crate::config::{EmailMatch, UsersLayout};
use crate::domain::{EmailAddress, EmailLower, User};
use crate::ports::StoreError;

/// How an operator's change went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    Done,
    /// The user changed (or went) between the read and the write: nothing was written.
    Changed,
    /// The new address belongs to another account already.
    AddressTaken,
}

impl Users {
    /// Sets the active flag of `user` (read just before), on condition that its stored
    /// address is still the one read. A team table needs `USERS_ACTIVE_ATTRIBUTE`.
    pub async fn set_active(
        &self,
        client: &Client,
        user: &User,
        active: bool,
    ) -> Result<AdminOutcome, StoreError> {
        let (attribute, email_attribute, value) = match &self.table.layout {
            UsersLayout::Own => (item::ACTIVE, item::EMAIL, AttributeValue::Bool(active)),
            UsersLayout::Mapped(mapping) => {
                let Some(attribute) = mapping.active_attribute.as_deref() else {
                    return Err(StoreError::Permanent(
                        "this users table has no active flag: set USERS_ACTIVE_ATTRIBUTE".into(),
                    ));
                };
                // Keep the table's own type: an N 0/1 flag stays a number.
                let current = self
                    .get(client, "GetItem(user)", self.item_key(&user.uid)?)
                    .await?;
                let numeric = matches!(
                    current.as_ref().and_then(|found| found.get(attribute)),
                    Some(AttributeValue::N(_))
                );
                let value = if numeric {
                    AttributeValue::N(if active { "1" } else { "0" }.to_owned())
                } else {
                    AttributeValue::Bool(active)
                };
                (attribute, mapping.email_attribute.as_str(), value)
            }
        };
        let updated = client
            .update_item()
            .table_name(self.name())
            .set_key(Some(self.item_key(&user.uid)?))
            .update_expression("SET #active = :active")
            .condition_expression("#email = :email")
            .expression_attribute_names("#active", attribute)
            .expression_attribute_names("#email", email_attribute)
            .expression_attribute_values(":active", value)
            .expression_attribute_values(":email", string_value(user.email.as_str()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(AdminOutcome::Done),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(AdminOutcome::Changed)
            }
            Err(err) => Err(map_sdk_error("UpdateItem(user active)", &err)),
        }
    }

    /// Deletes `user` and its lookup item in one transaction (pwreset's own layout only: a
    /// team's users are the team's to delete).
    pub async fn delete(&self, client: &Client, user: &User) -> Result<AdminOutcome, StoreError> {
        if !matches!(self.table.layout, UsersLayout::Own) {
            return Err(StoreError::Permanent(
                "pwreset does not delete users from a team's own table (USERS_KEY_ATTRIBUTE \
                 is set): delete them where the table is kept, or disable them here"
                    .into(),
            ));
        }
        let user_delete = Delete::builder()
            .table_name(self.name())
            .set_key(Some(item::user_key(&user.uid)))
            .condition_expression("#email = :email")
            .expression_attribute_names("#email", item::EMAIL)
            .expression_attribute_values(":email", string_value(user.email.as_str()))
            .build()
            .map_err(|e| build_error("user delete", e))?;
        let lookup_delete = Delete::builder()
            .table_name(self.name())
            .set_key(Some(item::email_lookup_key(&user.email_key())))
            .condition_expression("uid = :uid")
            .expression_attribute_values(":uid", string_value(user.uid.as_str()))
            .build()
            .map_err(|e| build_error("lookup delete", e))?;
        let items = vec![
            TransactWriteItem::builder().delete(user_delete).build(),
            TransactWriteItem::builder().delete(lookup_delete).build(),
        ];
        Ok(
            match transact(client, "TransactWriteItems(user delete)", items).await? {
                None => AdminOutcome::Done,
                Some(_) => AdminOutcome::Changed,
            },
        )
    }

    /// Moves `user` to `new` (the stored address, where mail goes), on condition that the
    /// stored address is still the one read; in pwreset's own layout the lookup item moves
    /// in the same transaction, and a new key another account holds is refused. Every reset
    /// link sent before dies (a link is bound to the stored address).
    pub async fn set_email(
        &self,
        client: &Client,
        user: &User,
        new: &EmailAddress,
    ) -> Result<AdminOutcome, StoreError> {
        match &self.table.layout {
            UsersLayout::Own => self.set_own_email(client, user, new).await,
            UsersLayout::Mapped(mapping) => {
                let indexed = match mapping.email_match {
                    EmailMatch::Key => new.key().as_str().to_owned(),
                    EmailMatch::Lower => EmailLower::of(new.as_str()).as_str().to_owned(),
                };
                let mut names =
                    HashMap::from([("#email".to_owned(), mapping.email_attribute.clone())]);
                let mut values = HashMap::from([
                    (":old".to_owned(), string_value(user.email.as_str())),
                    (":new".to_owned(), string_value(new.as_str())),
                ]);
                let expression = if mapping.email_key_attribute == mapping.email_attribute {
                    // One attribute for both: it holds the indexed spelling.
                    values.insert(":new".to_owned(), string_value(indexed));
                    "SET #email = :new".to_owned()
                } else {
                    names.insert("#indexed".to_owned(), mapping.email_key_attribute.clone());
                    values.insert(":indexed".to_owned(), string_value(indexed));
                    "SET #email = :new, #indexed = :indexed".to_owned()
                };
                let update = Update::builder()
                    .table_name(self.name())
                    .set_key(Some(self.item_key(&user.uid)?))
                    .update_expression(expression)
                    .condition_expression("#email = :old")
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .map_err(|e| build_error("user e-mail update", e))?;
                let items = vec![TransactWriteItem::builder().update(update).build()];
                Ok(
                    match transact(client, "TransactWriteItems(user e-mail)", items).await? {
                        None => AdminOutcome::Done,
                        Some(_) => AdminOutcome::Changed,
                    },
                )
            }
        }
    }

    async fn set_own_email(
        &self,
        client: &Client,
        user: &User,
        new: &EmailAddress,
    ) -> Result<AdminOutcome, StoreError> {
        let (old_key, new_key) = (user.email_key(), new.key());
        let update = Update::builder()
            .table_name(self.name())
            .set_key(Some(item::user_key(&user.uid)))
            .update_expression("SET #email = :new, email_key = :key")
            .condition_expression("#email = :old")
            .expression_attribute_names("#email", item::EMAIL)
            .expression_attribute_values(":new", string_value(new.as_str()))
            .expression_attribute_values(":key", string_value(new_key.as_str()))
            .expression_attribute_values(":old", string_value(user.email.as_str()))
            .build()
            .map_err(|e| build_error("user e-mail update", e))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if new_key != old_key {
            let moved = User {
                email: new.clone(),
                ..user.clone()
            };
            let put = Put::builder()
                .table_name(self.name())
                .set_item(Some(item::email_lookup_item(&moved)))
                .condition_expression(item::PUT_IF_ABSENT)
                .build()
                .map_err(|e| build_error("lookup put", e))?;
            let delete = Delete::builder()
                .table_name(self.name())
                .set_key(Some(item::email_lookup_key(&old_key)))
                .condition_expression("uid = :uid")
                .expression_attribute_values(":uid", string_value(user.uid.as_str()))
                .build()
                .map_err(|e| build_error("lookup delete", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        Ok(
            match transact(client, "TransactWriteItems(user e-mail)", items).await? {
                None => AdminOutcome::Done,
                // The new lookup item exists: another account has the address.
                Some(positions) if positions.contains(&1) => AdminOutcome::AddressTaken,
                Some(_) => AdminOutcome::Changed,
            },
        )
    }
}
