//! What a function writes to CloudWatch: one JSON object per line, in the shape Powertools
//! for AWS Lambda users search by, and one Embedded Metric Format line per counted metric.
//!
//! A log line has top-level `level`, `message`, `timestamp` (RFC 3339, UTC, milliseconds),
//! `service`, `function_name`, and inside an invocation `cold_start`, `request_id` and
//! `xray_trace_id`; the event's own fields follow at the top level (not nested under
//! `fields`). The invocation's ids come from the span the Lambda runtime opens around each
//! invocation. Lambda's log-level filtering reads `level`, so `AWS_LAMBDA_LOG_LEVEL` and
//! Lambda's own filter agree.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::metrics::{self, METRIC_TARGET, Metric};

/// The span `lambda_runtime` opens around each invocation (fields `requestId`,
/// `xrayTraceId`).
pub const INVOKE_SPAN: &str = "Lambda runtime invoke";

/// Keys a log line sets itself; an event field of the same name is written as `field_<name>`.
const RESERVED: [&str; 8] = [
    "level",
    "message",
    "timestamp",
    "service",
    "function_name",
    "cold_start",
    "request_id",
    "xray_trace_id",
];

/// What a log line says about the invocation it belongs to, kept on the invocation's span.
#[derive(Debug, Clone, Default)]
struct Invocation {
    request_id: Option<String>,
    xray_trace_id: Option<String>,
    cold_start: bool,
}

impl Visit for Invocation {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "requestId" => self.request_id = Some(value.to_owned()),
            "xrayTraceId" => self.xray_trace_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, format!("{value:?}").trim_matches('"'));
    }
}

/// An event's fields, in the order they were written.
#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.push((field.name(), Value::from(value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name(), Value::from(format!("{value:?}"))));
    }
}

/// The layer: log lines for ordinary events, EMF lines for [`METRIC_TARGET`] events.
/// Filter it with [`super::lambda_filter`] so that it sees the invocation span whatever the
/// log level.
pub struct LambdaOutput<W> {
    service: String,
    function_name: String,
    /// Still true until the first invocation starts.
    cold: AtomicBool,
    writer: W,
}

impl<W> std::fmt::Debug for LambdaOutput<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaOutput")
            .field("service", &self.service)
            .field("function_name", &self.function_name)
            .finish_non_exhaustive()
    }
}

impl<W> LambdaOutput<W> {
    pub fn new(service: impl Into<String>, function_name: impl Into<String>, writer: W) -> Self {
        Self {
            service: service.into(),
            function_name: function_name.into(),
            cold: AtomicBool::new(true),
            writer,
        }
    }
}

/// `2026-12-06T10:15:30.123Z`.
fn timestamp(now: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

impl<W> LambdaOutput<W> {
    fn log_line(&self, event: &Event<'_>, invocation: Option<&Invocation>) -> String {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut message = None;
        let mut rest = Vec::with_capacity(fields.0.len());
        for (name, value) in fields.0 {
            if name == "message" {
                message = Some(value);
            } else {
                rest.push((name, value));
            }
        }
        // Events that have no message name what happened in `event`: say that.
        let message = message
            .or_else(|| {
                rest.iter()
                    .find(|(name, _)| *name == "event")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| Value::from(""));
        // The reserved keys first, in `RESERVED` order, then the event's fields as written.
        let mut line: Vec<(String, Value)> = vec![
            ("level".into(), event.metadata().level().as_str().into()),
            ("message".into(), message),
            (
                "timestamp".into(),
                timestamp(time::OffsetDateTime::now_utc()).into(),
            ),
            ("service".into(), self.service.clone().into()),
            ("function_name".into(), self.function_name.clone().into()),
        ];
        if let Some(invocation) = invocation {
            line.push(("cold_start".into(), invocation.cold_start.into()));
            if let Some(id) = &invocation.request_id {
                line.push(("request_id".into(), id.clone().into()));
            }
            if let Some(id) = &invocation.xray_trace_id {
                line.push(("xray_trace_id".into(), id.clone().into()));
            }
        }
        for (name, value) in rest {
            let key = if RESERVED.contains(&name) {
                format!("field_{name}")
            } else {
                name.to_owned()
            };
            line.push((key, value));
        }
        // Written by hand: serde_json's map would sort the keys.
        let mut out = String::from("{");
        for (i, (key, value)) in line.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Value::from(key.as_str()).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        }
        out.push('}');
        out
    }
}

impl<S, W> Layer<S> for LambdaOutput<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != INVOKE_SPAN {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut invocation = Invocation {
            cold_start: self.cold.swap(false, Ordering::Relaxed),
            ..Invocation::default()
        };
        attrs.record(&mut invocation);
        span.extensions_mut().insert(invocation);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let invocation = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<Invocation>().cloned())
        });
        let line = if event.metadata().target() == METRIC_TARGET {
            let mut fields = Fields::default();
            event.record(&mut fields);
            let Some(metric) = fields
                .0
                .iter()
                .find(|(name, _)| *name == "metric")
                .and_then(|(_, value)| value.as_str())
                .and_then(Metric::from_name)
            else {
                return;
            };
            let now = time::OffsetDateTime::now_utc();
            let millis = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            metrics::emf_line(
                metric,
                &self.function_name,
                &self.service,
                invocation.as_ref().and_then(|i| i.request_id.as_deref()),
                millis,
            )
        } else {
            self.log_line(event, invocation.as_ref())
        };
        let mut writer = self.writer.make_writer();
        // One write per line, so concurrent lines never interleave. A log that cannot be
        // written has nowhere to be reported.
        let _ = writer.write_all(format!("{line}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Lines written, for the assertions.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().expect("lock").clone())
                .expect("utf-8")
                .lines()
                .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
                .collect()
        }
    }

    fn with_output(filter_level: &str, body: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let layer = LambdaOutput::new("pwreset", "pwreset-ConfirmReset", captured.clone())
            .with_filter(super::super::lambda_filter(Some(filter_level), None));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, body);
        captured.lines()
    }

    fn invocation(request_id: &str, body: impl FnOnce()) {
        let span = tracing::info_span!(
            target: "lambda_runtime::layers::trace",
            "Lambda runtime invoke",
            requestId = request_id,
            xrayTraceId = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        );
        span.in_scope(body);
    }

    #[test]
    fn a_log_line_has_the_fields_powertools_users_search_by_at_the_top_level() {
        let lines = with_output("INFO", || {
            tracing::info!(event = "before_any_invocation");
            invocation("req-1", || {
                tracing::info!(
                    event = "request",
                    route = "/password-reset",
                    status = 202_u16
                );
            });
            invocation("req-2", || tracing::warn!(reason = "slow", "took long"));
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        let init = &lines[0];
        assert_eq!(init["level"], "INFO");
        assert_eq!(init["message"], "before_any_invocation");
        assert!(init.get("request_id").is_none() && init.get("cold_start").is_none());

        let first = &lines[1];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "request");
        assert_eq!(first["service"], "pwreset");
        assert_eq!(first["function_name"], "pwreset-ConfirmReset");
        assert_eq!(first["cold_start"], true);
        assert_eq!(first["request_id"], "req-1");
        assert_eq!(
            first["xray_trace_id"],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        );
        // Event fields flattened, typed, never nested under "fields".
        assert_eq!(first["route"], "/password-reset");
        assert_eq!(first["status"], 202);
        assert!(first.get("fields").is_none());
        let stamp = first["timestamp"].as_str().expect("timestamp");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{stamp}"
        );
        assert!(stamp.ends_with('Z') && stamp.len() == "2026-12-06T10:15:30.123Z".len());

        let second = &lines[2];
        assert_eq!(second["level"], "WARN");
        assert_eq!(second["message"], "took long");
        assert_eq!(second["cold_start"], false);
        assert_eq!(second["request_id"], "req-2");
        assert_eq!(second["reason"], "slow");
    }

    #[test]
    fn the_reserved_keys_lead_in_their_order_then_the_events_fields_as_written() {
        let captured = Captured::default();
        let layer = LambdaOutput::new("pwreset", "fn", captured.clone())
            .with_filter(super::super::lambda_filter(Some("INFO"), None));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            invocation("req-1", || tracing::info!(zebra = 1, apple = 2, "x"));
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        let keys: Vec<&str> = text
            .split(&[',', '{'][..])
            .filter_map(|part| {
                part.split_once("\":")
                    .map(|(k, _)| k.trim_start_matches('"'))
            })
            .collect();
        assert_eq!(
            keys,
            [
                "level",
                "message",
                "timestamp",
                "service",
                "function_name",
                "cold_start",
                "request_id",
                "xray_trace_id",
                "zebra",
                "apple"
            ],
            "{text}"
        );
    }

    #[test]
    fn an_event_field_named_like_a_reserved_key_does_not_replace_it() {
        let lines = with_output("INFO", || {
            invocation("req-1", || {
                tracing::info!(service = "other", level = 3, "x")
            });
        });
        assert_eq!(lines[0]["service"], "pwreset");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["field_service"], "other");
        assert_eq!(lines[0]["field_level"], 3);
    }

    #[test]
    fn metrics_become_emf_lines_even_when_the_log_level_hides_info() {
        let lines = with_output("WARN", || {
            invocation("req-9", || {
                tracing::info!(event = "hidden");
                metrics::count(Metric::ResetCompleted);
                tracing::warn!(event = "shown");
            });
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let emf = &lines[0];
        assert_eq!(emf["ResetCompleted"], 1);
        assert_eq!(emf["function_name"], "pwreset-ConfirmReset");
        assert_eq!(emf["request_id"], "req-9");
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "ResetCompleted"
        );
        assert_eq!(lines[1]["message"], "shown");
    }
}
