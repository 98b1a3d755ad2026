//! Colours for terminal output: on only when stdout is a terminal and NO_COLOR is unset.

use std::io::IsTerminal;

use crate::core::scoring::{Severity, Status};

#[derive(Clone, Copy, Debug)]
pub struct Style {
    enabled: bool,
}

impl Style {
    pub fn detect() -> Self {
        Self {
            enabled: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn status(self, status: Status) -> String {
        let code = match status {
            Status::Healthy => "32",
            Status::Warning => "33",
            Status::Critical => "1;31",
        };
        self.paint(code, status.as_str())
    }

    pub fn severity(self, severity: Severity) -> String {
        let code = match severity {
            Severity::Info => "36",
            Severity::Warning => "33",
            Severity::Critical => "1;31",
        };
        self.paint(code, severity.as_str())
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}
