//! What readers ask for, as serde types with derived JSON schemas: a report tool's arguments
//! ([`ReportArgs`]) and a history query ([`HistoryArgs`], shared by the MCP tool and
//! `/v1/history`'s query string). Each form has one decoder, and its errors name the argument.
//!
//! The report endpoints' query parameters are not [`ReportArgs`]: the tools keep the seed's
//! `include_entities`, while HTTP has `entities`, `max_entities` and `max_issues`
//! (`http/query.rs`). Both read a severity word through [`Severity`]'s `FromStr`.

use std::{borrow::Cow, fmt, str::FromStr, time::SystemTime};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{
    de::{self, DeserializeOwned, Visitor},
    Deserialize, Deserializer,
};
use serde_json::{Map, Value};

use crate::{
    core::{
        published::View,
        scoring::{Severity, Subsystem},
    },
    history,
};

/// The arguments of a report tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportArgs {
    /// Leave out issues below this severity (the score still counts them). Default: every issue.
    #[serde(default, deserialize_with = "parsed")]
    #[schemars(with = "Severity", transform = no_default)]
    min_severity: Option<Severity>,
    /// List each entity (pool, cache, executor...) with its own status and score. Default true.
    #[serde(default = "listed")]
    include_entities: bool,
}

fn listed() -> bool {
    true
}

/// Leaves out the `"default": null` that serde's default gives a field whose schema is not
/// nullable: absent is the default.
fn no_default(schema: &mut Schema) {
    schema.remove("default");
}

impl ReportArgs {
    pub fn view(&self) -> View {
        View {
            min_severity: self.min_severity,
            max_entities: if self.include_entities {
                View::default().max_entities
            } else {
                0
            },
            ..View::default()
        }
    }
}

/// What a reader asks of the history.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryArgs {
    /// A subsystem key, or "system". Default: every name.
    #[serde(default, deserialize_with = "parsed")]
    #[schemars(with = "HistoryName")]
    subsystem: Option<HistoryName>,
    /// Only transitions since this RFC 3339 time, or this long ago ("30m"). Default: all kept.
    #[serde(default, deserialize_with = "parsed")]
    #[schemars(with = "String")]
    since: Option<Since>,
    /// Most transitions listed, the newest; 0 lists only the uptime shares. Default 100.
    #[serde(default, deserialize_with = "count")]
    #[schemars(with = "Option<u32>")]
    limit: Option<usize>,
}

impl HistoryArgs {
    /// The query, listing at most `max_listed` transitions.
    pub fn query(&self, max_listed: usize) -> history::Query {
        history::Query {
            name: self.subsystem.map(|name| name.0),
            since: self.since.map(|since| since.0),
            limit: self
                .limit
                .unwrap_or(history::LISTED_BY_DEFAULT)
                .min(max_listed),
        }
    }
}

/// A history name: a subsystem, or the system (`None`).
#[derive(Clone, Copy, Debug)]
struct HistoryName(Option<Subsystem>);

impl FromStr for HistoryName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "system" => Ok(Self(None)),
            key => key
                .parse()
                .map(|subsystem| Self(Some(subsystem)))
                .map_err(|problem| format!("{problem} (or \"system\")")),
        }
    }
}

/// The names are the subsystem table's keys, so the schema is built from it.
impl JsonSchema for HistoryName {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "HistoryName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Subsystem::ALL
            .map(Subsystem::key)
            .into_iter()
            .chain(["system"])
            .collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

/// A point in time, written as an RFC 3339 time or a duration back from now.
#[derive(Clone, Copy, Debug)]
struct Since(SystemTime);

impl FromStr for Since {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        history::parse_since(text)
            .map(Self)
            .ok_or_else(|| format!("{text:?} is neither an RFC 3339 time nor a duration like 30m"))
    }
}

/// A value written as a string and read by its `FromStr`, whose message becomes serde's error.
fn parsed<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    Option::<String>::deserialize(deserializer)?
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// A count: a JSON number, or a query parameter's digits; the error shows what was given.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    struct Count;

    impl<'de> Visitor<'de> for Count {
        type Value = Option<usize>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a count (0 or more)")
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Some(usize::try_from(n).unwrap_or(usize::MAX)))
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            let n = u64::try_from(n).map_err(|_| E::custom(format!("{n} is not a count")))?;
            self.visit_u64(n)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            let n = text
                .parse::<u64>()
                .map_err(|_| E::custom(format!("{text:?} is not a count")))?;
            self.visit_u64(n)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(Count)
}

/// An argument that cannot be used: which one (`None` when the problem is not in one, such as
/// an unknown name, which the message then names), and what is wrong.
#[derive(Debug)]
pub struct BadArgument {
    pub argument: Option<String>,
    pub message: String,
}

impl<E: std::fmt::Display> From<serde_path_to_error::Error<E>> for BadArgument {
    fn from(error: serde_path_to_error::Error<E>) -> Self {
        let path = error.path().to_string();
        Self {
            argument: (path != "." && path != "?").then_some(path),
            // Its Display is "argument: problem", or the problem alone when there is no path.
            message: error.to_string(),
        }
    }
}

/// The arguments of an MCP tool call (none is an empty object).
pub fn from_json<T: DeserializeOwned>(
    arguments: Option<&Map<String, Value>>,
) -> Result<T, BadArgument> {
    let object = Value::Object(arguments.cloned().unwrap_or_default());
    Ok(serde_path_to_error::deserialize(object)?)
}

/// The arguments of a query string (`name=value&...`, percent-encoded). A name the type does not
/// have, or one given twice, is refused by name before anything is decoded.
pub fn from_query<T: DeserializeOwned + JsonSchema>(query: &str) -> Result<T, BadArgument> {
    let schema = SchemaGenerator::default().into_root_schema_for::<T>();
    let known: Vec<&String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().collect())
        .unwrap_or_default();
    let pairs: Vec<(Cow<str>, Cow<str>)> = form_urlencoded::parse(query.as_bytes()).collect();
    for (index, (name, _)) in pairs.iter().enumerate() {
        let bad = |problem: String| BadArgument {
            argument: Some(name.to_string()),
            message: format!("{name}: {problem}"),
        };
        if !known.iter().any(|known| *known == name) {
            let expected: Vec<&str> = known.iter().map(|name| name.as_str()).collect();
            return Err(bad(format!(
                "unknown parameter (expected one of {})",
                expected.join(", ")
            )));
        }
        if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(bad("given more than once".into()));
        }
    }
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    Ok(serde_path_to_error::deserialize(deserializer)?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn json_args<T: DeserializeOwned>(value: Value) -> Result<T, BadArgument> {
        from_json(value.as_object())
    }

    #[test]
    fn bad_values_name_their_argument_in_both_forms() {
        let bad = json_args::<ReportArgs>(json!({"min_severity": "loud"})).unwrap_err();
        assert_eq!(bad.argument.as_deref(), Some("min_severity"));
        assert!(
            bad.message.starts_with("min_severity: unknown severity"),
            "{bad:?}"
        );
        let bad = json_args::<HistoryArgs>(json!({"limit": -1})).unwrap_err();
        assert_eq!(bad.message, "limit: -1 is not a count");
        let bad = from_query::<HistoryArgs>("since=yesterday").unwrap_err();
        assert_eq!(bad.argument.as_deref(), Some("since"));
        assert!(bad.message.contains("RFC 3339"), "{bad:?}");
        let bad = from_query::<HistoryArgs>("limit=abc").unwrap_err();
        assert_eq!(bad.argument.as_deref(), Some("limit"), "{bad:?}");
        assert_eq!(bad.message, "limit: \"abc\" is not a count");
    }

    #[test]
    fn unknown_and_repeated_names_are_refused() {
        let bad = json_args::<ReportArgs>(json!({"reboot": true})).unwrap_err();
        assert!(bad.message.contains("reboot"), "{bad:?}");
        let bad = from_query::<HistoryArgs>("reboot=1").unwrap_err();
        assert_eq!(bad.argument.as_deref(), Some("reboot"));
        let bad = from_query::<HistoryArgs>("limit=1&limit=2").unwrap_err();
        assert_eq!(bad.message, "limit: given more than once");
    }

    #[test]
    fn both_forms_read_the_same_query() {
        let from_mcp: HistoryArgs =
            json_args(json!({"subsystem": "system", "since": "30m", "limit": 5})).unwrap();
        let from_http: HistoryArgs = from_query("subsystem=system&since=30m&limit=5").unwrap();
        for query in [from_mcp.query(3), from_http.query(3)] {
            assert_eq!(query.name, Some(None));
            assert!(query.since.is_some());
            assert_eq!(query.limit, 3);
        }
        let defaults: HistoryArgs = from_query("").unwrap();
        assert_eq!(defaults.query(1000).limit, history::LISTED_BY_DEFAULT);
        // 0 lists no transition, only the uptime shares, in both forms.
        let none: HistoryArgs = from_query("limit=0").unwrap();
        assert_eq!(none.query(1000).limit, 0);
        let none: HistoryArgs = json_args(json!({"limit": 0})).unwrap();
        assert_eq!(none.query(1000).limit, 0);
        let args: ReportArgs =
            json_args(json!({"min_severity": "WARNING", "include_entities": false})).unwrap();
        assert_eq!(args.view().min_severity, Some(Severity::Warning));
        assert_eq!(args.view().max_entities, 0);
    }

    #[test]
    fn the_tools_schemas_are_derived_from_the_types() {
        let report = rmcp::handler::server::common::schema_for_type::<ReportArgs>();
        let properties = &report["properties"];
        assert_eq!(
            properties["min_severity"]["enum"],
            json!(["info", "warning", "critical"]),
            "{report:?}"
        );
        assert_eq!(properties["min_severity"]["type"], "string", "{report:?}");
        assert!(properties["min_severity"].get("default").is_none());
        assert_eq!(properties["include_entities"]["type"], "boolean");
        assert_eq!(properties["include_entities"]["default"], true);
        assert_eq!(report["additionalProperties"], false);
        assert!(report.get("required").is_none(), "{report:?}");

        let history = rmcp::handler::server::common::schema_for_type::<HistoryArgs>();
        let names = history["properties"]["subsystem"]["enum"]
            .as_array()
            .unwrap();
        assert_eq!(names.len(), Subsystem::ALL.len() + 1);
        assert_eq!(history["properties"]["limit"]["minimum"], 0, "{history:?}");
    }
}
