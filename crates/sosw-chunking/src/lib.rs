//! # sosw-chunking
//!
//! The Scheduler's chunking rules: a business job becomes the rows of a queue file (one row = one
//! task), identical — same tasks, same order, same JSON key order — to what Python sosw 0.7.x
//! writes. Pure: no AWS, no clock (today's date is a parameter).
//!
//! | item | what it does |
//! |---|---|
//! | [`parse_job`] | the event is the job, or `{"job": ...}` (object or JSON string); `lambda_name` required, ARNs trimmed |
//! | [`SchedulerRules`] | labourers and `job_schema_variants` read from the scheduler's config document |
//! | [`SchedulerRules::plan`] | the rows for a job |
//! | [`plan_event`] | both in one call (`sosw plan`, the scheduler) |
//! | [`dates`] | `period` values: `today`, `yesterday`, `last_X_days`, `X_days_back`, `previous_X_days`, `last_week` |
//!
//! See `docs/chunking.md` for the rules with examples, and the Python quirks kept or fixed.

#![warn(missing_docs)]

pub mod dates;

use serde_json::{Map, Value};
use thiserror::Error;

/// A JSON object.
pub type Object = Map<String, Value>;

/// Why a job cannot be scheduled. Nothing is written for a rejected job.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum JobError {
    /// The event is not a JSON object (or a string holding one).
    #[error("malformed job: {0}")]
    Malformed(String),
    /// `lambda_name` is missing or not a string.
    #[error(
        "job is missing required parameter `lambda_name` (a string: the labourer's function name or ARN)"
    )]
    MissingLambdaName,
    /// `lambda_name` names no configured labourer.
    #[error("unknown labourer `{0}`: it is not in `task_config.labourers` of the scheduler's config")]
    UnknownLabourer(String),
    /// `job_schema_name` names no variant.
    #[error("unknown job schema `{0}`: it is not in `job_schema_variants`")]
    UnknownSchema(String),
    /// `period` is not one of the supported patterns.
    #[error("unsupported period `{0}`: valid options are last_X_days, X_days_back, yesterday, today, previous_X_days, last_week")]
    UnsupportedPeriod(String),
    /// Values of a chunkable attribute cannot be chunked.
    #[error("cannot chunk `{attr}`: {reason}")]
    Unchunkable {
        /// The attribute (as in the job).
        attr: String,
        /// What is wrong.
        reason: String,
    },
    /// The job carries a `labourer_id` other than its `lambda_name`: its tasks would sit in a
    /// queue that no configured labourer reads.
    #[error(
        "job's `labourer_id` {labourer_id} differs from its `lambda_name` `{lambda_name}`: a job's tasks belong to the labourer named by `lambda_name`; drop `labourer_id` or set it to the same name"
    )]
    LabourerMismatch {
        /// The validated (ARN-trimmed) `lambda_name`.
        lambda_name: String,
        /// The job's `labourer_id`, as JSON.
        labourer_id: Value,
    },
    /// The scheduler's config is unusable.
    #[error("invalid scheduler config: {0}")]
    Config(String),
}

/// The rows of a job, generated one at a time (see [`SchedulerRules::rows`]). A chunking error
/// found part-way is yielded in place of the rest: consumers reject the whole job on any `Err`.
pub struct Rows(RowIter);

impl Iterator for Rows {
    type Item = Result<Object, JobError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rows")
    }
}

type RowIter = Box<dyn Iterator<Item = Result<Object, JobError>> + Send>;

fn one(row: Object) -> RowIter {
    Box::new(std::iter::once(Ok(row)))
}

fn fail(e: JobError) -> RowIter {
    Box::new(std::iter::once(Err(e)))
}

/// One task per `batch` values: `base` plus `key: [values]`, generated lazily.
fn chunks(base: Object, key: String, vals: Vec<Value>, batch: usize) -> RowIter {
    let batch = batch.max(1);
    let count = vals.len().div_ceil(batch);
    Box::new((0..count).map(move |i| {
        let mut task = base.clone();
        let end = vals.len().min((i + 1) * batch);
        task.insert(key.clone(), Value::Array(vals[i * batch..end].to_vec()));
        Ok(task)
    }))
}

/// Python's `plural`: the name with one `s` at the end.
pub fn plural(attr: &str) -> String {
    format!("{}s", attr.trim_end_matches('s'))
}

/// Python's `single_or_plural`, in a fixed order: the name, without trailing `s`, with one more `s`.
/// (Python iterates a `set` of these, in an order that varies between processes.)
fn single_or_plural(attr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(3);
    for a in [
        attr.to_string(),
        attr.trim_end_matches('s').to_string(),
        format!("{attr}s"),
    ] {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Python's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `{**a, **b}`: keys of `b` override in place, new keys go to the end.
fn merged(a: &Object, b: &Object) -> Object {
    let mut out = a.clone();
    for (k, v) in b {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Python's `trim_arn_to_name`.
pub fn trim_arn_to_name(arn: &str) -> String {
    if arn.matches(':').count() < 6 && !arn.contains('/') {
        return arn.rsplit(':').next().unwrap_or_default().to_string();
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || "_=,.@-".contains(c);
    let rest = arn_prefix_len(arn).map(|n| &arn[n..]).unwrap_or(arn);
    rest.chars().take_while(|c| is_name(*c)).collect()
}

/// Length of `arn:aws:<service>:<region>:<12 digits>:<type>[:/]` at the start of `s`, if present.
fn arn_prefix_len(s: &str) -> Option<usize> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let mut pos = "arn:aws:".len();
    if !s.starts_with("arn:aws:") {
        return None;
    }
    let segment = |pos: usize, min: usize, max: usize, class: &dyn Fn(char) -> bool| -> Option<usize> {
        let n = s[pos..].chars().take_while(|c| class(*c)).count();
        (n >= min && n <= max).then_some(pos + n)
    };
    pos = segment(pos, 2, 20, &word)?;
    pos = s[pos..].starts_with(':').then_some(pos + 1)?;
    pos = segment(pos, 0, 12, &word)?;
    pos = s[pos..].starts_with(':').then_some(pos + 1)?;
    let digits = s[pos..].chars().take_while(char::is_ascii_digit).count();
    (digits == 12).then_some(())?;
    pos += 12;
    pos = s[pos..].starts_with(':').then_some(pos + 1)?;
    pos = segment(pos, 2, 20, &word)?;
    (s[pos..].starts_with(':') || s[pos..].starts_with('/')).then_some(pos + 1)
}

/// Extract the job from an event: the event itself, or its `job` (an object or a JSON string).
/// `lambda_name` is required; a Lambda ARN is trimmed to the function name.
pub fn parse_job(event: &Value) -> Result<Object, JobError> {
    fn load(v: &Value) -> Result<Object, JobError> {
        match v {
            Value::Object(m) => Ok(m.clone()),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(other) => Err(JobError::Malformed(format!(
                    "expected a JSON object, found {other}"
                ))),
                Err(e) => Err(JobError::Malformed(format!("invalid JSON: {e}"))),
            },
            other => Err(JobError::Malformed(format!(
                "expected a JSON object, found {other}"
            ))),
        }
    }
    let event = load(event)?;
    let mut job = match event.get("job") {
        Some(inner) => load(inner)?,
        None => event,
    };
    let name = match job.get("lambda_name") {
        Some(Value::String(s)) => trim_arn_to_name(s),
        _ => return Err(JobError::MissingLambdaName),
    };
    job.insert("lambda_name".into(), Value::String(name));
    Ok(job)
}

/// The chunking rules of a scheduler config document.
#[derive(Debug, Clone)]
pub struct SchedulerRules {
    labourers: Vec<String>,
    variants: Map<String, Value>,
}

const MAX_BATCH: i64 = 1_000_000;

impl SchedulerRules {
    /// Read the labourers (`task_config.labourers`) and the schema variants (`job_schema_variants`,
    /// which always has `default`) from the scheduler's config document, validating every variant.
    pub fn from_config(doc: &Value) -> Result<Self, JobError> {
        let labourers = match doc.pointer("/task_config/labourers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            Some(_) => {
                return Err(JobError::Config(
                    "`task_config.labourers` must be an object".into(),
                ))
            }
        };
        let mut variants = Map::new();
        variants.insert("default".into(), serde_json::json!({"chunkable_attrs": []}));
        match doc.get("job_schema_variants") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    variants.insert(k.clone(), v.clone());
                }
            }
            Some(_) => return Err(JobError::Config("`job_schema_variants` must be an object".into())),
        }
        // Python's `custom_period_patterns`: a list of regexes, each naming a method of a
        // Scheduler subclass. Through config alone every working pattern is one of the built-in
        // periods (docs/chunking.md), so the list is only checked here, as Python checks it.
        match doc.get("custom_period_patterns") {
            None | Some(Value::Null) => {}
            Some(Value::Array(patterns)) => {
                if let Some(bad) = patterns.iter().find(|p| !p.is_string()) {
                    return Err(JobError::Config(format!(
                        "`custom_period_patterns`: pattern {bad} must be a string"
                    )));
                }
            }
            Some(other) => {
                return Err(JobError::Config(format!(
                    "`custom_period_patterns` must be a list of strings, found {other}"
                )))
            }
        }
        let rules = Self { labourers, variants };
        for name in rules.variants.keys() {
            rules.chunkable_attrs(name)?;
        }
        Ok(rules)
    }

    /// The chunkable attribute names of a schema variant, in order.
    pub fn chunkable_attrs(&self, schema: &str) -> Result<Vec<String>, JobError> {
        let variant = self
            .variants
            .get(schema)
            .ok_or_else(|| JobError::UnknownSchema(schema.into()))?;
        let attrs = match variant.get("chunkable_attrs") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(JobError::Config(format!(
                    "`job_schema_variants.{schema}.chunkable_attrs` must be a list of [name, {{...}}] pairs"
                )))
            }
        };
        let mut names = Vec::with_capacity(attrs.len());
        for a in attrs {
            let name = match a {
                Value::Array(pair) => pair.first().and_then(Value::as_str),
                Value::String(s) => Some(s.as_str()),
                _ => None,
            }
            .ok_or_else(|| {
                JobError::Config(format!(
                    "`job_schema_variants.{schema}.chunkable_attrs`: each entry must be [name, {{...}}], found {a}"
                ))
            })?;
            if name.is_empty() || name.ends_with('s') {
                return Err(JobError::Config(format!(
                    "`job_schema_variants.{schema}.chunkable_attrs`: use the singular form of `{name}` (names may not end with 's')"
                )));
            }
            names.push(name.to_string());
        }
        Ok(names)
    }

    /// The queue-file rows for a parsed job (see [`parse_job`]), in queue order.
    pub fn plan(&self, job: Object, today: chrono::NaiveDate) -> Result<Vec<Object>, JobError> {
        self.rows(job, today)?.collect()
    }

    /// [`Self::plan`] as an iterator: rows are generated one at a time, so a job of millions of
    /// tasks needs memory for its own size, not for its rows. Problems with the job as a whole
    /// are returned at once; a problem found while chunking comes as an `Err` item.
    pub fn rows(&self, mut job: Object, today: chrono::NaiveDate) -> Result<Rows, JobError> {
        let schema = match job.get("job_schema_name") {
            None | Some(Value::Null) => "default".to_string(),
            Some(Value::String(s)) if s.is_empty() => "default".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(JobError::UnknownSchema(other.to_string())),
        };
        let attrs = self.chunkable_attrs(&schema)?;
        let labourer = match job.shift_remove("lambda_name") {
            Some(Value::String(s)) => s,
            _ => return Err(JobError::MissingLambdaName),
        };
        if !self.labourers.contains(&labourer) {
            return Err(JobError::UnknownLabourer(labourer));
        }
        // Python sosw lets a job's `labourer_id` override `lambda_name` (unchunked jobs), and its
        // `create_task` then crashes on the unregistered labourer after the queue file is
        // uploaded. A `labourer_id` equal to `lambda_name` is what Python accepts; any other is
        // refused here, before anything is written.
        if let Some(given) = job.get("labourer_id") {
            if given.as_str() != Some(labourer.as_str()) {
                return Err(JobError::LabourerMismatch {
                    lambda_name: labourer,
                    labourer_id: given.clone(),
                });
            }
        }
        let chunker = std::sync::Arc::new(Chunker { attrs });
        let needs = match chunker.attrs.first() {
            Some(first) => chunker.needs_chunking(&plural(first), &job)?,
            None => false,
        };
        let mut skeleton = Object::new();
        skeleton.insert("labourer_id".into(), Value::String(labourer));
        if !needs {
            return Ok(Rows(one(merged(&skeleton, &job))));
        }
        let days = dates::chunk_dates_iter(job, today)?;
        let rows = days
            .flat_map(move |task| Chunker::chunk_job(&chunker, task, Object::new(), None))
            .map(move |row| {
                row.map(|mut row| {
                    for (k, v) in &skeleton {
                        row.insert(k.clone(), v.clone());
                    }
                    row
                })
            });
        Ok(Rows(Box::new(rows)))
    }
}

/// Parse an event and plan it against a scheduler config document.
pub fn plan_event(doc: &Value, event: &Value, today: chrono::NaiveDate) -> Result<Vec<Object>, JobError> {
    plan_event_rows(doc, event, today)?.collect()
}

/// [`plan_event`] as an iterator of rows (see [`SchedulerRules::rows`]).
pub fn plan_event_rows(doc: &Value, event: &Value, today: chrono::NaiveDate) -> Result<Rows, JobError> {
    let rules = SchedulerRules::from_config(doc)?;
    rules.rows(parse_job(event)?, today)
}

struct Chunker {
    attrs: Vec<String>,
}

/// Python's `get_list_of_multiple_or_one_or_empty_from_dict`.
fn list_from(data: &Object, name: &str) -> Vec<Value> {
    let found = data
        .get(name)
        .filter(|v| truthy(v))
        .or_else(|| data.get(name.trim_end_matches('s')).filter(|v| truthy(v)));
    match found {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
    }
}

fn is_flat(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

impl Chunker {
    fn next_attr(&self, attr: &str) -> Option<&str> {
        let single = attr.trim_end_matches('s');
        let i = self.attrs.iter().position(|a| a == single || *a == attr)?;
        self.attrs.get(i + 1).map(String::as_str)
    }

    /// Python's `needs_chunking`.
    fn needs_chunking(&self, attr: &str, data: &Object) -> Result<bool, JobError> {
        let attrs = single_or_plural(attr);
        for a in &attrs {
            for key in [format!("isolate_{a}"), format!("max_{a}_per_batch")] {
                if data.get(&key).is_some_and(truthy) {
                    return Ok(true);
                }
            }
        }
        let Some(next) = self.next_attr(attr) else {
            return Ok(false);
        };
        let root_isolate: Object = data
            .iter()
            .filter(|(k, _)| k.starts_with("isolate_") || is_max_per_batch(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for a in &attrs {
            for val in list_from(data, a) {
                let Value::Object(val) = val else {
                    return Err(JobError::Unchunkable {
                        attr: a.clone(),
                        reason: format!(
                            "values must be objects to look for nested `{next}` (or set `isolate_{}`), found {val}",
                            plural(a)
                        ),
                    });
                };
                for sub in val.values() {
                    if let Value::Object(sub) = sub {
                        if self.needs_chunking(next, &merged(sub, &root_isolate))? {
                            return Ok(true);
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Python's `validate_list_of_vals`.
    fn validate_vals(attr: &str, data: &Value) -> Result<Vec<Value>, JobError> {
        let bad = |reason: &str| JobError::Unchunkable {
            attr: attr.to_string(),
            reason: reason.to_string(),
        };
        match data {
            Value::Array(a) => {
                if a.iter().all(is_flat) {
                    Ok(a.clone())
                } else {
                    Err(bad("values must be flat (strings or numbers), or set an `isolate_` flag to chunk nested data"))
                }
            }
            Value::Object(m) => {
                if m.values().all(Value::is_null) {
                    Ok(m.keys().map(|k| Value::String(k.clone())).collect())
                } else if m.len() == 1 {
                    Ok(vec![data.clone()])
                } else {
                    Err(bad(
                        "an object of values must have all values null (its keys are the values)",
                    ))
                }
            }
            _ => Err(bad("expected a list of values or an object with null values")),
        }
    }

    fn batch_size(attr: &str, job: &Object, skeleton: &Object) -> Result<i64, JobError> {
        let key = format!("max_{}_per_batch", plural(attr));
        let Some(v) = job.get(&key).or_else(|| skeleton.get(&key)) else {
            return Ok(MAX_BATCH);
        };
        let n = match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        };
        match n {
            Some(n) if n > 0 => Ok(n),
            _ => Err(JobError::Unchunkable {
                attr: key,
                reason: format!("must be a positive integer, found {v}"),
            }),
        }
    }

    /// Python's `chunk_job`, recursively, generating rows lazily.
    fn chunk_job(
        this: &std::sync::Arc<Self>,
        job: Object,
        skeleton: Object,
        attr: Option<String>,
    ) -> RowIter {
        let Some(attr) = attr.or_else(|| this.attrs.first().cloned()) else {
            return one(merged(&job, &skeleton));
        };
        let batch = match Self::batch_size(&attr, &job, &skeleton) {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        let needs = match this.needs_chunking(&plural(&attr), &merged(&job, &skeleton)) {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
        if needs {
            let batch = if batch == MAX_BATCH { 1 } else { batch } as usize;
            let next = this.next_attr(&attr).map(str::to_string);
            // Python tries the singular and the plural key (in a random order, and chunks a
            // singular key twice); we take the first form present, plural first.
            let forms = [plural(&attr), attr.clone()];
            let Some(key) = forms
                .into_iter()
                .find(|k| job.get(k.as_str()).is_some_and(truthy))
            else {
                return Box::new(std::iter::empty());
            };
            let current = list_from(&job, &key);
            let job_skeleton: Object = job.into_iter().filter(|(k, _)| *k != key).collect();
            let task_skeleton = merged(&skeleton, &job_skeleton);
            let out_key = plural(&attr);
            if current.iter().all(Value::is_object) {
                let this = this.clone();
                Box::new(current.into_iter().flat_map(move |val| -> RowIter {
                    let Value::Object(val) = val else { unreachable!() };
                    if val.values().all(Value::is_null) {
                        return match Self::validate_vals(&key, &Value::Object(val)) {
                            Ok(vals) => chunks(task_skeleton.clone(), out_key.clone(), vals, batch),
                            Err(e) => fail(e),
                        };
                    }
                    let (this, key, out_key, task_skeleton, next) = (
                        this.clone(),
                        key.clone(),
                        out_key.clone(),
                        task_skeleton.clone(),
                        next.clone(),
                    );
                    Box::new(val.into_iter().flat_map(move |(name, sub)| -> RowIter {
                        let mut task = task_skeleton.clone();
                        task.insert(out_key.clone(), Value::Array(vec![Value::String(name.clone())]));
                        match sub {
                            Value::Object(sub) => match &next {
                                None => {
                                    for (k, v) in sub {
                                        task.insert(k, v);
                                    }
                                    one(task)
                                }
                                Some(next) => Self::chunk_job(&this, sub, task, Some(next.clone())),
                            },
                            Value::Null => one(task),
                            other => fail(JobError::Unchunkable {
                                attr: key.clone(),
                                reason: format!("value of `{name}` must be an object or null, found {other}"),
                            }),
                        }
                    }))
                }))
            } else {
                match Self::validate_vals(&key, &Value::Array(current)) {
                    Ok(vals) => chunks(task_skeleton, out_key, vals, batch),
                    Err(e) => fail(e),
                }
            }
        } else {
            let mut job = job;
            let mut task_skeleton = skeleton;
            if let Some(a) = single_or_plural(&attr).into_iter().find(|a| job.contains_key(a)) {
                let value = job.shift_remove(&a).unwrap_or(Value::Null);
                if truthy(&value) {
                    match Self::validate_vals(&a, &value) {
                        // As the original: the rest of this (sub-)job is not carried into these tasks.
                        Ok(vals) => return chunks(task_skeleton, plural(&attr), vals, batch as usize),
                        Err(_) => {
                            job.insert(a, value);
                        }
                    }
                }
            }
            for (k, v) in job {
                task_skeleton.insert(k, v);
            }
            one(task_skeleton)
        }
    }
}

/// `max_<...>_per_batch` at the start of a key, as Python's `re.match('max_[\w]*_per_batch', k)`.
fn is_max_per_batch(k: &str) -> bool {
    let Some(rest) = k.strip_prefix("max_") else {
        return false;
    };
    let word_len = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .count();
    let word: String = rest.chars().take(word_len).collect();
    // `\w*` backtracks: any `_per_batch` inside the word-run at or after position 0.
    word.match_indices("_per_batch").next().is_some()
}

#[cfg(test)]
mod tests;
