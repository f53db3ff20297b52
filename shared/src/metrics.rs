//! The counters on-call asks for, counted where the use cases decide, whatever the entry
//! point. Counting is a `tracing` event on its own target ([`METRIC_TARGET`]): in Lambda
//! the functions' subscriber turns each into one CloudWatch Embedded Metric Format line
//! ([`emf_line`]), dimensioned by function; `pwreset serve` leaves them out of its console.
//! A metric carries no personal data: a name and a count, nothing else.

use std::fmt;

/// The `tracing` target every metric event has, and nothing else has.
pub const METRIC_TARGET: &str = "pwreset_metric";

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "pwreset";

/// Every counter pwreset emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// `POST /password-reset` answered 202 and queued a job that will look the address up.
    ResetRequestAccepted,
    /// `POST /password-reset` answered 202 but the per-address limit was reached: no mail.
    ResetRequestSuppressed,
    /// `POST /password-reset` answered 429 (per-client limit).
    ResetRequestLimited,
    /// A mail (reset link or notice) was handed to SES.
    MailSent,
    /// A mail could not be sent this time and will be tried again.
    MailRetried,
    /// A mail was refused for good (the job is dropped and logged).
    MailFailed,
    /// A `PasswordChanged` event reached the event bus.
    EventPublished,
    /// A `PasswordChanged` event could not be put this time and will be tried again.
    EventRetried,
    /// A `PasswordChanged` event was refused for good.
    EventFailed,
    /// A confirm replaced the password.
    ResetCompleted,
    /// A `POST /password-change` replaced the password.
    PasswordChanged,
    /// A new password was refused by the policy (confirm or change).
    WeakPasswordRefused,
    /// A reset link that was forged, tampered with, used or superseded.
    InvalidToken,
    /// A reset link past its lifetime.
    ExpiredToken,
    /// `POST /password-change` answered 401.
    InvalidCredentials,
    /// `POST /password-change` answered 429.
    ChangeLimited,
}

impl Metric {
    pub const ALL: [Self; 16] = [
        Self::ResetRequestAccepted,
        Self::ResetRequestSuppressed,
        Self::ResetRequestLimited,
        Self::MailSent,
        Self::MailRetried,
        Self::MailFailed,
        Self::EventPublished,
        Self::EventRetried,
        Self::EventFailed,
        Self::ResetCompleted,
        Self::PasswordChanged,
        Self::WeakPasswordRefused,
        Self::InvalidToken,
        Self::ExpiredToken,
        Self::InvalidCredentials,
        Self::ChangeLimited,
    ];

    /// The metric's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Self::ResetRequestAccepted => "ResetRequestAccepted",
            Self::ResetRequestSuppressed => "ResetRequestSuppressed",
            Self::ResetRequestLimited => "ResetRequestLimited",
            Self::MailSent => "MailSent",
            Self::MailRetried => "MailRetried",
            Self::MailFailed => "MailFailed",
            Self::EventPublished => "EventPublished",
            Self::EventRetried => "EventRetried",
            Self::EventFailed => "EventFailed",
            Self::ResetCompleted => "ResetCompleted",
            Self::PasswordChanged => "PasswordChanged",
            Self::WeakPasswordRefused => "WeakPasswordRefused",
            Self::InvalidToken => "InvalidToken",
            Self::ExpiredToken => "ExpiredToken",
            Self::InvalidCredentials => "InvalidCredentials",
            Self::ChangeLimited => "ChangeLimited",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counts one occurrence of `metric`.
pub fn count(metric: Metric) {
    tracing::info!(target: METRIC_TARGET, metric = metric.name());
}

/// One EMF line: `metric` = 1, in [`NAMESPACE`], with the dimension `function_name`
/// (and `service` as a plain property), at `timestamp_ms`. `request_id` ties it to the
/// invocation's log lines; it is a property, not a dimension.
pub fn emf_line(
    metric: Metric,
    function_name: &str,
    service: &str,
    request_id: Option<&str>,
    timestamp_ms: i64,
) -> String {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["function_name"]],
                "Metrics": [{"Name": metric.name(), "Unit": "Count"}],
            }],
        },
        "function_name": function_name,
        "service": service,
        metric.name(): 1,
    });
    if let (Some(id), Some(object)) = (request_id, line.as_object_mut()) {
        object.insert("request_id".into(), id.into());
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_a_distinct_name_that_reads_back() {
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        for metric in Metric::ALL {
            assert_eq!(Metric::from_name(metric.name()), Some(metric));
        }
        assert_eq!(Metric::from_name("Nope"), None);
    }

    #[test]
    fn an_emf_line_declares_the_metric_it_carries() {
        let line = emf_line(
            Metric::MailSent,
            "pwreset-SendResetEmail",
            "pwreset",
            Some("req-1"),
            1_765_000_000_000,
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["_aws"]["Timestamp"], 1_765_000_000_000_i64);
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "pwreset");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["function_name"]])
        );
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([{"Name": "MailSent", "Unit": "Count"}])
        );
        // Every dimension and metric the directive names is a member of the line.
        assert_eq!(value["function_name"], "pwreset-SendResetEmail");
        assert_eq!(value["MailSent"], 1);
        assert_eq!(value["request_id"], "req-1");
        assert!(!line.contains('\n'));
    }
}
