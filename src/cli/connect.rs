//! Connecting the client commands to a server.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// The server address flag shared by the client commands.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Server address, host:port or http://host:port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
    pub addr: String,
}

impl Target {
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let uri = if self.addr.contains("://") {
            self.addr.clone()
        } else {
            format!("http://{}", self.addr)
        };
        Endpoint::from_shared(uri).map_err(|error| {
            anyhow::anyhow!("--addr {:?} is not a valid address: {error}", self.addr)
        })
    }

    pub async fn connect(&self) -> anyhow::Result<Channel> {
        self.endpoint()?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|error| anyhow::anyhow!("cannot connect to {}: {error}", self.addr))
    }
}

/// Reads a duration such as `500ms`, `1s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 1s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

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
