//! Bearer tokens with scopes, checked by one tower layer on every face's server before any
//! handler runs. `push` writes (ReportMetrics, ForgetSource, OTLP), `read` reads (reports,
//! watches, `/v1`, `/metrics`, MCP); probes stay open because a kubelet cannot send headers.
//! A push token may be bound to source name patterns (`orders-*`): the layer puts its [`Grant`]
//! in the request's extensions and the push handlers, which know the source, check it.
//!
//! Tokens come from files or environment variables, never the command line; the service keeps
//! only their SHA-256 digests, compares digests in constant time, and logs neither.

use std::{
    borrow::Cow,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::SystemTime,
};

use http::{header, HeaderMap};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::reload::Reloadable;
use crate::{core::probes::matches_source, setting::ConfigError};

/// `[auth]`: off (everything open, for a sidecar on localhost) while no token is configured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
}

/// `[[auth.tokens]]`: one token, read from `file` or the environment variable `env`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
    pub scopes: Vec<Scope>,
    /// Source name patterns a push token may write and forget (`*` matches any run of
    /// characters); empty means every source.
    pub sources: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Push,
    Read,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Push => "push",
            Scope::Read => "read",
        }
    }
}

/// Tokens shorter than this are refused at start: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// The cookie the dashboard stores a read token in: `EventSource` cannot send headers.
pub const TOKEN_COOKIE: &str = "healthscore_token";

/// The configured tokens. Token files are read again when they change or on SIGHUP
/// ([`super::reload`]): a rotated Secret takes effect without a restart.
pub struct Tokens {
    config: AuthConfig,
    entries: RwLock<Arc<[Entry]>>,
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

struct Entry {
    digest: [u8; 32],
    scopes: Vec<Scope>,
    grant: Grant,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.config.tokens.len())
    }
}

/// What an authenticated push may write: the request extension the push handlers read.
#[derive(Clone, Debug)]
pub struct Grant {
    /// `None`: every source.
    sources: Option<Arc<[String]>>,
}

impl Grant {
    /// Whether this grant lets its holder write or forget `source`.
    pub fn allows(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| matches_source(p, source)))
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token, or not one of ours: gRPC UNAUTHENTICATED, HTTP 401.
    Unauthenticated(&'static str),
    /// A valid token without the scope: gRPC PERMISSION_DENIED, HTTP 403.
    Forbidden(Scope),
    /// Every slot of `server.max_concurrent_requests` is taken: gRPC RESOURCE_EXHAUSTED,
    /// HTTP 429.
    Busy,
    /// The connection holds a slot kept for probes (every other one was taken): gRPC
    /// UNAVAILABLE, HTTP 503.
    ProbesOnly,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Unauthenticated(why) => f.write_str(why),
            Denied::Forbidden(scope) => {
                write!(f, "this token lacks the {:?} scope", scope.as_str())
            }
            Denied::Busy => f.write_str(
                "too many requests at once (server.max_concurrent_requests); retry later",
            ),
            Denied::ProbesOnly => f.write_str(
                "every connection slot is taken (server.max_connections): this connection \
                 serves probes only; retry later",
            ),
        }
    }
}

impl Tokens {
    /// Reads the tokens of `config`, taking variables from the environment; `None` when none is
    /// configured. Errors name the config key, never the token.
    pub fn load(config: &AuthConfig) -> Result<Option<Arc<Self>>, ConfigError> {
        Self::load_with(config, |var| std::env::var(var).ok())
    }

    /// [`Tokens::load`], with variables from `env`.
    pub fn load_with(
        config: &AuthConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Arc<Self>>, ConfigError> {
        if config.tokens.is_empty() {
            return Ok(None);
        }
        let stamps = Self::files_stamps(config);
        let entries = read(config, &env)?;
        Ok(Some(Arc::new(Self {
            config: config.clone(),
            entries: RwLock::new(entries),
            stamps: Mutex::new(stamps),
        })))
    }

    fn files_stamps(config: &AuthConfig) -> Vec<Option<SystemTime>> {
        super::reload::stamps(config.tokens.iter().filter_map(|t| t.file.as_deref()))
    }

    /// Checks `presented` for `scope`. Every entry is compared, so the time taken does not
    /// tell which one matched.
    pub fn check(&self, presented: Option<&[u8]>, scope: Scope) -> Result<Grant, Denied> {
        let presented = presented.ok_or(Denied::Unauthenticated(
            "a bearer token is required (Authorization: Bearer TOKEN)",
        ))?;
        let presented = digest(presented);
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut found = None;
        for entry in entries.iter() {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(Denied::Unauthenticated("the bearer token is not valid"))?;
        if entry.scopes.contains(&scope) {
            Ok(entry.grant.clone())
        } else {
            Err(Denied::Forbidden(scope))
        }
    }
}

/// Reads every token of `config` (variables from `env`); errors name the config key.
fn read(
    config: &AuthConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<[Entry]>, ConfigError> {
    let mut entries = Vec::with_capacity(config.tokens.len());
    for (index, token) in config.tokens.iter().enumerate() {
        let key = |field: &str| format!("auth.tokens[{index}].{field}");
        let invalid = |field: &str, problem: String| ConfigError::Invalid {
            key: key(field),
            problem,
        };
        let secret = match (&token.file, &token.env) {
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|error| invalid("file", format!("{}: {error}", path.display())))?,
            (None, Some(var)) => env(var).ok_or_else(|| {
                invalid("env", format!("the environment variable {var} is not set"))
            })?,
            _ => {
                return Err(invalid(
                    "file",
                    "set exactly one of file and env (tokens never come from the command line)"
                        .into(),
                ))
            }
        };
        // A file written with `echo` ends with a newline that is not part of the token.
        let secret = secret.trim();
        if secret.len() < MIN_TOKEN_LEN {
            return Err(invalid(
                if token.file.is_some() { "file" } else { "env" },
                format!("the token is shorter than {MIN_TOKEN_LEN} characters"),
            ));
        }
        if token.scopes.is_empty() {
            return Err(invalid(
                "scopes",
                "name at least one of \"push\", \"read\"".into(),
            ));
        }
        if let Some(pattern) = token.sources.iter().find(|p| p.is_empty()) {
            return Err(invalid(
                "sources",
                format!("{pattern:?} is an empty pattern"),
            ));
        }
        entries.push(Entry {
            digest: digest(secret.as_bytes()),
            scopes: token.scopes.clone(),
            grant: Grant {
                sources: (!token.sources.is_empty()).then(|| token.sources.clone().into()),
            },
        });
    }
    Ok(entries.into())
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The token of a request: `Authorization: Bearer TOKEN`, or for reads from the dashboard, its
/// cookie (percent-decoded: the page stores it with `encodeURIComponent`, so a base64 token's
/// `+ / =` arrive as `%2B %2F %3D`).
pub fn presented(headers: &HeaderMap, cookie_allowed: bool) -> Option<Cow<'_, [u8]>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.as_bytes();
        return value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| Cow::Borrowed(value[7..].trim_ascii()));
    }
    if !cookie_allowed {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            pair.strip_prefix(TOKEN_COOKIE.as_bytes())?
                .strip_prefix(b"=")
        })
        .map(|value| percent_encoding::percent_decode(value).into())
}

impl Reloadable for Tokens {
    fn secret(&self) -> &'static str {
        "tokens"
    }

    fn reload(&self, forced: bool) -> Option<bool> {
        let stamps = Self::files_stamps(&self.config);
        let mut seen = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        if !forced && *seen == stamps {
            return None;
        }
        // A broken file is reported once, not at every check.
        *seen = stamps;
        match read(&self.config, &|var| std::env::var(var).ok()) {
            Ok(entries) => {
                *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
                tracing::info!(tokens = self.config.tokens.len(), "auth tokens reloaded");
                Some(true)
            }
            Err(error) => {
                tracing::warn!(%error, "auth token reload failed: the tokens in use stay");
                Some(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Arc<Tokens> {
        let config = AuthConfig {
            tokens: vec![
                TokenConfig {
                    env: Some("PUSH".into()),
                    scopes: vec![Scope::Push],
                    sources: vec!["orders-*".into()],
                    ..TokenConfig::default()
                },
                TokenConfig {
                    env: Some("READ".into()),
                    scopes: vec![Scope::Read],
                    ..TokenConfig::default()
                },
            ],
        };
        let env = |var: &str| Some(format!("{var}-token-0123456789"));
        Tokens::load_with(&config, env).unwrap().unwrap()
    }

    #[test]
    fn a_token_has_its_scopes_and_sources_only() {
        let tokens = tokens();
        let grant = tokens
            .check(Some(b"PUSH-token-0123456789"), Scope::Push)
            .unwrap();
        assert!(grant.allows("orders-1"));
        assert!(!grant.allows("billing-1"));
        assert_eq!(
            tokens
                .check(Some(b"READ-token-0123456789"), Scope::Push)
                .unwrap_err(),
            Denied::Forbidden(Scope::Push)
        );
        assert!(tokens
            .check(Some(b"READ-token-0123456789"), Scope::Read)
            .unwrap()
            .allows("billing-1"));
        assert!(matches!(
            tokens.check(Some(b"nope"), Scope::Read),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            tokens.check(None, Scope::Read),
            Err(Denied::Unauthenticated(_))
        ));
    }

    #[test]
    fn bad_token_config_names_the_key() {
        let short = AuthConfig {
            tokens: vec![TokenConfig {
                env: Some("T".into()),
                scopes: vec![Scope::Read],
                ..TokenConfig::default()
            }],
        };
        let error = Tokens::load_with(&short, |_| Some("short".into())).unwrap_err();
        assert!(error.to_string().contains("auth.tokens[0].env"), "{error}");
        let both = AuthConfig {
            tokens: vec![TokenConfig::default()],
        };
        let error = Tokens::load_with(&both, |_| None).unwrap_err();
        assert!(error.to_string().contains("auth.tokens[0].file"), "{error}");
    }

    #[test]
    fn the_token_is_read_from_the_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=b; healthscore_token=a%2Bb%2Fc%3D".parse().unwrap(),
        );
        assert_eq!(presented(&headers, true).as_deref(), Some(&b"a+b/c="[..]));
        assert_eq!(presented(&headers, false), None);
        headers.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(presented(&headers, true).as_deref(), Some(&b"xyz"[..]));
        headers.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(presented(&headers, true), None);
    }
}
