//! The Prometheus text format and OpenMetrics, read into samples. Small and strict where it
//! matters (names, label escapes, values, duplicate series), lenient where healthscore does not
//! care (comments, HELP, TYPE and UNIT lines, timestamps, exemplars). Fuzzed in
//! `tests/decoders.rs`.
//!
//! prometheus-parse was judged and not used: its sample regex ends a label set at the first `}`,
//! so a label value containing `}` (a path, an entity name) misreads the line, and it brings
//! regex and chrono for what is a line format.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    hash::BuildHasher,
};

use foldhash::fast::RandomState as FoldState;

/// One sample: a series (name and labels, in the order written) and its value. An exposition's
/// samples own their strings and labels; an OTLP export's borrow them (`Cow<str>`, from the
/// request) and their labels (a slice of one list for the whole export).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample<S = String, L = Vec<(S, S)>> {
    pub name: S,
    pub labels: L,
    pub value: f64,
    /// The 1-based line of an exposition, for errors; `None` for a point of an OTLP export,
    /// whose errors name its metric instead.
    pub line: Option<usize>,
}

impl<S: AsRef<str>, L: AsRef<[(S, S)]>> Sample<S, L> {
    /// Where the sample came from, for an error's field: `line 12`, or `metric jvm.thread.count`.
    pub fn place(&self) -> String {
        match self.line {
            Some(line) => format!("line {line}"),
            None => format!("metric {}", self.name.as_ref()),
        }
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .as_ref()
            .iter()
            .find(|(key, _)| key.as_ref() == name)
            .map(|(_, value)| value.as_ref())
    }
}

/// Why an exposition cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    pub line: usize,
    pub problem: String,
}

/// Every sample of `text`; the first malformed line or repeated series is an error.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    parse_kept(text, |_| true)
}

/// The samples of `text` whose metric name `keep` accepts. The others are read as strictly (a
/// malformed line or a repeated series is an error) but only their series' hash is kept, so a
/// large exposition costs what is read of it, not its size many times over: a line is read
/// borrowing from `text`, and copied into a `Sample` only when it is kept.
pub fn parse_kept(text: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<Sample>, ParseError> {
    let mut samples: Vec<Sample> = Vec::new();
    // Kept series by the hash of their name and labels; a hit is compared in full.
    let mut seen: HashMap<u64, Vec<usize>, FoldState> = HashMap::default();
    // The hashes of the series not kept: a hit is taken as a repeat (a 64-bit collision
    // between two series of one exposition is not a practical concern).
    let mut unkept: HashSet<u64, FoldState> = HashSet::default();
    let hashing = FoldState::default();
    // One line's labels, reused from line to line.
    let mut labels: Vec<Label> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed == "# EOF" {
            break;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let failed = |problem| ParseError { line, problem };
        let (name, value) = read_line(trimmed, &mut labels).map_err(failed)?;
        let kept = keep(name).then(|| Sample {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone().into_owned()))
                .collect(),
            value,
            line: Some(line),
        });
        // Labels in any order are the same series: their hashes are summed, and a line's
        // label names are distinct (a repeated one is an error).
        let hash = labels.iter().fold(hashing.hash_one(name), |hash, label| {
            hash.wrapping_add(hashing.hash_one(label))
        });
        let Some(sample) = kept else {
            if !unkept.insert(hash) {
                return Err(failed(format!(
                    "series {} is repeated",
                    written(name, &labels)
                )));
            }
            continue;
        };
        let same = seen.entry(hash).or_default();
        if same
            .iter()
            .any(|&index| same_series(&samples[index], &sample))
        {
            return Err(failed(format!("series {} is repeated", series(&sample))));
        }
        same.push(samples.len());
        samples.push(sample);
    }
    Ok(samples)
}

/// A label as read from a line: its value is copied only when it holds an escape.
type Label<'a> = (&'a str, Cow<'a, str>);

fn same_series(a: &Sample, b: &Sample) -> bool {
    a.name == b.name
        && a.labels.len() == b.labels.len()
        && a.labels.iter().all(|label| b.labels.contains(label))
}

/// `name{labels}` as written in expositions, for messages.
pub fn series<S: AsRef<str>, L: AsRef<[(S, S)]>>(sample: &Sample<S, L>) -> String {
    let labels: Vec<Label> = sample
        .labels
        .as_ref()
        .iter()
        .map(|(key, value)| (key.as_ref(), Cow::Borrowed(value.as_ref())))
        .collect();
    written(sample.name.as_ref(), &labels)
}

fn written(name: &str, labels: &[Label]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let labels: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// One sample line: its metric name and value, its labels into `labels`.
fn read_line<'a>(line: &'a str, labels: &mut Vec<Label<'a>>) -> Result<(&'a str, f64), String> {
    let mut rest = line;
    labels.clear();
    let name = take_name(&mut rest, true).ok_or("expected a metric name")?;
    if rest.starts_with('{') {
        take_labels(&mut rest, labels)?;
    }
    if !rest.starts_with([' ', '\t']) {
        return Err(format!("expected a space and a value after {name}"));
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("expected a value")?;
    let value = parse_value(value).ok_or_else(|| format!("{value:?} is not a number"))?;
    match fields.next() {
        // A timestamp; an exemplar follows " # ".
        Some(timestamp) if timestamp != "#" && timestamp.parse::<f64>().is_err() => {
            return Err(format!("{timestamp:?} is not a timestamp"));
        }
        Some(timestamp) if timestamp != "#" => {
            if let Some(extra) = fields.next().filter(|extra| *extra != "#") {
                return Err(format!("unexpected {extra:?} after the timestamp"));
            }
        }
        _ => {}
    }
    Ok((name, value))
}

/// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without colons, a label name. Names are
/// ASCII, so the first other byte ends one on a character boundary.
fn take_name<'a>(rest: &mut &'a str, colons: bool) -> Option<&'a str> {
    let valid = |b: u8, first: bool| {
        b.is_ascii_alphabetic()
            || b == b'_'
            || (colons && b == b':')
            || (!first && b.is_ascii_digit())
    };
    let end = rest
        .bytes()
        .enumerate()
        .position(|(i, b)| !valid(b, i == 0))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let (name, after) = rest.split_at(end);
    *rest = after;
    Some(name)
}

/// `{name="value",...}` with `\\`, `\"` and `\n` escapes; a trailing comma is allowed.
fn take_labels<'a>(rest: &mut &'a str, labels: &mut Vec<Label<'a>>) -> Result<(), String> {
    *rest = &rest[1..];
    loop {
        *rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            *rest = after;
            return Ok(());
        }
        let name = take_name(rest, false).ok_or("expected a label name")?;
        *rest = rest.trim_start();
        *rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("expected = after label {name}"))?
            .trim_start();
        *rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("expected a quoted value for label {name}"))?;
        let value = take_value(rest, name)?;
        if labels.iter().any(|(existing, _)| *existing == name) {
            return Err(format!("label {name} is repeated"));
        }
        labels.push((name, value));
        *rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            *rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// A label's value up to its closing quote, which `rest` is left after: borrowed unless it
/// holds an escape.
fn take_value<'a>(rest: &mut &'a str, label: &str) -> Result<Cow<'a, str>, String> {
    let text = *rest;
    let not_closed = || format!("the value of label {label} is not closed");
    let stop = text
        .bytes()
        .position(|b| b == b'"' || b == b'\\')
        .ok_or_else(not_closed)?;
    if text.as_bytes()[stop] == b'"' {
        *rest = &text[stop + 1..];
        return Ok(Cow::Borrowed(&text[..stop]));
    }
    let mut value = text[..stop].to_owned();
    let mut chars = text[stop..].char_indices();
    loop {
        match chars.next() {
            None => return Err(not_closed()),
            Some((i, '"')) => {
                *rest = &text[stop + i + 1..];
                return Ok(Cow::Owned(value));
            }
            Some((_, '\\')) => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                other => {
                    return Err(format!(
                        "bad escape \\{} in label {label}",
                        other.map_or(' ', |(_, c)| c)
                    ))
                }
            },
            Some((_, c)) => value.push(c),
        }
    }
}

/// A sample value: a float, or NaN, +Inf, -Inf as both formats write them.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats_with_escapes_timestamps_and_exemplars() {
        let text = "# HELP hikaricp_connections_active Active connections\n\
            # TYPE hikaricp_connections_active gauge\n\
            hikaricp_connections_active{pool=\"Hikari}Pool \\\"1\\\"\",} 31.0\n\
            cache_gets_total{cache=\"books\",result=\"hit\"} 1.5e3 1700000000000\n\
            http_requests_total{code=\"200\"} 7 # {trace_id=\"abc\"} 1.0\n\
            up 1\n\
            # EOF\n\
            ignored after eof";
        let samples = parse(text).expect("valid");
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].label("pool"), Some("Hikari}Pool \"1\""));
        assert_eq!(samples[0].value, 31.0);
        assert_eq!(samples[1].value, 1500.0);
        assert_eq!(samples[3].name, "up");
        assert!(parse("x NaN\ny +Inf\nz -Inf").expect("specials")[0]
            .value
            .is_nan());
    }

    #[test]
    fn malformed_lines_and_repeated_series_name_the_line() {
        for (text, line) in [
            ("ok 1\nbroken{a=\"1\" 2", 2),
            ("x{a=\"1} 2", 1),
            ("x 1\nx 2", 2),
            ("x{a=\"1\",b=\"2\"} 1\nx{b=\"2\",a=\"1\"} 1", 2),
            ("x{a=\"1\",a=\"2\"} 1", 1),
            ("x one", 1),
            ("x", 1),
            ("1x 2", 1),
            ("x 1 2 3", 1),
            ("x{a=\"\\q\"} 1", 1),
        ] {
            assert_eq!(parse(text).expect_err(text).line, line, "{text}");
        }
    }

    #[test]
    fn series_not_kept_are_read_as_strictly_and_kept_ones_keep_their_label_order() {
        let skip_x = |name: &str| name != "x";
        let repeated = "x{b=\"a\\\\b\",a=\"1\"} 1\nx{a=\"1\",b=\"a\\\\b\"} 2";
        assert_eq!(parse_kept(repeated, skip_x).expect_err("repeated").line, 2);
        assert_eq!(
            parse_kept("x 1\nx{a=\"1\" 2", skip_x)
                .expect_err("broken")
                .line,
            2
        );
        let samples = parse_kept("x{a=\"1\"} 1\ny{z=\"q\\\"\",a=\"2\"} 3", skip_x).expect("valid");
        assert_eq!(samples.len(), 1);
        assert_eq!(
            samples[0].labels,
            [("z".into(), "q\"".into()), ("a".into(), "2".into())]
        );
        assert_eq!(samples[0].line, Some(2));
    }
}
