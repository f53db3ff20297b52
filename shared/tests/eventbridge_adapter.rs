//! The EventBridge adapter against moto's EventBridge, through the real AWS SDK: the event
//! reaches a rule's SQS target (moto's SQS) once, with the detail consumers read, and a
//! failed put says whether to retry. Needs `scripts/install-tools`.
#![cfg(feature = "aws")]

use pwreset_core::adapters;
use pwreset_core::adapters::eventbridge::EventBridgePublisher;
use pwreset_core::domain::UserId;
use pwreset_core::ports::{EventPublisher as _, PasswordChangedEvent, PublishError};
use pwreset_testkit::aws::{Sdk, event_bus_with_queue, messages_waiting};
use pwreset_testkit::emulators;
use pwreset_testkit::fault_proxy::{Fault, FaultProxy};
use serde_json::{Value, json};

/// SDK clients configured as the adapters configure theirs (HTTPS client, timeouts, retries).
fn sdk() -> Sdk {
    Sdk::new(
        adapters::new_http_client(),
        adapters::timeout_config(),
        adapters::retry_config(),
    )
}

fn event(version: u64) -> PasswordChangedEvent {
    PasswordChangedEvent {
        uid: UserId::parse("user-42").expect("uid"),
        changed_at: 1_800_000_000,
        credential_version: version,
    }
}

#[tokio::test]
async fn a_published_event_reaches_the_rule_target_once_with_its_detail() {
    let moto = emulators::moto();
    let (bus, queue_url) = event_bus_with_queue(&sdk(), &moto.url).await;
    let publisher = EventBridgePublisher::new(sdk().eventbridge(&moto.url), &bus);
    publisher.publish(&event(3)).await.expect("published");
    // moto delivers to a rule's targets inside PutEvents: the queue holds its final count.
    assert_eq!(messages_waiting(&sdk().sqs(&moto.url), &queue_url).await, 1);
    let received = sdk()
        .sqs(&moto.url)
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    let envelope: Value =
        serde_json::from_str(messages[0].body().expect("body")).expect("the event as JSON");
    assert_eq!(envelope["source"], "pwreset");
    assert_eq!(envelope["detail-type"], "PasswordChanged");
    assert_eq!(
        envelope["detail"],
        json!({"uid": "user-42", "changed_at": "2027-01-15T08:00:00Z", "credential_version": 3})
    );
}

#[tokio::test]
async fn a_failed_put_is_retried_and_a_refused_one_is_not() {
    let moto = emulators::moto();
    let (bus, queue_url) = event_bus_with_queue(&sdk(), &moto.url).await;
    let proxy = FaultProxy::start(&moto.url).await;
    let publisher = EventBridgePublisher::new(sdk().eventbridge(&proxy.url), &bus);
    for fault in [Fault::SERVICE_UNAVAILABLE, Fault::THROTTLING, Fault::Drop] {
        proxy.set(fault);
        let result = publisher.publish(&event(1)).await;
        assert!(
            matches!(result, Err(PublishError::Transient(_))),
            "{fault:?}: {result:?}"
        );
    }
    assert_eq!(messages_waiting(&sdk().sqs(&moto.url), &queue_url).await, 0);
    // The retry, once the service answers again, delivers the event.
    proxy.clear();
    publisher.publish(&event(1)).await.expect("published");
    assert_eq!(messages_waiting(&sdk().sqs(&moto.url), &queue_url).await, 1);

    proxy.set(Fault::Error {
        status: 400,
        code: "AccessDeniedException",
    });
    let result = publisher.publish(&event(2)).await;
    assert!(
        matches!(result, Err(PublishError::Permanent(_))),
        "{result:?}"
    );
}
