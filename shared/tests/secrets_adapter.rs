//! The Secrets Manager read (`TOKEN_KEYS_SECRET_ID`) against moto's Secrets Manager, through
//! the real AWS SDK: the value comes back whole, and a failure says whether to retry without
//! quoting anything. Needs `scripts/install-tools`.
#![cfg(feature = "aws")]

use pwreset_core::adapters;
use pwreset_core::adapters::secrets::{SecretError, read_secret_string};
use pwreset_core::token::TokenKeys;
use pwreset_testkit::aws::{Sdk, secret_holding, unique_name};
use pwreset_testkit::emulators;
use pwreset_testkit::fault_proxy::{Fault, FaultProxy};
use secrecy::ExposeSecret as _;

fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

const KEYS: &str = "c2VjcmV0cy1hZGFwdGVyLXRlc3Qta2V5LTMyLWJ5dGVzIQ==,b2xkZXIta2V5LXN0aWxsLXZlcmlmaWVzLWxpbmtzLTMyYg==";

#[tokio::test]
async fn the_token_keys_come_back_from_the_secret_by_name_or_arn() {
    let moto = emulators::moto();
    let arn = secret_holding(&sdk(), &moto.url, "pwreset-token-keys", KEYS).await;
    let client = sdk().secretsmanager(&moto.url);
    let by_arn = read_secret_string(&client, &arn).await.expect("read");
    assert_eq!(by_arn.expose_secret(), KEYS);
    let name = arn
        .rsplit(':')
        .next()
        .and_then(|last| last.rsplit_once('-').map(|(name, _suffix)| name))
        .expect("the ARN ends in <name>-<6 random characters>");
    let by_name = read_secret_string(&client, name).await.expect("read");
    assert_eq!(by_name.expose_secret(), KEYS);
    assert_eq!(
        TokenKeys::parse(by_name.expose_secret())
            .expect("a TOKEN_KEYS value")
            .len(),
        2
    );
}

#[tokio::test]
async fn a_missing_secret_is_permanent_and_names_the_code_only() {
    let moto = emulators::moto();
    let client = sdk().secretsmanager(&moto.url);
    let missing = unique_name("no-such-secret");
    let err = read_secret_string(&client, &missing)
        .await
        .expect_err("no such secret");
    let SecretError::Permanent(message) = &err else {
        panic!("not found is permanent: {err:?}");
    };
    assert!(message.contains("ResourceNotFound"), "{message}");
    // moto's message quotes the id; ours carries the code and status only.
    assert!(!message.contains(&missing), "{message}");
}

#[tokio::test]
async fn an_outage_is_transient() {
    let moto = emulators::moto();
    let arn = secret_holding(&sdk(), &moto.url, "pwreset-token-keys", KEYS).await;
    let proxy = FaultProxy::start(&moto.url).await;
    let client = sdk().secretsmanager(&proxy.url);
    for fault in [Fault::SERVICE_UNAVAILABLE, Fault::Drop] {
        proxy.set(fault);
        let err = read_secret_string(&client, &arn)
            .await
            .expect_err("the proxy refuses");
        assert!(
            matches!(err, SecretError::Transient(_)),
            "{fault:?}: {err:?}"
        );
    }
    proxy.set(Fault::Pass);
    assert_eq!(
        read_secret_string(&client, &arn)
            .await
            .expect("read")
            .expose_secret(),
        KEYS
    );
}
