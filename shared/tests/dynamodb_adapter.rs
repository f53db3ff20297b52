//! The DynamoDB adapter against moto's DynamoDB (and DynamoDB Streams), through the real
//! AWS SDK. Needs `scripts/install-tools` (or `MOTO_SERVER_BIN`).
#![cfg(feature = "aws")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType, TimeToLiveStatus};
use aws_sdk_dynamodbstreams::types::{OperationType, ShardIteratorType};
use pwreset_core::adapters;
use pwreset_core::adapters::dynamodb::{self, DynamoStore};
use pwreset_core::config::UsersTable;
use pwreset_core::domain::{EmailAddress, EmailKey, EmailLookup, PasswordHash, User, UserId};
use pwreset_core::ports::{
    ChangeOutcome, ChangedVia, InsertOutcome, Outbox, OutboxJob, PasswordChange, RateDecision,
    RateLimit, RateLimiter, StoreError, UserRepository,
};
use pwreset_testkit::aws::{self, Sdk, unique_name};
use pwreset_testkit::outbox::{self, Item};
use pwreset_testkit::{emulators, net};

/// SDK clients configured as the adapters configure theirs (HTTPS client, timeouts, retries).
fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

/// A store on a fresh table of its own in the shared moto server.
async fn fresh_store() -> DynamoStore {
    let client = sdk().dynamodb(&emulators::moto().url);
    let table = aws::fresh_table(&client, "pwreset", dynamodb::table::create_tables).await;
    DynamoStore::new(client, table)
}

/// A store whose users live in a team's table: string `id` key, a keys-only `by_email`
/// index on `email_lower` (the address lower-cased), `is_active`, `session_version`, the
/// hash in `password`. `extra` adds or replaces `USERS_*` variables.
async fn team_store(extra: &[(&str, &str)]) -> DynamoStore {
    team_store_keyed(ScalarAttributeType::S, extra).await
}

async fn team_store_keyed(key_type: ScalarAttributeType, extra: &[(&str, &str)]) -> DynamoStore {
    let own = fresh_store().await;
    let users = aws::team_users_table(
        &own.client,
        "app-users",
        "id",
        key_type,
        "by_email",
        "email_lower",
    )
    .await;
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("USERS_TABLE", users.as_str()),
        ("USERS_KEY_ATTRIBUTE", "id"),
        ("USERS_EMAIL_INDEX", "by_email"),
        ("USERS_EMAIL_KEY_ATTRIBUTE", "email_lower"),
        ("USERS_EMAIL_MATCH", "lower"),
        ("USERS_HASH_ATTRIBUTE", "password"),
        ("USERS_ACTIVE_ATTRIBUTE", "is_active"),
        ("USERS_CREDENTIAL_VERSION_ATTRIBUTE", "session_version"),
    ]);
    vars.extend(extra.iter().copied());
    let mapping =
        UsersTable::from_lookup(&own.table, |name| vars.get(name).map(|v| (*v).to_owned()))
            .expect("a valid mapping");
    own.with_users(mapping)
}

/// Puts a team's item as the team's own app would have written it.
async fn put_team_item(store: &DynamoStore, pairs: &[(&str, AttributeValue)]) {
    store
        .client
        .put_item()
        .table_name(&store.users.table.name)
        .set_item(Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        ))
        .send()
        .await
        .expect("put");
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn user(email: &str, hash: Option<&str>, active: bool) -> User {
    User {
        uid: UserId::generate(),
        email: EmailAddress::parse(email).expect("valid address"),
        password_hash: hash.map(PasswordHash::new),
        active,
        credential_version: 0,
        locale: None,
    }
}

fn key(raw: &str) -> EmailKey {
    EmailKey::normalise(raw).expect("valid key")
}

/// Every item of the table whose `pk` starts with `prefix`.
async fn items_with_prefix(store: &DynamoStore, prefix: &str) -> Vec<Item> {
    outbox::items_with_prefix(&store.client, &store.table, prefix)
        .await
        .expect("scan")
}

async fn outbox_jobs(store: &DynamoStore) -> Vec<OutboxJob> {
    items_with_prefix(store, dynamodb::item::OUTBOX_PREFIX)
        .await
        .iter()
        .map(|item| dynamodb::item::outbox_job_from_item(item).expect("a valid outbox item"))
        .collect()
}

#[tokio::test]
async fn create_table_is_idempotent_and_turns_on_ttl() {
    let store = fresh_store().await;
    dynamodb::table::create_table(&store.client, &store.table)
        .await
        .expect("second create is fine");
    let ttl = store
        .client
        .describe_time_to_live()
        .table_name(&store.table)
        .send()
        .await
        .expect("describe TTL");
    let ttl = ttl.time_to_live_description().expect("a TTL description");
    assert_eq!(ttl.attribute_name(), Some(dynamodb::item::TTL_ATTRIBUTE));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    let table = store
        .client
        .describe_table()
        .table_name(&store.table)
        .send()
        .await
        .expect("describe table");
    let stream = table
        .table()
        .and_then(|t| t.stream_specification())
        .expect("a stream specification");
    assert!(stream.stream_enabled());
}

#[tokio::test]
async fn inserted_users_are_found_by_uid_and_by_email_key_only() {
    let store = fresh_store().await;
    let mike = user(
        "Mike@Example.org",
        Some("$argon2id$v=19$m=19456,t=2,p=1$abc$def"),
        true,
    );
    assert_eq!(
        store.insert(&mike).await.expect("insert"),
        InsertOutcome::Inserted
    );

    assert_eq!(
        store.find_by_uid(&mike.uid).await.expect("by uid"),
        Some(mike.clone())
    );
    // Found under its normalised key, including a look-alike that normalises to it; the
    // stored address keeps its case.
    for raw in ["mike@example.org", "ＭＩＫＥ@EXAMPLE.ORG"] {
        let found = store.find_by_email(&key(raw).into()).await.expect("by key");
        assert_eq!(found, vec![mike.clone()], "{raw}");
        assert_eq!(found[0].email.as_str(), "Mike@Example.org");
    }
    assert_eq!(
        store
            .find_by_email(&key("m\u{131}ke@example.org").into())
            .await
            .expect("lookup"),
        Vec::<User>::new()
    );
    assert_eq!(
        store
            .find_by_email(&key("nobody@example.org").into())
            .await
            .expect("lookup"),
        Vec::<User>::new()
    );
    assert_eq!(
        store
            .find_by_uid(&UserId::generate())
            .await
            .expect("lookup"),
        None
    );

    // A second account for the same key is refused, and the first one is untouched.
    let twin = user("MIKE@example.ORG", Some("$argon2id$other"), true);
    assert_eq!(
        store.insert(&twin).await.expect("insert"),
        InsertOutcome::EmailTaken
    );
    assert_eq!(store.find_by_uid(&twin.uid).await.expect("by uid"), None);
    assert_eq!(
        store
            .find_by_email(&key("mike@example.org").into())
            .await
            .expect("by key"),
        vec![mike]
    );

    // No password and inactive round-trip as they are.
    let bare = user("bare@example.org", None, false);
    assert_eq!(
        store.insert(&bare).await.expect("insert"),
        InsertOutcome::Inserted
    );
    assert_eq!(
        store.find_by_uid(&bare.uid).await.expect("by uid"),
        Some(bare)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_password_changes_exactly_one_lands_with_one_notice() {
    concurrent_changes_land_once(Arc::new(fresh_store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_team_table_concurrent_changes_land_once_and_bump_the_version_once() {
    concurrent_changes_land_once(Arc::new(team_store(&[]).await)).await;
}

async fn concurrent_changes_land_once(store: Arc<DynamoStore>) {
    let old = PasswordHash::new("$argon2id$v=19$old");
    let mike = user("mike@example.org", Some(old.as_str()), true);
    store.insert(&mike).await.expect("insert");

    const RACERS: usize = 24;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let change = PasswordChange {
            uid: mike.uid.clone(),
            expected: old.clone(),
            expected_email: mike.email.clone(),
            expected_version: 0,
            new: PasswordHash::new(format!("$argon2id$v=19$new-{i}")),
            notice: OutboxJob::PasswordChanged {
                uid: mike.uid.clone(),
                changed_at: i64::try_from(i).expect("small"),
                credential_version: 1,
                via: ChangedVia::Reset,
                locale: None,
            },
            event: None,
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (i, store.commit_password_change(&change).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, outcome) = task.await.expect("task");
        match outcome.expect("no store error") {
            ChangeOutcome::Applied => winners.push(i),
            ChangeOutcome::Stale => {}
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one change may land, got {winners:?}"
    );
    let winner = winners[0];

    let stored = store
        .find_by_uid(&mike.uid)
        .await
        .expect("lookup")
        .expect("user");
    assert_eq!(
        stored.password_hash,
        Some(PasswordHash::new(format!("$argon2id$v=19$new-{winner}")))
    );
    assert_eq!(
        stored.credential_version, 1,
        "the credential version goes up exactly once"
    );
    assert_eq!(
        outbox_jobs(&store).await,
        vec![OutboxJob::PasswordChanged {
            uid: mike.uid.clone(),
            changed_at: i64::try_from(winner).expect("small"),
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        }],
        "exactly the winner's notice is in the outbox"
    );

    // A late confirm with the old hash is stale and writes nothing.
    let late = PasswordChange {
        uid: mike.uid.clone(),
        expected: old,
        expected_email: mike.email.clone(),
        expected_version: 0,
        new: PasswordHash::new("$argon2id$v=19$late"),
        notice: OutboxJob::PasswordChanged {
            uid: mike.uid.clone(),
            changed_at: 99,
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        },
        event: None,
    };
    assert_eq!(
        store.commit_password_change(&late).await.expect("commit"),
        ChangeOutcome::Stale
    );
    assert_eq!(outbox_jobs(&store).await.len(), 1);
    assert_eq!(
        store.find_by_uid(&mike.uid).await.expect("lookup"),
        Some(stored)
    );

    // So is a change for a user that does not exist.
    let ghost = PasswordChange {
        uid: UserId::generate(),
        ..late
    };
    assert_eq!(
        store.commit_password_change(&ghost).await.expect("commit"),
        ChangeOutcome::Stale
    );
    assert_eq!(outbox_jobs(&store).await.len(), 1);
}

/// The conditional write re-checks all that verify saw: the hash, the stored address the
/// token was bound to, an active account and the credential version.
async fn a_change_lands_only_while_the_address_and_active_flag_are_as_verified(
    store: &dyn UserRepository,
) {
    let old = PasswordHash::new("$argon2id$v=19$old");
    let change = |who: &User, verified_email: &str| PasswordChange {
        uid: who.uid.clone(),
        expected: old.clone(),
        expected_email: EmailAddress::parse(verified_email).expect("valid"),
        expected_version: 0,
        new: PasswordHash::new("$argon2id$v=19$new"),
        notice: OutboxJob::PasswordChanged {
            uid: who.uid.clone(),
            changed_at: 1,
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        },
        event: None,
    };
    let asleep = user("asleep@example.org", Some(old.as_str()), false);
    store.insert(&asleep).await.expect("insert");
    assert_eq!(
        store
            .commit_password_change(&change(&asleep, "asleep@example.org"))
            .await
            .expect("commit"),
        ChangeOutcome::Stale,
        "an inactive account takes no new password"
    );
    let moved = user("moved@example.org", Some(old.as_str()), true);
    store.insert(&moved).await.expect("insert");
    assert_eq!(
        store
            .commit_password_change(&change(&moved, "before@example.org"))
            .await
            .expect("commit"),
        ChangeOutcome::Stale,
        "a token checked against another address is stale"
    );
    // Another writer (say the app's "sign out everywhere") bumped the version in between.
    let mut bumped = user("bumped@example.org", Some(old.as_str()), true);
    bumped.credential_version = 7;
    store.insert(&bumped).await.expect("insert");
    assert_eq!(
        store
            .commit_password_change(&PasswordChange {
                expected_version: 6,
                ..change(&bumped, "bumped@example.org")
            })
            .await
            .expect("commit"),
        ChangeOutcome::Stale,
        "a change checked against an older credential version is stale"
    );
    for unchanged in [&asleep, &moved, &bumped] {
        let stored = store.find_by_uid(&unchanged.uid).await.expect("read");
        assert_eq!(stored.as_ref(), Some(unchanged), "nothing was written");
    }
    assert_eq!(
        store
            .commit_password_change(&change(&moved, "moved@example.org"))
            .await
            .expect("commit"),
        ChangeOutcome::Applied
    );
    assert_eq!(
        store
            .commit_password_change(&PasswordChange {
                expected_version: 7,
                ..change(&bumped, "bumped@example.org")
            })
            .await
            .expect("commit"),
        ChangeOutcome::Applied
    );
    for (who, version) in [(&moved, 1), (&bumped, 8)] {
        let stored = store
            .find_by_uid(&who.uid)
            .await
            .expect("read")
            .expect("user");
        assert_eq!(stored.credential_version, version, "{}", who.email.as_str());
    }
}

#[tokio::test]
async fn on_dynamodb_a_change_rechecks_the_address_and_the_active_flag() {
    let store = fresh_store().await;
    a_change_lands_only_while_the_address_and_active_flag_are_as_verified(&store).await;
}

#[tokio::test]
async fn on_a_team_table_a_change_rechecks_the_address_and_the_active_flag() {
    let store = team_store(&[]).await;
    a_change_lands_only_while_the_address_and_active_flag_are_as_verified(&store).await;
}

#[tokio::test]
async fn in_memory_a_change_rechecks_the_address_and_the_active_flag() {
    let store = pwreset_core::adapters::memory::MemoryStore::new();
    a_change_lands_only_while_the_address_and_active_flag_are_as_verified(&store).await;
}

#[tokio::test]
async fn a_change_against_a_user_without_password_is_stale() {
    let store = fresh_store().await;
    let bare = user("bare@example.org", None, true);
    store.insert(&bare).await.expect("insert");
    let change = PasswordChange {
        uid: bare.uid.clone(),
        expected: PasswordHash::new(""),
        expected_email: bare.email.clone(),
        expected_version: 0,
        new: PasswordHash::new("$argon2id$new"),
        notice: OutboxJob::PasswordChanged {
            uid: bare.uid.clone(),
            changed_at: 1,
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        },
        event: None,
    };
    assert_eq!(
        store.commit_password_change(&change).await.expect("commit"),
        ChangeOutcome::Stale
    );
    assert!(outbox_jobs(&store).await.is_empty());
}

#[tokio::test]
async fn enqueued_jobs_reach_the_table_stream() {
    let store = fresh_store().await;
    let job = OutboxJob::ResetRequested {
        email_key: key("mike@example.org"),
        email_lower: None,
        requested_at: 1_700_000_000,
        suppressed: false,
        locale: None,
        return_to: None,
    };
    store.enqueue(job.clone()).await.expect("enqueue");

    let items = items_with_prefix(&store, dynamodb::item::OUTBOX_PREFIX).await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        dynamodb::item::outbox_job_from_item(item).expect("job"),
        job
    );
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().expect("a number"),
        other => panic!("{name} is not a number: {other:?}"),
    };
    let created = number("created_at");
    assert_eq!(
        number(dynamodb::item::TTL_ATTRIBUTE) - created,
        7 * 24 * 3600
    );

    // The stream carries the item as an INSERT with its new image.
    let described = store
        .client
        .describe_table()
        .table_name(&store.table)
        .send()
        .await
        .expect("describe table");
    let arn = described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .expect("the table has a stream")
        .to_owned();
    let streams = sdk().streams(&emulators::moto().url);
    let stream = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("describe stream");
    let shards = stream
        .stream_description()
        .map(|d| d.shards())
        .unwrap_or_default();
    assert!(!shards.is_empty(), "the stream has a shard");
    let mut inserts = Vec::new();
    for shard in shards {
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().expect("shard id"))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("shard iterator");
        let records = streams
            .get_records()
            .shard_iterator(iterator.shard_iterator().expect("an iterator"))
            .send()
            .await
            .expect("records");
        for record in records.records() {
            let Some(change) = record.dynamodb() else {
                continue;
            };
            let image = change.new_image().expect("NEW_IMAGE view");
            let pk = match image.get("pk") {
                Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(pk)) => pk.clone(),
                other => panic!("pk missing from the image: {other:?}"),
            };
            if pk.starts_with(dynamodb::item::OUTBOX_PREFIX) {
                assert_eq!(record.event_name(), Some(&OperationType::Insert));
                let json = match image.get(dynamodb::item::JOB_ATTRIBUTE) {
                    Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(json)) => json.clone(),
                    other => panic!("job missing from the image: {other:?}"),
                };
                inserts.push(serde_json::from_str::<OutboxJob>(&json).expect("a job"));
            }
        }
    }
    assert_eq!(inserts, vec![job]);
}

#[tokio::test]
async fn rate_limits_count_per_bucket_and_window() {
    let store = fresh_store().await;
    let limit = RateLimit {
        max: 3,
        window: Duration::from_secs(60),
    };
    let now = 1_700_000_010; // 50 s before its window ends
    let (_, expected_retry) = limit.window_at(now);
    for _ in 0..3 {
        assert_eq!(
            store.hit("ip#192.0.2.1", &limit, now).await.expect("hit"),
            RateDecision::Allowed
        );
    }
    for _ in 0..2 {
        match store
            .hit("ip#192.0.2.1", &limit, now + 5)
            .await
            .expect("hit")
        {
            RateDecision::Limited { retry_after_secs } => {
                assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
                assert_eq!(retry_after_secs, expected_retry - 5);
            }
            RateDecision::Allowed => panic!("the fourth hit in a window must be limited"),
        }
    }
    // Another bucket and the next window count from zero.
    assert_eq!(
        store.hit("ip#192.0.2.2", &limit, now).await.expect("hit"),
        RateDecision::Allowed
    );
    assert_eq!(
        store
            .hit("ip#192.0.2.1", &limit, now + 60)
            .await
            .expect("hit"),
        RateDecision::Allowed
    );

    // Counters expire (TTL) after their window ends.
    let counters = items_with_prefix(&store, dynamodb::item::LIMIT_PREFIX).await;
    assert_eq!(counters.len(), 3);
    for item in counters {
        let Some(AttributeValue::N(expires)) = item.get(dynamodb::item::TTL_ATTRIBUTE) else {
            panic!("a counter without expires_at");
        };
        assert!(expires.parse::<i64>().expect("a number") > now + 50);
    }
}

#[tokio::test]
async fn unreadable_items_and_missing_tables_are_faults_not_missing_users() {
    let store = fresh_store().await;
    let uid = UserId::generate();
    store
        .client
        .put_item()
        .table_name(&store.users.table.name)
        .item("pk", AttributeValue::S(format!("USER#{uid}")))
        .item("sk", AttributeValue::S("USER".into()))
        .item("uid", AttributeValue::S(uid.to_string()))
        .item("email", AttributeValue::S("not an address".into()))
        .item("active", AttributeValue::Bool(true))
        .send()
        .await
        .expect("put");
    assert!(matches!(
        store.find_by_uid(&uid).await,
        Err(StoreError::Permanent(_))
    ));

    let missing = DynamoStore::new(store.client.clone(), unique_name("no-such-table"));
    let result = missing.find_by_email(&key("mike@example.org").into()).await;
    assert!(
        matches!(result, Err(StoreError::Permanent(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_promptly() {
    let client = sdk().dynamodb(&format!("http://127.0.0.1:{}", net::closed_port()));
    let store = DynamoStore::new(client, "pwreset");
    let started = Instant::now();
    let result = store.find_by_email(&key("mike@example.org").into()).await;
    assert!(
        matches!(result, Err(StoreError::Transient(_))),
        "{result:?}"
    );
    let uid = UserId::generate();
    let result = store.find_by_uid(&uid).await;
    assert!(
        matches!(result, Err(StoreError::Transient(_))),
        "{result:?}"
    );
    let result = store
        .commit_password_change(&PasswordChange {
            uid: uid.clone(),
            expected: PasswordHash::new("$argon2id$old"),
            expected_email: EmailAddress::parse("x@example.org").expect("valid"),
            expected_version: 0,
            new: PasswordHash::new("$argon2id$new"),
            notice: OutboxJob::PasswordChanged {
                uid,
                changed_at: 1,
                credential_version: 1,
                via: ChangedVia::Reset,
                locale: None,
            },
            event: None,
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::Transient(_))),
        "{result:?}"
    );
    let result = store
        .enqueue(OutboxJob::ResetRequested {
            email_key: key("mike@example.org"),
            email_lower: None,
            requested_at: 1,
            suppressed: false,
            locale: None,
            return_to: None,
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::Transient(_))),
        "{result:?}"
    );
    let limit = RateLimit {
        max: 1,
        window: Duration::from_secs(60),
    };
    let result = store.hit("ip#192.0.2.1", &limit, 1_700_000_000).await;
    assert!(
        matches!(result, Err(StoreError::Transient(_))),
        "{result:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "five calls took {elapsed:?}"
    );

    // The messages name the failure, never the data.
    let Err(StoreError::Transient(message)) =
        store.find_by_email(&key("mike@example.org").into()).await
    else {
        panic!("unavailable");
    };
    assert!(!message.contains("mike"), "{message}");
}

#[tokio::test]
async fn create_table_tolerates_a_dynamodb_without_ttl() {
    // dynalite has no TTL (and keeps new tables CREATING for a while): the table is still
    // created and usable, with a warning instead of an error.
    let client = sdk().dynamodb(&emulators::dynalite().url);
    aws::warm_up_dynamodb(&client).await;
    let table = unique_name("pwreset");
    dynamodb::table::create_table(&client, &table)
        .await
        .expect("created without TTL");
    dynamodb::table::create_table(&client, &table)
        .await
        .expect("and again");
    let store = DynamoStore::new(client, table);
    let limit = RateLimit {
        max: 1,
        window: Duration::from_secs(60),
    };
    assert_eq!(
        store
            .hit("ip#192.0.2.1", &limit, 1_700_000_000)
            .await
            .expect("hit"),
        RateDecision::Allowed
    );
    assert!(matches!(
        store
            .hit("ip#192.0.2.1", &limit, 1_700_000_001)
            .await
            .expect("hit"),
        RateDecision::Limited { .. }
    ));
    store
        .enqueue(OutboxJob::ResetRequested {
            email_key: key("mike@example.org"),
            email_lower: None,
            requested_at: 1,
            suppressed: false,
            locale: None,
            return_to: None,
        })
        .await
        .expect("enqueue");
    assert_eq!(outbox_jobs(&store).await.len(), 1);
}

#[tokio::test]
async fn a_hung_endpoint_times_out_as_unavailable() {
    let store = DynamoStore::new(sdk().dynamodb(&net::silent_endpoint()), "pwreset");
    let started = Instant::now();
    let result = store.find_by_email(&key("mike@example.org").into()).await;
    assert!(
        matches!(result, Err(StoreError::Transient(_))),
        "{result:?}"
    );
    let elapsed = started.elapsed();
    // The operation timeout (5 s) bounds the call, retries included.
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
}

/// A user item written before credential versions were kept has no such attribute: it
/// reads as version 0, and the first change lands and writes 1.
#[tokio::test]
async fn an_item_without_a_credential_version_starts_at_zero() {
    let store = fresh_store().await;
    let old = PasswordHash::new("$argon2id$v=19$old");
    let legacy = user("legacy@example.org", Some(old.as_str()), true);
    let mut item = dynamodb::item::user_item(&legacy);
    assert!(item.remove("credential_version").is_some());
    store
        .client
        .put_item()
        .table_name(&store.users.table.name)
        .set_item(Some(item))
        .send()
        .await
        .expect("put");
    let read = store.find_by_uid(&legacy.uid).await.expect("read");
    assert_eq!(read.as_ref(), Some(&legacy), "absent reads as 0");
    let change = PasswordChange {
        uid: legacy.uid.clone(),
        expected: old,
        expected_email: legacy.email.clone(),
        expected_version: 0,
        new: PasswordHash::new("$argon2id$v=19$new"),
        notice: OutboxJob::PasswordChanged {
            uid: legacy.uid.clone(),
            changed_at: 1,
            credential_version: 1,
            via: ChangedVia::Reset,
            locale: None,
        },
        event: None,
    };
    assert_eq!(
        store.commit_password_change(&change).await.expect("commit"),
        ChangeOutcome::Applied
    );
    let stored = store
        .find_by_uid(&legacy.uid)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(stored.credential_version, 1);
    // The same change again is stale: the hash and the version have moved on.
    assert_eq!(
        store.commit_password_change(&change).await.expect("commit"),
        ChangeOutcome::Stale
    );
}

#[tokio::test]
async fn a_team_table_is_read_in_its_own_shape_and_every_match_is_found() {
    let store = team_store(&[]).await;
    let hash = s("pbkdf2_sha256$1000000$salt$hash");
    // Two accounts with one address in two spellings (a table without a unique address),
    // one inactive, one whose index spelling matches but whose address is another (the
    // dotless i: lower-cased it is "mıke", which does not fold to "mike").
    put_team_item(
        &store,
        &[
            ("id", s("u-1")),
            ("email", s("Mike@Example.org")),
            ("email_lower", s("mike@example.org")),
            ("password", hash.clone()),
        ],
    )
    .await;
    put_team_item(
        &store,
        &[
            ("id", s("mike@example.org")),
            ("email", s("mike@example.org")),
            ("email_lower", s("mike@example.org")),
            ("password", hash.clone()),
            ("session_version", AttributeValue::N("4".into())),
        ],
    )
    .await;
    put_team_item(
        &store,
        &[
            ("id", s("u-3")),
            ("email", s("mike@example.org")),
            ("email_lower", s("mike@example.org")),
            ("password", hash.clone()),
            ("is_active", AttributeValue::N("0".into())),
        ],
    )
    .await;
    put_team_item(
        &store,
        &[
            ("id", s("u-4")),
            ("email", s("m\u{131}ke@example.org")),
            ("email_lower", s("mike@example.org")),
            ("password", hash.clone()),
        ],
    )
    .await;
    put_team_item(
        &store,
        &[
            ("id", s("u-5")),
            ("email", s("not an address")),
            ("email_lower", s("mike@example.org")),
        ],
    )
    .await;

    let lookup = EmailLookup::from_request("  MIKE@example.org").expect("valid");
    let mut found = store.find_by_email(&lookup).await.expect("query");
    found.sort_by(|a, b| a.uid.cmp(&b.uid));
    let seen: Vec<(String, bool, u64)> = found
        .iter()
        .map(|u| (u.uid.key_value(), u.active, u.credential_version))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("u-1".to_owned(), true, 0),
            ("u-3".to_owned(), false, 0),
            ("mike@example.org".to_owned(), true, 4),
        ],
        "every account at the address, none at a look-alike or unreadable"
    );
    // An id that is an address travels encoded, and finds its item again.
    let by_address = found
        .iter()
        .find(|u| u.uid.key_value() == "mike@example.org")
        .expect("found");
    assert!(by_address.uid.as_str().starts_with('~'));
    assert_eq!(
        store
            .find_by_uid(&by_address.uid)
            .await
            .expect("get")
            .as_ref(),
        Some(by_address)
    );
    assert_eq!(
        store
            .find_by_uid(&UserId::parse("nobody").expect("uid"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store
            .find_by_email(&EmailLookup::from_request("nobody@example.org").expect("valid"))
            .await
            .expect("query"),
        vec![]
    );

    // What pwreset writes it writes in the team's shape, and never a second account for an
    // address the index already holds.
    let new = user("New.User@Example.org", Some("argon2$argon2id$v=19$x"), true);
    assert_eq!(
        store.insert(&new).await.expect("insert"),
        InsertOutcome::Inserted
    );
    let written = store
        .client
        .get_item()
        .table_name(&store.users.table.name)
        .key("id", s(&new.uid.key_value()))
        .send()
        .await
        .expect("get")
        .item
        .expect("written");
    assert_eq!(written.get("email"), Some(&s("New.User@Example.org")));
    assert_eq!(written.get("email_lower"), Some(&s("new.user@example.org")));
    assert_eq!(written.get("password"), Some(&s("argon2$argon2id$v=19$x")));
    assert_eq!(written.get("is_active"), Some(&AttributeValue::Bool(true)));
    assert_eq!(
        written.get("session_version"),
        Some(&AttributeValue::N("0".into()))
    );
    assert_eq!(
        store
            .insert(&user("new.user@example.org", None, true))
            .await
            .expect("insert"),
        InsertOutcome::EmailTaken
    );

    // pwreset's own table got none of it: the stream never carries a user or a hash.
    let everything = outbox::items_with_prefix(&store.client, &store.table, "")
        .await
        .expect("scan");
    assert!(
        everything.is_empty(),
        "{} items in the streamed table",
        everything.len()
    );
}

#[tokio::test]
async fn a_number_key_is_learned_from_the_table() {
    let store = team_store_keyed(ScalarAttributeType::N, &[]).await;
    put_team_item(
        &store,
        &[
            ("id", AttributeValue::N("42".into())),
            ("email", s("n@example.org")),
            ("email_lower", s("n@example.org")),
            ("password", s("x")),
        ],
    )
    .await;
    let uid = UserId::parse("42").expect("uid");
    let found = store
        .find_by_uid(&uid)
        .await
        .expect("get")
        .expect("found by a number key");
    assert_eq!(found.email.as_str(), "n@example.org");
    let new = User {
        uid: store.fresh_uid(),
        ..user("m@example.org", Some("x"), true)
    };
    assert_eq!(
        store.insert(&new).await.expect("insert"),
        InsertOutcome::Inserted
    );
    assert_eq!(
        store
            .find_by_uid(&new.uid)
            .await
            .expect("get")
            .map(|u| u.email),
        Some(new.email)
    );
    assert_eq!(
        store
            .find_by_uid(&UserId::parse("abc").expect("uid"))
            .await
            .expect("get"),
        None
    );
}

#[tokio::test]
async fn a_change_on_a_team_table_writes_the_hash_and_the_version_and_nothing_else() {
    let store = team_store(&[]).await;
    put_team_item(
        &store,
        &[
            ("id", s("u-1")),
            ("email", s("a@example.org")),
            ("email_lower", s("a@example.org")),
            ("password", s("old")),
            ("is_active", AttributeValue::Bool(true)),
            ("session_version", AttributeValue::N("2".into())),
            ("name", s("Ada")),
        ],
    )
    .await;
    let uid = UserId::parse("u-1").expect("uid");
    let change = PasswordChange {
        uid: uid.clone(),
        expected: PasswordHash::new("old"),
        expected_email: EmailAddress::parse("a@example.org").expect("valid"),
        expected_version: 2,
        new: PasswordHash::new("new"),
        notice: OutboxJob::PasswordChanged {
            uid: uid.clone(),
            changed_at: 1,
            credential_version: 3,
            via: ChangedVia::Reset,
            locale: None,
        },
        event: None,
    };
    assert_eq!(
        store.commit_password_change(&change).await.expect("commit"),
        ChangeOutcome::Applied
    );
    let item = store
        .client
        .get_item()
        .table_name(&store.users.table.name)
        .key("id", s("u-1"))
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert_eq!(item.get("password"), Some(&s("new")));
    assert_eq!(
        item.get("session_version"),
        Some(&AttributeValue::N("3".into()))
    );
    assert_eq!(
        item.get("name"),
        Some(&s("Ada")),
        "the team's own attributes stay"
    );
    assert_eq!(item.len(), 7);
    assert_eq!(outbox_jobs(&store).await, vec![change.notice.clone()]);

    // Without a version attribute mapped, only the hash changes.
    let bare = team_store(&[
        ("USERS_CREDENTIAL_VERSION_ATTRIBUTE", ""),
        ("USERS_ACTIVE_ATTRIBUTE", ""),
    ])
    .await;
    put_team_item(
        &bare,
        &[
            ("id", s("u-1")),
            ("email", s("a@example.org")),
            ("email_lower", s("a@example.org")),
            ("password", s("old")),
        ],
    )
    .await;
    assert_eq!(
        bare.commit_password_change(&PasswordChange {
            expected_version: 0,
            ..change.clone()
        })
        .await
        .expect("commit"),
        ChangeOutcome::Applied
    );
    let item = bare
        .client
        .get_item()
        .table_name(&bare.users.table.name)
        .key("id", s("u-1"))
        .send()
        .await
        .expect("get")
        .item
        .expect("item");
    assert_eq!(item.get("password"), Some(&s("new")));
    assert_eq!(item.len(), 4);
}

#[tokio::test]
async fn backfill_writes_each_key_once_conditionally_and_resumes() {
    let store = team_store(&[
        ("USERS_EMAIL_MATCH", "key"),
        ("USERS_EMAIL_KEY_ATTRIBUTE", "email_lower"),
    ])
    .await;
    for i in 0..7 {
        put_team_item(
            &store,
            &[
                ("id", s(&format!("u-{i}"))),
                ("email", s(&format!("User{i}@Example.ORG"))),
            ],
        )
        .await;
    }
    put_team_item(
        &store,
        &[
            ("id", s("right")),
            ("email", s("ok@example.org")),
            ("email_lower", s("ok@example.org")),
        ],
    )
    .await;
    put_team_item(&store, &[("id", s("bad")), ("email", s("not an address"))]).await;
    put_team_item(
        &store,
        &[("id", s("none")), ("name", s("no address at all"))],
    )
    .await;
    let mut total = dynamodb::users::BackfillPage::default();
    let mut resume: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .users
            .backfill_page(&store.client, resume.as_deref(), 3)
            .await
            .expect("page");
        pages += 1;
        total.scanned += page.scanned;
        total.written += page.written;
        total.already_right += page.already_right;
        total.skipped_no_address += page.skipped_no_address;
        total.skipped_not_an_address += page.skipped_not_an_address;
        resume = page.next;
        if resume.is_none() {
            break;
        }
    }
    assert!(pages >= 4, "paginated: {pages} pages");
    assert_eq!(
        (
            total.scanned,
            total.written,
            total.already_right,
            total.skipped_no_address,
            total.skipped_not_an_address
        ),
        (10, 7, 1, 1, 1)
    );
    // Now every user is found by the normalised key, and a second run writes nothing.
    let found = store
        .find_by_email(&EmailLookup::from_request("user3@example.org").expect("valid"))
        .await
        .expect("query");
    assert_eq!(
        found.iter().map(|u| u.uid.as_str()).collect::<Vec<_>>(),
        vec!["u-3"]
    );
    let again = store
        .users
        .backfill_page(&store.client, None, 100)
        .await
        .expect("page");
    assert_eq!((again.written, again.already_right), (0, 8));
    // A mapping where the key would overwrite the address is refused.
    let same = team_store(&[
        ("USERS_EMAIL_MATCH", "key"),
        ("USERS_EMAIL_KEY_ATTRIBUTE", "email"),
    ])
    .await;
    assert!(
        same.users
            .backfill_page(&same.client, None, 10)
            .await
            .is_err()
    );
    assert!(
        store
            .users
            .backfill_page(&store.client, Some("S.!!"), 10)
            .await
            .is_err()
    );
}
