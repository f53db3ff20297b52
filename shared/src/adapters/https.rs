//! The HTTP client under every SDK client of ours: hyper-util's pooled client speaking
//! HTTP/1.1 over rustls (ring), built the first time a call needs it.
//!
//! The SDK's own client (`aws-smithy-http-client`) links HTTP/2 (every AWS API we call
//! speaks HTTP/1.1, so `h2` was dead weight in every zip) and reads and parses the system
//! root store while the function starts. This one is HTTP/1.1 only and takes its roots
//! from one of two places:
//!
//! - [`Roots::Compiled`], the functions: Mozilla's root program compiled in
//!   (`webpki-roots`, which holds the Amazon roots AWS endpoints chain to), so a cold
//!   start opens no certificate file and parses nothing;
//! - [`Roots::System`], the CLI: the machine's trust store (`rustls-native-certs`), so an
//!   operator behind a TLS-inspecting proxy whose CA the system trusts can still reach AWS;
//! - [`Roots::Only`]: the anchors given and no others (tests with a CA of their own).
//!
//! Plain `http://` endpoints (emulators, `AWS_ENDPOINT_URL_*`) work too. Connection errors
//! are classified as the SDK's own client classifies them, so its retry policy sees a
//! refused or reset connection as I/O (retried) and a timed-out connect as a timeout.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Where the client's trust anchors come from.
#[derive(Debug, Clone)]
pub enum Roots {
    /// Compiled in (`webpki-roots`): nothing to read or parse at start-up.
    Compiled,
    /// The system's trust store, read when the first connection is made.
    System,
    /// These anchors and no others.
    Only(Arc<rustls::RootCertStore>),
}

/// A new client with its own connection pool. Pooled connections are driven by tasks on
/// the tokio runtime that opened them: use one client per runtime.
pub fn client(roots: Roots) -> SharedHttpClient {
    SharedHttpClient::new(Https {
        roots,
        connector: OnceLock::new(),
    })
}

#[derive(Debug)]
struct Https {
    roots: Roots,
    /// Built on the first call. Every client of ours has the same connector settings
    /// (`adapters::timeout_config`), so one connector serves them all.
    connector: OnceLock<SharedHttpConnector>,
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector
            .get_or_init(|| SharedHttpConnector::new(Connector::new(&self.roots, settings)))
            .clone()
    }
}

fn root_store(roots: &Roots) -> rustls::RootCertStore {
    match roots {
        Roots::Compiled => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
        Roots::System => {
            let mut store = rustls::RootCertStore::empty();
            // Unreadable or unparsable certificates are skipped, as the SDK's client does;
            // with none left every TLS handshake fails with an unknown-issuer error.
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            store
        }
        Roots::Only(store) => store.as_ref().clone(),
    }
}

type Pool = Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>;

#[derive(Debug)]
enum Connector {
    Ready(Pool),
    /// rustls refused the configuration (it cannot with ring's defaults): every call
    /// fails with this message instead of the process panicking.
    Broken(String),
}

impl Connector {
    fn new(roots: &Roots, settings: &HttpConnectorSettings) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder
                .with_root_certificates(root_store(roots))
                .with_no_client_auth(),
            Err(err) => return Self::Broken(format!("TLS configuration: {err}")),
        };
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(settings.connect_timeout());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let pool = Client::builder(TokioExecutor::new())
            // The timer makes the pool's idle timeout work.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Self::Ready(pool)
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let pool = match self {
            Self::Ready(pool) => pool,
            Self::Broken(why) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::other(
                    why.clone().into(),
                    None,
                )));
            }
        };
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let answer = pool.request(request);
        HttpConnectorFuture::new(async move {
            let response = answer.await.map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// The SDK's kinds for what went wrong on the wire: a timeout, I/O (connection refused,
/// reset or closed: retried), a request hyper would not send (user), anything else.
fn classify(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let io_kind = find::<std::io::Error>(&err).map(std::io::Error::kind);
    if io_kind == Some(std::io::ErrorKind::TimedOut) {
        return ConnectorError::timeout(err.into());
    }
    if err.is_connect() {
        return ConnectorError::io(err.into());
    }
    if let Some(hyper_err) = find::<hyper::Error>(&err) {
        if hyper_err.is_timeout() {
            return ConnectorError::timeout(err.into());
        }
        if hyper_err.is_user() {
            return ConnectorError::user(err.into());
        }
        if hyper_err.is_incomplete_message() {
            return ConnectorError::other(err.into(), Some(ErrorKind::TransientError));
        }
        if hyper_err.is_closed() || hyper_err.is_canceled() {
            return ConnectorError::io(err.into());
        }
    }
    if io_kind.is_some() {
        return ConnectorError::io(err.into());
    }
    ConnectorError::other(err.into(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_roots_hold_the_amazon_roots_aws_endpoints_chain_to() {
        let store = root_store(&Roots::Compiled);
        assert!(store.len() > 100, "only {} roots", store.len());
        // "Amazon Root CA 1" as DER in the subject of one of the anchors.
        let amazon = store
            .roots
            .iter()
            .filter(|anchor| {
                anchor
                    .subject
                    .as_ref()
                    .windows(b"Amazon Root CA".len())
                    .any(|w| w == b"Amazon Root CA")
            })
            .count();
        assert!(amazon >= 4, "Amazon Root CA 1-4 expected, found {amazon}");
    }
}
