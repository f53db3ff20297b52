//! Adapters behind the ports. `memory` serves `pwreset serve` and the core's tests;
//! `dynamodb`, `ses` and `eventbridge` (feature `aws`) serve the Lambda functions and
//! `--backend aws`, over the SDK clients `aws` sets up.

pub mod memory;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
#[cfg(feature = "aws")]
pub mod https;
#[cfg(feature = "aws")]
pub mod secrets;
#[cfg(feature = "aws")]
pub mod ses;

#[cfg(feature = "aws")]
pub use aws::{
    LambdaEnvironment, aws_sdk_config, http_client, new_http_client, retry_config, timeout_config,
};
