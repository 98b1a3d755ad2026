//! Query parameters, checked by name: an unknown parameter or a bad value is a 400 that names
//! the parameter, never a silent default.

use axum::{
    extract::{rejection::QueryRejection, Query},
    http::StatusCode,
    response::Response,
};

use crate::{
    core::{
        published::{selection, View},
        scoring::{Severity, Subsystem},
    },
    faces::arguments::BadArgument,
};

/// A parameter that cannot be used: its name, and the message that names it.
pub struct BadParameter {
    parameter: String,
    message: String,
}

impl BadParameter {
    fn new(parameter: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            parameter: parameter.to_owned(),
            message: format!("{parameter}: {problem}"),
        }
    }

    pub fn into_response(self) -> Response {
        super::error(StatusCode::BAD_REQUEST, self.message, Some(&self.parameter))
    }
}

impl From<BadArgument> for BadParameter {
    fn from(bad: BadArgument) -> Self {
        Self {
            parameter: bad.argument.unwrap_or_else(|| "query".into()),
            message: bad.message,
        }
    }
}

/// A request's parameters, each allowed once unless said otherwise.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters, or the 400 for a query that is not `name=value&...`; none may be
    /// outside `allowed` or repeated.
    pub fn read(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Self, BadParameter> {
        Self::read_repeating(query, allowed, &[])
    }

    /// As [`Params::read`], but the parameters in `repeating` may be given more than once.
    pub fn read_repeating(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
        repeating: &[&str],
    ) -> Result<Self, BadParameter> {
        let Query(pairs) =
            query.map_err(|rejection| BadParameter::new("query", rejection.body_text()))?;
        for (index, (name, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                return Err(BadParameter::new(
                    name,
                    format!("unknown parameter (expected one of {})", allowed.join(", ")),
                ));
            }
            let repeated = pairs[..index].iter().any(|(earlier, _)| earlier == name);
            if repeated && !repeating.contains(&name.as_str()) {
                return Err(BadParameter::new(name, "given more than once"));
            }
        }
        Ok(Self(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn min_severity(&self) -> Result<Option<Severity>, BadParameter> {
        self.get("min_severity")
            .map(|value| {
                value
                    .parse()
                    .map_err(|problem: String| BadParameter::new("min_severity", problem))
            })
            .transpose()
    }

    /// A boolean that its bare name (`?verbose`) sets, as the Kubernetes apiserver reads it.
    pub fn switch(&self, name: &str) -> Result<bool, BadParameter> {
        match self.get(name) {
            Some("") => Ok(true),
            _ => self.flag(name, false),
        }
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, BadParameter> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(BadParameter::new(
                name,
                format!("{other:?} is not a boolean (true or false)"),
            )),
        }
    }

    fn count(&self, name: &str, max: usize) -> Result<usize, BadParameter> {
        match self.get(name) {
            None => Ok(View::LISTED_BY_DEFAULT),
            Some(value) => value
                .parse::<usize>()
                .map(|n| n.min(max))
                .map_err(|_| BadParameter::new(name, format!("{value:?} is not a count"))),
        }
    }

    /// The view the parameters ask for: `min_severity`, `entities` (false leaves them out),
    /// `max_entities`, `max_issues` (capped at `max_listed`).
    pub fn view(&self, max_listed: usize) -> Result<View, BadParameter> {
        let entities = self.flag("entities", true)?;
        Ok(View {
            min_severity: self.min_severity()?,
            max_entities: if entities {
                self.count("max_entities", max_listed)?
            } else {
                0
            },
            max_issues: self.count("max_issues", max_listed)?,
        })
    }

    /// `subsystems=a,b`: the subsystems to follow (every one when absent).
    pub fn subsystems(&self) -> Result<Vec<Subsystem>, BadParameter> {
        let Some(list) = self.get("subsystems") else {
            return Ok(Vec::new());
        };
        let keys: Vec<&str> = list.split(',').map(str::trim).collect();
        selection(&keys, "subsystems")
            .map_err(|error| BadParameter::new("subsystems", error.to_string()))
    }
}

impl Params {
    /// Every value of `name` (given once or more), each a subsystem key.
    pub fn subsystem_keys(&self, name: &str) -> Result<Vec<Subsystem>, BadParameter> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| {
                value
                    .parse::<Subsystem>()
                    .map_err(|problem| BadParameter::new(name, problem))
            })
            .collect()
    }
}

/// The parameters of the report endpoints.
pub const VIEW: &[&str] = &["min_severity", "entities", "max_entities", "max_issues"];
