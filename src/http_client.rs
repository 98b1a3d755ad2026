//! One HTTP/1.1 request on a fresh connection, plain or TLS, with the answer's body read up to a
//! limit: what a scrape, the fleet guard's Prometheus query and an alert to Alertmanager each
//! make.

use http_body_util::BodyExt;
use hyper::{body::Incoming, StatusCode, Uri};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, ServerName},
        RootCertStore,
    },
    TlsConnector,
};

/// Why a request brought no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the server answered HTTP {0}")]
    Status(StatusCode),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot make the request: {0}")]
    Request(#[from] http::Error),
}

/// A request to make: a GET, or a POST when it has a body.
pub struct Request<'a> {
    /// An absolute `http` or `https` URI with a host (checked when the config was read).
    pub uri: &'a Uri,
    pub accept: &'static str,
    /// Sent as `authorization: Bearer ...`.
    pub bearer: Option<&'a str>,
    /// For `https`.
    pub tls: Option<&'a TlsConnector>,
    pub max_body: usize,
    /// A POST's content type and body.
    pub body: Option<(&'static str, bytes::Bytes)>,
}

impl Request<'_> {
    /// The body of a 2xx answer.
    pub async fn send(&self) -> Result<Vec<u8>, HttpError> {
        let host = self.uri.host().unwrap_or_default();
        let tls = self.tls.filter(|_| self.uri.scheme_str() == Some("https"));
        let port = self
            .uri
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        // An IPv6 literal is bracketed in a URL (and the Host header), not in a socket address.
        let address = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        let stream = tokio::net::TcpStream::connect((address, port))
            .await
            .map_err(HttpError::Connect)?;
        match tls {
            None => self.over(stream, host, port).await,
            Some(connector) => {
                let name = ServerName::try_from(address.to_owned())
                    .map_err(|error| HttpError::Tls(std::io::Error::other(error)))?;
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(HttpError::Tls)?;
                self.over(stream, host, port).await
            }
        }
    }

    async fn over<S>(&self, stream: S, host: &str, port: u16) -> Result<Vec<u8>, HttpError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        // The connection is driven beside the request and ends with it.
        let connection = tokio::spawn(connection);
        let method = match self.body {
            None => hyper::Method::GET,
            Some(_) => hyper::Method::POST,
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(self.uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::ACCEPT, self.accept)
            .header(hyper::header::USER_AGENT, "healthscore");
        if let Some(token) = self.bearer {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match &self.body {
            None => bytes::Bytes::new(),
            Some((content_type, body)) => {
                request = request.header(hyper::header::CONTENT_TYPE, *content_type);
                body.clone()
            }
        };
        let body = match request.body(http_body_util::Full::new(body)) {
            Err(error) => Err(error.into()),
            Ok(request) => match sender.send_request(request).await {
                Ok(response) if response.status().is_success() => {
                    read_limited(response.into_body(), self.max_body).await
                }
                Ok(response) => Err(HttpError::Status(response.status())),
                Err(error) => Err(error.into()),
            },
        };
        connection.abort();
        body
    }
}

async fn read_limited(mut body: Incoming, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(HttpError::TooLarge(limit));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// `url` as an absolute `http` or `https` URI with a host and no query, or what is wrong.
pub fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("{url:?} is not a URL: {error}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) if uri.query().is_none() => Ok(uri),
        _ => Err(format!(
            "{url:?} is not an http:// or https:// URL with a host and no query"
        )),
    }
}

/// The bearer token in the file `path` (surrounding whitespace left out), or what is wrong.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|token| token.trim().to_owned())
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// The PEM certificates in `path`, at least one, or what is wrong (naming the file).
pub fn read_certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(certificates)
}

/// What a client sends and whom it trusts: a bearer token and CA certificates, each read once
/// from its file when the client is made.
#[derive(Clone, Default)]
pub struct Credentials {
    pub bearer: Option<String>,
    pub tls: Option<TlsConnector>,
}

/// Which of `Credentials`' files could not be read, and why.
pub enum CredentialsError {
    TokenFile(String),
    Ca(String),
}

impl Credentials {
    /// Reads the token in `token_file` and the CA certificates in `ca`, where given.
    pub fn read(
        token_file: Option<&std::path::Path>,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, CredentialsError> {
        Ok(Self {
            bearer: token_file
                .map(read_token)
                .transpose()
                .map_err(CredentialsError::TokenFile)?,
            tls: ca
                .map(connector)
                .transpose()
                .map_err(CredentialsError::Ca)?,
        })
    }
}

/// A TLS client that trusts the PEM CA certificates in `path`.
fn connector(path: &std::path::Path) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path)? {
        roots
            .add(certificate)
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
