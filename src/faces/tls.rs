//! TLS for the gRPC and HTTP listeners (rustls, ring): certificate and key files, an optional
//! client CA for mTLS, re-read when the files change or on SIGHUP ([`super::reload`]) so that a
//! rotation (cert-manager renewing a Secret) needs no restart. A bad file at start is an error naming its
//! config key; a bad file at a reload keeps the certificates in use and logs why.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};
use serde::{Deserialize, Serialize};

use super::reload::Reloadable;
use crate::{http_client::read_certificates, setting::ConfigError};

/// `[tls]`: off while `cert` is unset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM CA certificates: when set, clients must present a certificate signed by one (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Which protocols a listener offers in ALPN.
#[derive(Clone, Copy, Debug)]
pub enum Alpn {
    /// gRPC: HTTP/2 only.
    Grpc,
    /// The HTTP face: HTTP/1.1.
    Http,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Grpc => vec![b"h2".to_vec()],
            Alpn::Http => vec![b"http/1.1".to_vec()],
        }
    }
}

/// The certificates in use, swapped whole by a reload. Cheap to clone.
#[derive(Clone)]
pub struct Certificates {
    files: Files,
    current: Arc<RwLock<Loaded>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// One server config per listener kind, built from the same files.
struct Loaded {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
    stamps: Vec<Option<SystemTime>>,
}

#[derive(Clone, Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl Files {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    fn stamps(&self) -> Vec<Option<SystemTime>> {
        super::reload::stamps(self.paths())
    }
}

impl Certificates {
    /// Reads the files of `config`; `None` when TLS is off.
    pub fn load(config: &TlsConfig) -> Result<Option<Self>, ConfigError> {
        let files = match (&config.cert, &config.key) {
            (None, None) if config.client_ca.is_none() => return Ok(None),
            (Some(cert), Some(key)) => Files {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: config.client_ca.clone(),
            },
            (None, _) => {
                return Err(invalid(
                    "tls.cert",
                    "is required when tls.key or tls.client_ca is set",
                ))
            }
            (Some(_), None) => return Err(invalid("tls.key", "is required when tls.cert is set")),
        };
        let loaded = load(&files).map_err(|(key, problem)| invalid(key, &problem))?;
        Ok(Some(Self {
            files,
            current: Arc::new(RwLock::new(loaded)),
        }))
    }

    /// The server config for a new connection on a listener of kind `alpn`.
    pub fn server_config(&self, alpn: Alpn) -> Arc<ServerConfig> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        match alpn {
            Alpn::Grpc => current.grpc.clone(),
            Alpn::Http => current.http.clone(),
        }
    }

    /// Whether the files' certificates are now in use.
    fn reload_files(&self, stamps: Vec<Option<SystemTime>>) -> bool {
        match load(&self.files) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificates reloaded");
                true
            }
            Err((key, problem)) => {
                // Remember the stamps so that a broken file is reported once, not every check.
                self.current
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .stamps = stamps;
                tracing::warn!(
                    key,
                    problem,
                    "TLS reload failed: serving the previous certificates"
                );
                false
            }
        }
    }
}

fn invalid(key: &str, problem: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Reads and checks every file; the error names the config key of the file at fault.
/// A certificate this close to its end is warned about at every (re)load.
const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// Warns when the server certificate is not valid now, or soon will not be: it is still served
/// (a renewal may be on its way), but clients will refuse it.
fn warn_if_out_of_date(path: &Path, leaf: &CertificateDer<'_>, now: SystemTime) {
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(leaf) else {
        return;
    };
    let validity = certificate.validity();
    let at = |time: &x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(
                u64::try_from(time.timestamp()).unwrap_or(0),
            ))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    let (not_before, not_after) = (at(&validity.not_before), at(&validity.not_after));
    let path = path.display();
    if now > not_after {
        tracing::warn!(cert = %path, not_after = %validity.not_after, "the TLS certificate (tls.cert) has expired: clients will refuse it; renew it");
    } else if now < not_before {
        tracing::warn!(cert = %path, not_before = %validity.not_before, "the TLS certificate (tls.cert) is not valid yet: clients will refuse it");
    } else if not_after
        .duration_since(now)
        .is_ok_and(|left| left < EXPIRY_WARNING)
    {
        tracing::warn!(cert = %path, not_after = %validity.not_after, "the TLS certificate (tls.cert) expires within 7 days; renew it");
    }
}

fn load(files: &Files) -> Result<Loaded, (&'static str, String)> {
    let stamps = files.stamps();
    let chain = read_certificates(&files.cert).map_err(|problem| ("tls.cert", problem))?;
    if let Some(leaf) = chain.first() {
        warn_if_out_of_date(&files.cert, leaf, SystemTime::now());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|error| ("tls.key", format!("{}: {error}", files.key.display())))?;
    let builder =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| ("tls", error.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(path).map_err(|p| ("tls.client_ca", p))? {
                roots
                    .add(certificate)
                    .map_err(|error| ("tls.client_ca", format!("{}: {error}", path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .map_err(|error| ("tls.client_ca", format!("{}: {error}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|error| ("tls.key", format!("does not match tls.cert: {error}")))?;
    let with_alpn = |alpn: Alpn| {
        let mut config = config.clone();
        config.alpn_protocols = alpn.protocols();
        Arc::new(config)
    };
    Ok(Loaded {
        grpc: with_alpn(Alpn::Grpc),
        http: with_alpn(Alpn::Http),
        stamps,
    })
}

impl Reloadable for Certificates {
    fn secret(&self) -> &'static str {
        "tls"
    }

    fn reload(&self, forced: bool) -> Option<bool> {
        let stamps = self.files.stamps();
        let changed = {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            current.stamps != stamps
        };
        (forced || changed).then(|| self.reload_files(stamps))
    }
}
