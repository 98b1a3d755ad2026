//! Connecting the client commands to a server: address, TLS (grpc-health-probe's flag names),
//! and the bearer token.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

/// The environment variable a token may come from; tokens never come from the command line,
/// where `ps` would show them.
pub const TOKEN_ENV: &str = "HEALTHSCORE_TOKEN";

/// The server address, TLS and token flags shared by the client commands.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Server address, host:port, http://host:port or https://host:port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Connect with TLS (implied by https:// and by the other --tls-* flags).
    #[arg(long)]
    tls: bool,
    /// PEM CA certificates to verify the server with [default: the system's roots are not used;
    /// give the CA].
    #[arg(long = "tls-ca-cert", alias = "tls-ca", value_name = "FILE")]
    tls_ca_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (mTLS).
    #[arg(
        long = "tls-client-cert",
        alias = "tls-cert",
        value_name = "FILE",
        requires = "tls_client_key"
    )]
    tls_client_cert: Option<PathBuf>,
    /// PEM key of --tls-client-cert.
    #[arg(
        long = "tls-client-key",
        alias = "tls-key",
        value_name = "FILE",
        requires = "tls_client_cert"
    )]
    tls_client_key: Option<PathBuf>,
    /// The name to verify the server certificate against [default: the host of --addr].
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// File holding a bearer token [default: $HEALTHSCORE_TOKEN].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// A channel that sends the bearer token, when there is one, with every call.
pub type Connection = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Target {
    fn uses_tls(&self) -> bool {
        self.tls
            || self.addr.starts_with("https://")
            || self.tls_ca_cert.is_some()
            || self.tls_client_cert.is_some()
            || self.tls_server_name.is_some()
    }

    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let tls = self.uses_tls();
        let uri = match (self.addr.split_once("://"), tls) {
            (Some(("http", rest)), true) => format!("https://{rest}"),
            (Some(_), _) => self.addr.clone(),
            (None, true) => format!("https://{}", self.addr),
            (None, false) => format!("http://{}", self.addr),
        };
        let endpoint = Endpoint::from_shared(uri).map_err(|error| {
            anyhow::anyhow!("--addr {:?} is not a valid address: {error}", self.addr)
        })?;
        if !tls {
            return Ok(endpoint);
        }
        endpoint
            .tls_config(self.tls_config()?)
            .context("cannot set up TLS")
    }

    fn tls_config(&self) -> anyhow::Result<ClientTlsConfig> {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
        };
        let mut config = ClientTlsConfig::new();
        if let Some(path) = &self.tls_ca_cert {
            config = config.ca_certificate(Certificate::from_pem(read("--tls-ca-cert", path)?));
        }
        if let (Some(cert), Some(key)) = (&self.tls_client_cert, &self.tls_client_key) {
            config = config.identity(Identity::from_pem(
                read("--tls-client-cert", cert)?,
                read("--tls-client-key", key)?,
            ));
        }
        if let Some(name) = &self.tls_server_name {
            config = config.domain_name(name);
        }
        Ok(config)
    }

    /// The token from --token-file, else $HEALTHSCORE_TOKEN, else none.
    pub fn bearer(&self) -> anyhow::Result<Bearer> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--token-file {}: cannot read", path.display()))?,
            ),
            None => std::env::var(TOKEN_ENV).ok(),
        };
        let Some(token) = token else {
            return Ok(Bearer(None));
        };
        let value = format!("Bearer {}", token.trim()).parse().map_err(|_| {
            anyhow::anyhow!(
                "the token (--token-file or {TOKEN_ENV}) holds characters a header cannot"
            )
        })?;
        Ok(Bearer(Some(value)))
    }

    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let bearer = self.bearer()?;
        let channel = self
            .endpoint()?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot connect to {}: {}", self.addr, error_chain(&error))
            })?;
        Ok(InterceptedService::new(channel, bearer))
    }
}

/// An error and its causes on one line: tonic's transport error alone says only "transport
/// error", the cause says which (a certificate the server refused, a name that does not match).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub use crate::setting::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_grpc_health_probe_flags() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
