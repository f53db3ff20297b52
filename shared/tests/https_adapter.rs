//! The SDK clients' HTTP client over TLS (`adapters::https`), against a TLS server of the
//! test's own whose certificate (for 127.0.0.1) comes from a CA the test makes: a DynamoDB
//! call goes through when the client trusts that CA, and with the compiled-in roots, or
//! under a name the certificate is not for, it is refused before a request is sent.

#![cfg(feature = "aws")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use pwreset_core::adapters;
use pwreset_core::adapters::https::{self, Roots};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Server {
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    requests: Arc<AtomicUsize>,
}

/// A CA, a certificate for 127.0.0.1 from it, and an HTTPS server on a free loopback port
/// answering every request as DynamoDB's ListTables would, counting requests.
async fn tls_server() -> Server {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pwreset test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("server certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                // A refused handshake ends here: the client never sends a request.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_request| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        hyper::Response::builder()
                            .header("content-type", "application/x-amz-json-1.0")
                            .body(Full::new(Bytes::from_static(
                                br#"{"TableNames":["reached-over-tls"]}"#,
                            )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Server {
        addr,
        ca: ca.der().clone(),
        requests,
    }
}

fn dynamodb(roots: Roots, endpoint: String) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(https::client(roots))
        .timeout_config(adapters::timeout_config())
        .retry_config(adapters::retry_config())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

fn only(ca: &CertificateDer<'static>) -> Roots {
    let mut store = rustls::RootCertStore::empty();
    store.add(ca.clone()).expect("the CA as an anchor");
    Roots::Only(Arc::new(store))
}

#[tokio::test]
async fn a_call_goes_through_tls_to_a_server_whose_ca_the_client_trusts() {
    let server = tls_server().await;
    let client = dynamodb(
        only(&server.ca),
        format!("https://127.0.0.1:{}", server.addr.port()),
    );
    let tables = client
        .list_tables()
        .send()
        .await
        .expect("ListTables over TLS");
    assert_eq!(tables.table_names(), ["reached-over-tls"]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_certificate_from_a_ca_outside_the_compiled_roots_is_refused_before_sending() {
    let server = tls_server().await;
    let client = dynamodb(
        Roots::Compiled,
        format!("https://127.0.0.1:{}", server.addr.port()),
    );
    let err = client
        .list_tables()
        .send()
        .await
        .expect_err("an unknown issuer must be refused");
    let text = format!("{}", DisplayErrorContext(&err));
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_before_sending() {
    let server = tls_server().await;
    // The certificate names 127.0.0.1 only; "localhost" reaches the same server.
    let client = dynamodb(
        only(&server.ca),
        format!("https://localhost:{}", server.addr.port()),
    );
    let err = client
        .list_tables()
        .send()
        .await
        .expect_err("a certificate for another name must be refused");
    let text = format!("{}", DisplayErrorContext(&err));
    assert!(text.contains("NotValidForName"), "{text}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}
