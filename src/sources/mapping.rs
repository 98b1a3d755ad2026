//! Metric series to snapshots by rows: the built-in profiles (`profiles/*.toml`: Micrometer's
//! names, as Spring Boot's `/actuator/prometheus` writes them, and the OpenTelemetry semantic
//! conventions) and rows added in config, both in the `[[scrape.mappings]]` shape. What the
//! rows read (`Mapped`) is added to a `PushBuilder`, so a scraped or exported snapshot goes
//! through exactly the checks of a push. node_exporter's series are `node_exporter`'s.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState as FoldState;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::exposition::{series, Sample};
use crate::core::{
    ingest::{FieldError, PushBuilder},
    scoring::snapshot as core,
    subsystem::{for_each_subsystem, BySubsystem, Subsystem},
};

/// A mapping row: samples of `metric` whose labels match `labels` set `field` of the entity
/// named by the label `entity_label` (or the fixed name `entity`) in `subsystem`. Several
/// samples that land on one field are summed (heap pools, request counts by status).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub metric: String,
    /// Label matchers: an exact value, or a prefix followed by `*` (`status = "5*"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub subsystem: String,
    pub field: String,
    #[serde(default)]
    pub entity_label: Option<String>,
    #[serde(default)]
    pub entity: Option<String>,
}

/// Whether a sample's value can set a snapshot field of this kind (an enum cannot).
macro_rules! from_samples {
    (flag) => {
        true
    };
    (u32) => {
        true
    };
    (u64) => {
        true
    };
    ($enum:ident) => {
        false
    };
}

/// `$field`; the marker only says that the field is a capacity where 0 means unknown.
macro_rules! capacity {
    ($marker:ident $field:expr) => {
        $field
    };
}

macro_rules! snapshot_fields {
    ($($variant:ident $key:literal $snapshot:ident
        [$($list:ident { $($name:ident: $kind:ident $(or $zero:ident)?,)* })?];)+) => {
        /// The fields of each pushed snapshot, and whether a row may set it.
        const SNAPSHOT_FIELDS: &[(Subsystem, &[(&str, bool)])] = &[
            $($((Subsystem::$variant, &[$((stringify!($name), from_samples!($kind)),)*]),)?)+
        ];

        /// The capacities where 0 means unknown or unbounded: a negative value there means the
        /// same (Micrometer writes -1 for an unbounded pool).
        const UNKNOWN_WHEN_NEGATIVE: &[Target] = &[
            $($($($(capacity!($zero (Subsystem::$variant, stringify!($name))),)?)*)?)+
        ];

        impl Mapped<'_> {
            /// Adds every entity to `push`, as the snapshot of its subsystem.
            pub fn add_to<'a>(
                &self,
                mut push: PushBuilder<'a>,
            ) -> Result<PushBuilder<'a>, FieldError> {
                $($(
                    let entities: Vec<EntityFields> = self
                        .0
                        .get(Subsystem::$variant)
                        .into_iter()
                        .flatten()
                        .map(|(name, fields)| EntityFields {
                            subsystem: Subsystem::$variant,
                            name,
                            fields,
                        })
                        .collect();
                    push = push.list($key, entities, |e| e.name, |e, name, _| {
                        Ok(core::$snapshot {
                            name,
                            $($name: FromSamples::read(&e, stringify!($name))?,)*
                        })
                    })?;
                )?)+
                Ok(push)
            }
        }
    };
}
for_each_subsystem!(snapshot_fields: variant key snapshot pushed);

/// Fields a row may set beyond the snapshots' own: executors' `queue_remaining`, added to
/// `queued` for the queue's capacity.
const DERIVED_FIELDS: &[Target] = &[(Subsystem::Executors, "queue_remaining")];

/// The fields a row of `subsystem` may set, or `None` when no row may set that subsystem.
fn settable(subsystem: Subsystem) -> Option<Vec<&'static str>> {
    let (_, fields) = SNAPSHOT_FIELDS.iter().find(|(key, _)| *key == subsystem)?;
    let own = fields
        .iter()
        .filter(|(_, settable)| *settable)
        .map(|(field, _)| *field);
    let derived = DERIVED_FIELDS
        .iter()
        .filter(|(key, _)| *key == subsystem)
        .map(|(_, field)| *field);
    Some(own.chain(derived).collect())
}

impl Row {
    /// Checks a row from config; `key` names it (`scrape[0].mappings[2]`).
    pub fn validate(&self, key: &str) -> Result<(), FieldError> {
        let subsystem = self.subsystem.parse::<Subsystem>().ok();
        let fields = subsystem.and_then(settable).ok_or_else(|| {
            let keys: Vec<&str> = SNAPSHOT_FIELDS.iter().map(|(s, _)| s.key()).collect();
            FieldError::new(
                format!("{key}.subsystem"),
                format!(
                    "{:?} is not a subsystem rows can set (one of {})",
                    self.subsystem,
                    keys.join(", ")
                ),
            )
        })?;
        if !fields.contains(&self.field.as_str()) {
            return Err(FieldError::new(
                format!("{key}.field"),
                format!(
                    "{:?} is not a field of {} (one of {})",
                    self.field,
                    self.subsystem,
                    fields.join(", ")
                ),
            ));
        }
        if self.entity_label.is_some() == self.entity.is_some() {
            return Err(FieldError::new(
                format!("{key}.entity_label"),
                "set exactly one of entity_label (a label naming the entity) and entity (a fixed name)",
            ));
        }
        if self.metric.is_empty() {
            return Err(FieldError::new(
                format!("{key}.metric"),
                "must not be empty",
            ));
        }
        Ok(())
    }

    fn entity_of<'a, S: AsRef<str>, L: AsRef<[(S, S)]>>(
        &'a self,
        sample: &'a Sample<S, L>,
    ) -> Option<&'a str> {
        match (&self.entity_label, &self.entity) {
            (Some(label), _) => sample.label(label),
            (None, Some(name)) => Some(name),
            (None, None) => None,
        }
    }
}

/// A built-in profile: rows in the users' own `[[scrape.mappings]]` shape, shipped as data.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    mappings: Vec<Row>,
}

/// Micrometer's names, as `/actuator/prometheus` writes them (and as OTLP names normalize to).
const MICROMETER: &str = include_str!("profiles/micrometer.toml");
/// The OpenTelemetry semantic conventions, as Prometheus normalizes OTLP names.
const SEMCONV: &str = include_str!("profiles/semconv.toml");

/// The rows of a built-in profile. Its text is part of the binary, and a test reads and
/// validates every profile, so a failure here is a defect of the build, not of any input.
fn profile(text: &str) -> Vec<Row> {
    toml::from_str::<Profile>(text)
        .expect("the built-in profiles parse (tested)")
        .mappings
}

/// The entity name of rows that fill in an existing entity: the subsystem's only entity when it
/// has one (a Tomcat connector's request counts), else this one.
const SOLE_ENTITY: &str = "http";

/// The rows of an input: a profile's, then config's (which may add to or override them: a
/// later row for the same field wins).
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    rows: Vec<Row>,
    /// Each row's subsystem key and field as the snapshot tables spell them, so that what the
    /// rows read is filed under static names rather than a copy of the row's strings.
    targets: Vec<Target>,
    /// Each row's label matchers, read once from its `labels`.
    matchers: Vec<Vec<(String, Wanted)>>,
    /// Indexes of `rows` by metric name: a scrape is mostly series no row reads.
    /// Looked up once per series of every scrape, so hashed with foldhash rather than SipHash:
    /// the keys are the rows' own names, not the targets'.
    by_metric: HashMap<String, Vec<usize>, FoldState>,
}

impl Mapping {
    /// The mapping of `rows`, which have passed `Row::validate` (config rows when the config
    /// was read, built-in ones in a test); a row that would not is left out.
    fn of(rows: Vec<Row>) -> Self {
        let (rows, targets): (Vec<Row>, Vec<Target>) = rows
            .into_iter()
            .filter_map(|row| {
                let target = target(&row);
                debug_assert!(target.is_some(), "an unchecked mapping row: {row:?}");
                Some((row, target?))
            })
            .unzip();
        let mut by_metric: HashMap<String, Vec<usize>, FoldState> = HashMap::default();
        for (index, row) in rows.iter().enumerate() {
            by_metric.entry(row.metric.clone()).or_default().push(index);
        }
        let matchers = rows
            .iter()
            .map(|row| {
                row.labels
                    .iter()
                    .map(|(name, wanted)| (name.clone(), Wanted::of(wanted)))
                    .collect()
            })
            .collect();
        Self {
            rows,
            targets,
            matchers,
            by_metric,
        }
    }

    pub fn micrometer() -> Self {
        Self::of(profile(MICROMETER))
    }

    /// What OTLP exports carry: the semantic conventions and Micrometer's names.
    pub fn otlp() -> Self {
        Self::of(
            profile(SEMCONV)
                .into_iter()
                .chain(profile(MICROMETER))
                .collect(),
        )
    }

    pub fn with(mut self, extra: &[Row]) -> Self {
        self.rows.extend_from_slice(extra);
        Self::of(self.rows)
    }

    /// Whether some row reads the metric `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.by_metric.contains_key(name)
    }

    /// The entities `samples` describe, and the number of samples no row read.
    pub fn apply<'a, S: AsRef<str>, L: AsRef<[(S, S)]>>(
        &'a self,
        samples: &'a [Sample<S, L>],
    ) -> Result<(Mapped<'a>, usize), FieldError> {
        // Not sized by the samples: a scrape's are mostly series no row reads.
        let mut fields = Reading::default();
        let mut unread = 0;
        // What one sample sets; a later row for the same field and entity replaces an earlier
        // one's value. Reused from sample to sample.
        let mut set: Vec<(Target, &str, f64)> = Vec::new();
        for sample in samples {
            let Some(candidates) = self.by_metric.get(sample.name.as_ref()) else {
                unread += 1;
                continue;
            };
            set.clear();
            let mut read = false;
            for &index in candidates {
                let (row, target) = (&self.rows[index], self.targets[index]);
                // `by_metric` found the rows of the sample's metric: only labels are left.
                if !matches_labels(&self.matchers[index], sample) {
                    continue;
                }
                let Some(entity) = row.entity_of(sample) else {
                    continue;
                };
                read = true;
                if !sample.value.is_finite() {
                    return Err(FieldError::new(
                        sample.place(),
                        format!(
                            "{} is {}, not a finite number",
                            series(sample),
                            sample.value
                        ),
                    ));
                }
                if sample.value < 0.0 {
                    if UNKNOWN_WHEN_NEGATIVE.contains(&target) {
                        continue;
                    }
                    return Err(FieldError::new(
                        sample.place(),
                        format!("{} is negative ({})", series(sample), sample.value),
                    ));
                }
                match set
                    .iter_mut()
                    .find(|(t, e, _)| *t == target && *e == entity)
                {
                    Some(slot) => slot.2 = sample.value,
                    None => set.push((target, entity, sample.value)),
                }
            }
            for &((subsystem, field), entity, value) in &set {
                fields.add(subsystem, entity, field, value);
            }
            unread += usize::from(!read);
        }
        let mut mapped = fields.finish();
        mapped.fill_sole_entities();
        mapped.add_queue_remaining()?;
        Ok((mapped, unread))
    }
}

/// A row's subsystem and field.
type Target = (Subsystem, &'static str);

/// What a row wants of a label's value: the value itself, or a prefix (written `5*`).
#[derive(Clone, Debug)]
enum Wanted {
    Is(String),
    StartsWith(String),
}

impl Wanted {
    fn of(wanted: &str) -> Self {
        match wanted.strip_suffix('*') {
            Some(prefix) => Self::StartsWith(prefix.to_owned()),
            None => Self::Is(wanted.to_owned()),
        }
    }
}

/// Whether `sample` has the labels `matchers` want.
fn matches_labels<S: AsRef<str>, L: AsRef<[(S, S)]>>(
    matchers: &[(String, Wanted)],
    sample: &Sample<S, L>,
) -> bool {
    matchers.iter().all(|(name, wanted)| {
        let value = sample.label(name);
        match wanted {
            Wanted::Is(wanted) => value == Some(wanted.as_str()),
            Wanted::StartsWith(prefix) => value.is_some_and(|v| v.starts_with(prefix.as_str())),
        }
    })
}

/// `row`'s subsystem and field as the snapshot tables spell them; `None` for a row that
/// `Row::validate` refuses.
fn target(row: &Row) -> Option<Target> {
    let subsystem = row.subsystem.parse::<Subsystem>().ok()?;
    let field = settable(subsystem)?
        .into_iter()
        .find(|field| *field == row.field)?;
    Some((subsystem, field))
}

/// Every field the rows read: by subsystem, then entity (its name borrowed from the samples or
/// the rows; in name order, each once), then field.
#[derive(Debug, Default)]
pub struct Mapped<'a>(BySubsystem<Vec<(&'a str, Fields)>>);

/// The fields read so far, each entity found by name through a hash: a tree map by name was a
/// fifth of mapping an OTLP export (callgrind), in comparisons and a node per entity.
#[derive(Default)]
struct Reading<'a> {
    entities: BySubsystem<Vec<(&'a str, Fields)>>,
    found: HashMap<(Subsystem, &'a str), usize, FoldState>,
}

impl<'a> Reading<'a> {
    /// Adds `value` to `field` of `entity`.
    fn add(&mut self, subsystem: Subsystem, entity: &'a str, field: &'static str, value: f64) {
        let entities = self.entities.get_or_default(subsystem);
        let index = *self.found.entry((subsystem, entity)).or_insert_with(|| {
            entities.push((entity, Fields::default()));
            entities.len() - 1
        });
        entities[index].1.add(field, value);
    }

    fn finish(mut self) -> Mapped<'a> {
        for entities in self.entities.values_mut() {
            entities.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        Mapped(self.entities)
    }
}

/// One entity's fields and the sum of the samples that landed on each. An entity has a few
/// fields, so a list searched in order costs less than a map (callgrind: a third of mapping an
/// OTLP export went to the tree maps this replaced), and up to four are kept inline.
#[derive(Debug, Default)]
struct Fields(SmallVec<[(&'static str, f64); 4]>);

impl Fields {
    fn get(&self, field: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| *value)
    }

    fn add(&mut self, field: &'static str, value: f64) {
        match self.0.iter_mut().find(|(name, _)| *name == field) {
            Some((_, sum)) => *sum += value,
            None => self.0.push((field, value)),
        }
    }

    fn remove(&mut self, field: &str) -> Option<f64> {
        let index = self.0.iter().position(|(name, _)| *name == field)?;
        Some(self.0.swap_remove(index).1)
    }
}

impl Mapped<'_> {
    pub fn entity_count(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

/// One entity's fields, read as the snapshot's types.
struct EntityFields<'a> {
    subsystem: Subsystem,
    name: &'a str,
    fields: &'a Fields,
}

impl EntityFields<'_> {
    fn get(&self, field: &str) -> f64 {
        self.fields.get(field).unwrap_or(0.0)
    }

    fn u64(&self, field: &str) -> Result<u64, FieldError> {
        let value = self.get(field).round();
        if value > u64::MAX as f64 {
            return Err(self.too_large(field, value));
        }
        Ok(value as u64)
    }

    fn u32(&self, field: &str) -> Result<u32, FieldError> {
        let value = self.u64(field)?;
        u32::try_from(value).map_err(|_| self.too_large(field, value as f64))
    }

    fn flag(&self, field: &str) -> Option<bool> {
        self.fields.get(field).map(|value| value != 0.0)
    }

    fn too_large(&self, field: &str, value: f64) -> FieldError {
        FieldError::new(
            format!("{} {:?}.{field}", self.subsystem, self.name),
            format!("{value} is too large"),
        )
    }
}

/// A snapshot field, read from the samples that landed on it.
trait FromSamples: Sized {
    fn read(entity: &EntityFields, field: &str) -> Result<Self, FieldError>;
}

/// A state flag: absent (no sample) is the normal state.
impl FromSamples for bool {
    fn read(entity: &EntityFields, field: &str) -> Result<Self, FieldError> {
        Ok(entity.flag(field).unwrap_or(true))
    }
}

impl FromSamples for u32 {
    fn read(entity: &EntityFields, field: &str) -> Result<Self, FieldError> {
        entity.u32(field)
    }
}

impl FromSamples for u64 {
    fn read(entity: &EntityFields, field: &str) -> Result<Self, FieldError> {
        entity.u64(field)
    }
}

/// An executor's state: no row sets it, so it is running.
impl FromSamples for core::ExecutorState {
    fn read(_: &EntityFields, _: &str) -> Result<Self, FieldError> {
        Ok(Self::Running)
    }
}

impl Mapped<'_> {
    /// Sets each executor's `queue_capacity` to `queued + queue_remaining` where a row read the
    /// remaining capacity; either count above a `u32` is refused, as any field's is.
    fn add_queue_remaining(&mut self) -> Result<(), FieldError> {
        let Some(executors) = self.0.get_mut(Subsystem::Executors) else {
            return Ok(());
        };
        for (name, fields) in executors.iter_mut() {
            if fields.get("queue_remaining").is_none() {
                continue;
            }
            let e = EntityFields {
                subsystem: Subsystem::Executors,
                name,
                fields,
            };
            let capacity = e.u32("queued")?.saturating_add(e.u32("queue_remaining")?);
            fields.remove("queue_remaining");
            fields.remove("queue_capacity");
            fields.add("queue_capacity", f64::from(capacity));
        }
        Ok(())
    }

    /// Moves the fields of `*` entities onto their subsystem's only named entity, or names them
    /// `SOLE_ENTITY` when there is none or several.
    fn fill_sole_entities(&mut self) {
        for entities in self.0.values_mut() {
            let Ok(star) = entities.binary_search_by(|(name, _)| name.cmp(&"*")) else {
                continue;
            };
            let (_, fields) = entities.remove(star);
            let target = match entities.len() {
                1 => 0,
                _ => match entities.binary_search_by(|(name, _)| name.cmp(&SOLE_ENTITY)) {
                    Ok(index) => index,
                    Err(index) => {
                        entities.insert(index, (SOLE_ENTITY, Fields::default()));
                        index
                    }
                },
            };
            for (field, value) in fields.0 {
                entities[target].1.add(field, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::exposition::parse;

    #[test]
    fn every_built_in_profile_row_is_a_valid_config_row() {
        for (name, text, count) in [("micrometer", MICROMETER, 25), ("semconv", SEMCONV, 15)] {
            let rows = profile(text);
            assert_eq!(rows.len(), count, "{name}");
            for (index, row) in rows.iter().enumerate() {
                row.validate(&format!("{name}[{index}]")).expect("valid");
            }
        }
    }

    #[test]
    fn micrometer_series_become_snapshots() {
        let text = r#"
hikaricp_connections_active{pool="HikariPool-1"} 31.0
hikaricp_connections_idle{pool="HikariPool-1"} 1.0
hikaricp_connections_max{pool="HikariPool-1"} 32.0
hikaricp_connections_pending{pool="HikariPool-1"} 2.0
cache_gets_total{cache="books",result="hit",name="x"} 90.0
cache_gets_total{cache="books",result="miss"} 10.0
cache_size{cache="books"} 5.0
executor_active_threads{name="applicationTaskExecutor"} 2.0
executor_pool_max_threads{name="applicationTaskExecutor"} 8.0
executor_queued_tasks{name="applicationTaskExecutor"} 3.0
executor_queue_remaining_tasks{name="applicationTaskExecutor"} 7.0
jvm_memory_used_bytes{area="heap",id="G1 Eden Space"} 100.0
jvm_memory_used_bytes{area="heap",id="G1 Old Gen"} 300.0
jvm_memory_used_bytes{area="nonheap",id="Metaspace"} 999.0
jvm_memory_max_bytes{area="heap",id="G1 Eden Space"} -1.0
jvm_memory_max_bytes{area="heap",id="G1 Old Gen"} 1000.0
jvm_threads_states_threads{state="blocked"} 1.0
tomcat_threads_busy_threads{name="http-nio-8080"} 3.0
tomcat_threads_config_max_threads{name="http-nio-8080"} 200.0
http_server_requests_seconds_count{status="200",uri="/a"} 90.0
http_server_requests_seconds_count{status="503",uri="/b"} 10.0
process_uptime_seconds 12.0
"#;
        let samples = parse(text).expect("valid");
        let mapping = Mapping::micrometer();
        let (mapped, unread) = mapping.apply(&samples).expect("maps");
        assert_eq!(unread, 2, "nonheap memory and uptime are not read");
        let limits = crate::core::ingest::Limits::default();
        let builder = PushBuilder::new("app", mapped.entity_count(), &limits).expect("valid");
        let push = mapped.add_to(builder).expect("valid").build();
        fn list<T>(list: Option<Vec<T>>) -> T {
            list.expect("a list").remove(0)
        }
        let pool: core::DatasourceSnapshot = list(push.datasources);
        assert_eq!(
            (
                &*pool.name,
                pool.active,
                pool.idle,
                pool.max,
                pool.threads_awaiting
            ),
            ("HikariPool-1", 31, 1, 32, 2)
        );
        let cache: core::CacheSnapshot = list(push.caches);
        assert_eq!((cache.hits, cache.misses, cache.size), (90, 10, 5));
        let executor: core::ExecutorSnapshot = list(push.executors);
        assert_eq!((executor.queued, executor.queue_capacity), (3, 10));
        let jvm: core::RuntimeSnapshot = list(push.runtimes);
        assert_eq!(
            (jvm.heap_used_bytes, jvm.heap_max_bytes, jvm.blocked_threads),
            (400, 1000, 1)
        );
        let web: core::WebServerSnapshot = list(push.web_servers);
        assert_eq!(
            (&*web.name, web.busy_workers, web.requests, web.errors),
            ("http-nio-8080", 3, 100, 10)
        );
    }

    #[test]
    fn non_finite_or_negative_mapped_values_are_refused_and_unmapped_ones_ignored() {
        let nan = parse("hikaricp_connections_active{pool=\"p\"} NaN").expect("parses");
        let error = Mapping::micrometer().apply(&nan).unwrap_err();
        assert_eq!(error.field, "line 1");
        let inf = parse("cache_size{cache=\"c\"} +Inf").expect("parses");
        assert!(Mapping::micrometer().apply(&inf).is_err());
        let mut negative = parse("hikaricp_connections_active{pool=\"p\"} -3").expect("parses");
        assert!(Mapping::micrometer().apply(&negative).is_err());
        // A point of an OTLP export has no line: its error names the metric.
        negative[0].line = None;
        let error = Mapping::micrometer().apply(&negative).unwrap_err();
        assert_eq!(error.field, "metric hikaricp_connections_active");
        assert!(error.problem.contains("pool=\"p\""), "{}", error.problem);
        let remaining = parse(
            "executor_queued_tasks{name=\"e\"} 1\nexecutor_queue_remaining_tasks{name=\"e\"} 1e10",
        )
        .expect("parses");
        let error = Mapping::micrometer().apply(&remaining).unwrap_err();
        assert_eq!(error.field, "executors \"e\".queue_remaining");
        let unmapped = parse("some_gauge NaN").expect("parses");
        assert_eq!(
            Mapping::micrometer().apply(&unmapped).expect("ignored").1,
            1
        );
    }

    #[test]
    fn config_rows_are_checked_by_key() {
        let row = |subsystem: &str, field: &str| Row {
            metric: "m".into(),
            labels: BTreeMap::new(),
            subsystem: subsystem.into(),
            field: field.into(),
            entity_label: Some("name".into()),
            entity: None,
        };
        assert!(row("datasources", "active")
            .validate("scrape[0].mappings[0]")
            .is_ok());
        assert_eq!(
            row("disks", "active").validate("k").unwrap_err().field,
            "k.subsystem"
        );
        assert_eq!(
            row("caches", "active").validate("k").unwrap_err().field,
            "k.field"
        );
        let mut both = row("caches", "hits");
        both.entity = Some("x".into());
        assert_eq!(both.validate("k").unwrap_err().field, "k.entity_label");
    }
}
