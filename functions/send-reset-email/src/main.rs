//! `send-reset-email`: consumes the table's stream. For each new outbox item: look the
//! user up, skip inactive or unusable accounts, sign a token, send through SES v2. A send
//! that must be retried is reported as a batch item failure, so Lambda retries it. With
//! `EVENT_BUS_NAME`, the `PasswordChanged` event items go to EventBridge the same way.
//! Each handled job's outbox item is marked delivered (what `pwreset outbox redrive` skips).
//! IAM: GetItem/Query on users, UpdateItem on outbox items, ses:SendEmail from the one
//! sender, stream reads of the one stream, events:PutEvents on the one bus.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};
use pwreset_core::adapters::eventbridge::EventBridgePublisher;
use pwreset_core::adapters::ses::SesMailer;
use pwreset_core::config::LambdaNeeds;
use pwreset_core::delivery::stream::deliver_batch;
use pwreset_core::lambda::{self, Startup};
use pwreset_core::ports::SystemClock;
use pwreset_core::service::SendResetEmail;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let startup = Startup::load(LambdaNeeds::ALL).await?;
    let store = startup.store();
    let Startup { config, aws, .. } = startup;
    let mailer = SesMailer::new(
        aws.sesv2_client(),
        config.mail_from.clone(),
        SesMailer::configuration_set_from_env(),
    );
    let mut deliverer = SendResetEmail::configured(
        &config,
        store.clone(),
        Arc::new(mailer),
        Arc::new(SystemClock),
    );
    if let Some(bus) = &config.event_bus {
        deliverer = deliverer.with_events(Arc::new(EventBridgePublisher::new(
            aws.eventbridge_client(),
            bus.clone(),
        )));
    }
    let deliverer = Arc::new(deliverer);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let (deliverer, store) = (Arc::clone(&deliverer), Arc::clone(&store));
        async move {
            Ok::<DynamoDbEventResponse, lambda_runtime::Error>(
                deliver_batch(&deliverer, store.as_ref(), &event.payload).await,
            )
        }
    }))
    .await
}
