//! Typed configuration, accepting Python sosw's JSON config documents unchanged.
//!
//! Assembly follows Python sosw 0.7.51 exactly ([`effective_config`]):
//!
//! 1. the essential's document: `sosw_essential_config`, then the essential's own defaults, then
//!    `<AWS_LAMBDA_FUNCTION_NAME>_config`, then a custom config, each merged recursively over the
//!    previous one ([`merge`]);
//! 2. its `task_config` as the TaskManager sees it: the TaskManager's defaults, then the whole
//!    `<AWS_LAMBDA_FUNCTION_NAME>_config` document, then the `task_config` of step 1. So
//!    `task_config` values in `sosw_essential_config` (prefixed table names, `max_attempts`,
//!    `greenfield_*`, ...) go *over* the TaskManager's defaults;
//! 3. its `ecology_config` as the EcologyManager sees it: the ecology defaults, then the whole
//!    `<AWS_LAMBDA_FUNCTION_NAME>_config` document, then the `ecology_config` of step 2.
//!
//! **One difference from the original:** a list in a later layer *replaces* the earlier list.
//! Python sosw unions lists, so a default list item can never be removed by configuration.
//!
//! The merged document is then deserialized into typed structs. Numbers are read as Python reads
//! them: `10.0` where an integer is expected is 10, and `null` for a setting that has a default
//! means the default. A key of the wrong shape fails at start-up with [`ConfigError::Shape`]
//! naming the key path and what was expected.

use crate::error::ConfigError;
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Merge `update` into `base` recursively: objects merge key by key, anything else (lists
/// included) in `update` replaces what `base` had.
pub fn merge(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    Some(existing) if v.is_object() && existing.is_null() => *existing = v.clone(),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, u) => *b = u.clone(),
    }
}

/// Python's truthiness of a JSON value: `null`, `false`, `0`, `-0.0`, `""`, `[]` and `{}` are falsy.
pub(crate) fn falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

/// Merge layers, first to last, and deserialize the result, naming the offending key on error.
pub fn assemble<T: DeserializeOwned>(name: &str, layers: &[Value]) -> Result<T, ConfigError> {
    let mut doc = Value::Object(Map::new());
    for layer in layers {
        if layer.is_null() {
            continue;
        }
        if !layer.is_object() {
            return Err(ConfigError::Shape {
                name: name.into(),
                path: ".".into(),
                reason: format!("expected a JSON object, found {}", kind(layer)),
            });
        }
        merge(&mut doc, layer);
    }
    from_value(name, doc)
}

/// Deserialize a config document, naming the offending key on error.
pub fn from_value<T: DeserializeOwned>(name: &str, doc: Value) -> Result<T, ConfigError> {
    // Through the text: serde buffers the keys of `#[serde(flatten)]` maps, and that buffer
    // cannot hold integers beyond 64 bits taken from a `Value` (it can from text).
    let text = doc.to_string();
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| ConfigError::Shape {
        name: name.into(),
        path: e.path().to_string(),
        reason: e.inner().to_string(),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `task_config.dynamo_db_config`: the `sosw_tasks` table and how its fields are named and typed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamoDbConfig {
    /// The task queue table. Default `sosw_tasks`.
    pub table_name: String,
    /// The GSI on (`labourer_id`, `greenfield`). Default `sosw_tasks_greenfield`.
    pub index_greenfield: String,
    /// DynamoDB type (`S`, `N`, `M`, `BOOL`) per known attribute.
    pub row_mapper: IndexMap<String, String>,
    /// Fields every task must have.
    pub required_fields: Vec<String>,
    /// Renames of sosw's field names to the attribute names of your table.
    pub field_names: BTreeMap<String, String>,
    /// Other keys of the original's DynamoDbClient config, kept but unused.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for DynamoDbConfig {
    fn default() -> Self {
        let row_mapper = [
            ("task_id", "S"),
            ("labourer_id", "S"),
            ("created_at", "N"),
            ("completed_at", "N"),
            ("greenfield", "N"),
            ("attempts", "N"),
            ("closed_at", "N"),
            ("desired_launch_time", "N"),
            ("arn", "S"),
            ("payload", "S"),
        ];
        Self {
            table_name: "sosw_tasks".into(),
            index_greenfield: "sosw_tasks_greenfield".into(),
            row_mapper: row_mapper
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            required_fields: ["task_id", "labourer_id", "created_at", "greenfield"]
                .map(String::from)
                .to_vec(),
            field_names: BTreeMap::from([("task_id".to_string(), "task_id".to_string())]),
            extra: Map::new(),
        }
    }
}

impl DynamoDbConfig {
    /// The attribute name of a sosw field (honours `field_names`).
    pub fn field<'a>(&'a self, key: &'a str) -> &'a str {
        self.field_names.get(key).map(String::as_str).unwrap_or(key)
    }
}

/// The comparison of a metric value with a feeling's target: what Python's
/// `getattr(operator, name)` accepts for a comparison (`le`, `__le__`, ...) and the documented
/// symbols (`<=`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComparisonOperator {
    /// `<=` or `le`
    #[serde(rename = "<=", alias = "le", alias = "__le__")]
    Le,
    /// `<` or `lt`
    #[serde(rename = "<", alias = "lt", alias = "__lt__")]
    Lt,
    /// `>=` or `ge`
    #[serde(rename = ">=", alias = "ge", alias = "__ge__")]
    Ge,
    /// `>` or `gt`
    #[serde(rename = ">", alias = "gt", alias = "__gt__")]
    Gt,
    /// `==` or `eq`
    #[serde(rename = "==", alias = "eq", alias = "__eq__")]
    Eq,
    /// `!=` or `ne`
    #[serde(rename = "!=", alias = "ne", alias = "__ne__")]
    Ne,
}

impl ComparisonOperator {
    /// `a <op> b`.
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            Self::Le => a <= b,
            Self::Lt => a < b,
            Self::Ge => a >= b,
            Self::Gt => a > b,
            Self::Eq => a == b,
            Self::Ne => a != b,
        }
    }
}

/// One health metric of a labourer: a CloudWatch query and how the labourer feels about its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthMetric {
    /// Arguments of CloudWatch GetMetricStatistics (`Namespace`, `MetricName` or `Name`,
    /// `Dimensions`, `Period`, `Statistics`, `Unit`) plus `MetricAggregationTimeSlice`.
    pub details: Map<String, Value>,
    /// Eco status (0..=4) → target value.
    #[serde(deserialize_with = "lenient::status_map")]
    pub feelings: BTreeMap<u8, f64>,
    /// How the value is compared with each target.
    pub feeling_comparison_operator: ComparisonOperator,
}

/// The configuration of one labourer (worker function) in `task_config.labourers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabourerConfig {
    /// The worker's Lambda ARN or name. Defaults to the labourer id.
    #[serde(default)]
    pub arn: Option<String>,
    /// Upper limit of tasks running at once; falls back to the global default.
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub max_simultaneous_invocations: Option<u32>,
    /// Health metrics, by a human-readable name.
    #[serde(default)]
    pub health_metrics: IndexMap<String, HealthMetric>,
    /// Attempts before a task is closed as dead (overrides `max_attempts_<id>` and `max_attempts`).
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub max_attempts: Option<u32>,
    /// Expected run time in seconds, used for expiry (default 900).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub duration: Option<i64>,
    /// Extra seconds after `duration` before a task counts as expired (default 300).
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub cooldown: Option<i64>,
    /// The worker's timeout in seconds. When absent it is read from Lambda GetFunctionConfiguration.
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub max_duration: Option<i64>,
    /// Anything else a labourer config may carry; kept as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ecology_config`: defaults for metric queries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EcologyConfig {
    /// Filled into each metric's `details` when missing: `Period` 60, `Statistics` `["Average"]`,
    /// `MetricAggregationTimeSlice` 300.
    pub default_metric_values: Map<String, Value>,
    /// Other keys, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for EcologyConfig {
    fn default() -> Self {
        let Value::Object(defaults) =
            json!({"Period": 60, "Statistics": ["Average"], "MetricAggregationTimeSlice": 300})
        else {
            unreachable!()
        };
        Self {
            default_metric_values: defaults,
            extra: Map::new(),
        }
    }
}

/// `task_config`: everything the TaskManager needs. Defaults as Python sosw's TaskManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskConfig {
    /// The task queue table.
    pub dynamo_db_config: DynamoDbConfig,
    /// Archive table. Default `sosw_closed_tasks`.
    pub sosw_closed_tasks_table: String,
    /// GSI of the archive on (`labourer_id_task_status`, `closed_at`).
    pub sosw_closed_tasks_labourer_status_index: String,
    /// Retry table. Default `sosw_retry_tasks`.
    pub sosw_retry_tasks_table: String,
    /// LSI of the retry table on `desired_launch_time`. Default `labourer_id_greenfield`.
    pub sosw_retry_tasks_greenfield_index: String,
    /// Added to "now" when a task is invoked. Default 31557600 (a year).
    #[serde(deserialize_with = "lenient::i64")]
    pub greenfield_invocation_delta: i64,
    /// Distance between consecutive queued tasks. Default 1000.
    #[serde(deserialize_with = "lenient::i64")]
    pub greenfield_task_step: i64,
    /// Labourers by id (the worker function name), in config order.
    pub labourers: IndexMap<String, LabourerConfig>,
    /// Default attempts before a task is dead. Default 3.
    #[serde(deserialize_with = "lenient::u32")]
    pub max_attempts: u32,
    /// Closed tasks read per status for the average duration. Default 10.
    #[serde(deserialize_with = "lenient::u32")]
    pub max_closed_to_analyse_for_duration: u32,
    /// Default limit of simultaneous invocations per labourer. Default 1.
    #[serde(deserialize_with = "lenient::u32")]
    pub max_simultaneous_invocations: u32,
    /// Ecology (CloudWatch) settings.
    pub ecology_config: EcologyConfig,
    /// Other keys, including `max_attempts_<labourer_id>`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for TaskConfig {
    /// Python sosw's `TaskManager.DEFAULT_CONFIG`.
    fn default() -> Self {
        Self {
            dynamo_db_config: DynamoDbConfig::default(),
            sosw_closed_tasks_table: "sosw_closed_tasks".into(),
            sosw_closed_tasks_labourer_status_index: "labourer_task_status_with_time".into(),
            sosw_retry_tasks_table: "sosw_retry_tasks".into(),
            sosw_retry_tasks_greenfield_index: "labourer_id_greenfield".into(),
            greenfield_invocation_delta: 31_557_600,
            greenfield_task_step: 1000,
            labourers: IndexMap::new(),
            max_attempts: 3,
            max_closed_to_analyse_for_duration: 10,
            max_simultaneous_invocations: 1,
            ecology_config: EcologyConfig::default(),
            extra: Map::new(),
        }
    }
}

/// Python sosw's `TaskManager.DEFAULT_CONFIG`, as a JSON layer to merge user config over.
pub fn default_task_config() -> Value {
    serde_json::to_value(TaskConfig::default()).expect("config serializes")
}

/// An essential's defaults layer (see [`effective_config`]): the listed top-level keys of its typed
/// defaults, serialized. The typed `Default` of the essential's config is the one place its
/// defaults are written; which keys form the layer decides precedence (the layer goes over
/// `sosw_essential_config`, as Python's `DEFAULT_CONFIG` does), the other keys' defaults apply
/// only where no document sets them.
///
/// # Panics
/// When a listed key is not a field of the serialized defaults (a programming error, caught by
/// each essential's defaults test).
pub fn defaults_layer<T: Serialize>(defaults: &T, keys: &[&str]) -> Value {
    let Value::Object(mut all) = serde_json::to_value(defaults).expect("config serializes") else {
        panic!("a config serializes to a JSON object");
    };
    let layer: Map<String, Value> = keys
        .iter()
        .map(|k| {
            let v = all
                .shift_remove(*k)
                .unwrap_or_else(|| panic!("`{k}` is not a key of the typed defaults"));
            ((*k).to_string(), v)
        })
        .collect();
    Value::Object(layer)
}

/// The largest `greenfield_task_step` and `greenfield_invocation_delta` accepted (10^12 seconds,
/// about 31,700 years).
pub const GREENFIELD_VALUE_LIMIT: i64 = 1_000_000_000_000;

impl TaskConfig {
    /// Build from a user's `task_config` object merged over the defaults, then validate.
    pub fn from_user(user: &Value) -> Result<Self, ConfigError> {
        let mut doc = default_task_config();
        if !user.is_null() && !user.is_object() {
            return Err(ConfigError::Shape {
                name: "task_config".into(),
                path: ".".into(),
                reason: format!("expected a JSON object, found {}", kind(user)),
            });
        }
        merge(&mut doc, user);
        normalize_task_config(&mut doc);
        let cfg: Self = from_value("task_config", doc)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Semantic checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.greenfield_task_step <= 0 {
            return Err(ConfigError::Invalid(
                "task_config.greenfield_task_step must be positive".into(),
            ));
        }
        if self.greenfield_invocation_delta <= 0 {
            return Err(ConfigError::Invalid(
                "task_config.greenfield_invocation_delta must be positive".into(),
            ));
        }
        // Greenfields are seconds since the epoch plus these; bounding them keeps every sum and
        // product of the queue arithmetic far from i64 overflow.
        for (key, value) in [
            ("greenfield_task_step", self.greenfield_task_step),
            ("greenfield_invocation_delta", self.greenfield_invocation_delta),
        ] {
            if value > GREENFIELD_VALUE_LIMIT {
                return Err(ConfigError::Invalid(format!(
                    "task_config.{key} = {value} is too large: at most {GREENFIELD_VALUE_LIMIT} \
                     (greenfields are seconds since the epoch; larger values overflow)"
                )));
            }
        }
        validate_timing(self)?;
        for (key, value) in &self.extra {
            if let Some(id) = key.strip_prefix("max_attempts_") {
                if lenient::integer(value).is_err() {
                    return Err(ConfigError::Shape {
                        name: "task_config".into(),
                        path: key.clone(),
                        reason: format!("expected a non-negative integer for labourer `{id}`, found {value}"),
                    });
                }
            }
        }
        for (id, labourer) in &self.labourers {
            for (name, metric) in &labourer.health_metrics {
                validate_feelings(metric).map_err(|reason| {
                    ConfigError::Invalid(format!(
                        "task_config.labourers.{id}.health_metrics.{name}.feelings: {reason}"
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Attribute name of a sosw field in the tasks table.
    pub fn field<'a>(&'a self, key: &'a str) -> &'a str {
        self.dynamo_db_config.field(key)
    }

    /// `max_attempts` of a labourer: its own config, then `max_attempts_<id>`, then the default.
    pub fn max_attempts_for(&self, labourer_id: &str) -> u32 {
        if let Some(n) = self.labourers.get(labourer_id).and_then(|l| l.max_attempts) {
            return n;
        }
        // Python: `config.get(f"max_attempts_{id}") or config["max_attempts"]`: null and 0 fall back.
        self.extra
            .get(&format!("max_attempts_{labourer_id}"))
            .and_then(|v| lenient::integer(v).ok().flatten())
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(self.max_attempts)
    }
}

/// Default expected duration of a worker run, in seconds (Python sosw: 900).
pub const DEFAULT_DURATION: i64 = 900;
/// Default cooldown after `duration` before a task counts as expired (Python sosw: 300).
pub const DEFAULT_COOLDOWN: i64 = 300;

/// The largest `greenfield_invocation_delta`, `duration`, `cooldown` or `max_duration` accepted
/// (100 years in seconds): far beyond any real value, and far from overflowing `now + delta`.
pub const MAX_SECONDS: i64 = 100 * 366 * 86_400;
/// The largest `greenfield_task_step` accepted: queue positions must stay far below "now" (a
/// greenfield at or above the registration time reads as an invoked task).
pub const MAX_TASK_STEP: i64 = 1_000_000;
/// Lambda's longest timeout, the run time assumed for a labourer without `max_duration`.
pub const LAMBDA_MAX_TIMEOUT: i64 = 900;

/// Refuse, naming the key, timing settings that would make a running task look queued (and be
/// invoked again), or that are out of range or would overflow:
/// - `greenfield_task_step` in 1..=[`MAX_TASK_STEP`], `greenfield_invocation_delta` in 1..=[`MAX_SECONDS`];
/// - per labourer `duration`, `max_duration` in 1..=[`MAX_SECONDS`], `cooldown` in 0..=[`MAX_SECONDS`];
/// - `greenfield_invocation_delta` larger than every labourer's longest run
///   (max(`duration`, `max_duration` or Lambda's 900 s)) + `cooldown`: an invoked task must
///   expire (and go to the scavenger) before its greenfield falls back into the queue range.
pub fn validate_timing(cfg: &TaskConfig) -> Result<(), ConfigError> {
    let bad = |key: String, value: i64, range: &str| {
        Err(ConfigError::Invalid(format!(
            "task_config.{key} = {value}: must be in {range}"
        )))
    };
    if !(1..=MAX_TASK_STEP).contains(&cfg.greenfield_task_step) {
        return bad(
            "greenfield_task_step".into(),
            cfg.greenfield_task_step,
            &format!("1..={MAX_TASK_STEP}"),
        );
    }
    let delta = cfg.greenfield_invocation_delta;
    if !(1..=MAX_SECONDS).contains(&delta) {
        return bad(
            "greenfield_invocation_delta".into(),
            delta,
            &format!("1..={MAX_SECONDS}"),
        );
    }
    for (id, l) in &cfg.labourers {
        for (name, value, min) in [
            ("duration", l.duration, 1),
            ("max_duration", l.max_duration, 1),
            ("cooldown", l.cooldown, 0),
        ] {
            if let Some(v) = value {
                if !(min..=MAX_SECONDS).contains(&v) {
                    return bad(
                        format!("labourers.{id}.{name}"),
                        v,
                        &format!("{min}..={MAX_SECONDS}"),
                    );
                }
            }
        }
        let run = l
            .duration
            .unwrap_or(DEFAULT_DURATION)
            .max(l.max_duration.unwrap_or(LAMBDA_MAX_TIMEOUT));
        let longest = run + l.cooldown.unwrap_or(DEFAULT_COOLDOWN);
        if delta <= longest {
            return Err(ConfigError::Invalid(format!(
                "task_config.greenfield_invocation_delta = {delta} must be larger than labourer `{id}`'s longest run \
                 + cooldown ({longest} s): otherwise a running task falls back into the queue range and is invoked again"
            )));
        }
    }
    Ok(())
}

/// Check that feelings are ordered: each lower status must be reached by values the higher one
/// rejects. Returns the reason when they are not.
pub fn validate_feelings(metric: &HealthMetric) -> Result<(), String> {
    if metric.feelings.is_empty() {
        return Err("no feelings configured".into());
    }
    if let Some(bad) = metric.feelings.keys().find(|k| **k > 4) {
        return Err(format!("status {bad} is not an eco status (0..=4)"));
    }
    let op = metric.feeling_comparison_operator;
    let mut last: Option<(u8, f64)> = None;
    for (status, target) in metric.feelings.iter().rev() {
        if let Some((last_status, last_target)) = last {
            if op.apply(*target, last_target) {
                return Err(format!(
                    "status {status} target {target} must not satisfy `{:?}` against status {last_status} target {last_target}: \
                     lower statuses need targets that the higher ones reject",
                    op
                ));
            }
        }
        last = Some((*status, *target));
    }
    Ok(())
}

/// Numbers in config as Python reads them: an integral float (`10.0`) is an integer, `null` of an
/// optional setting is "not set". Strings, booleans and fractions where an integer is expected are
/// refused with the key named (Python would crash on them later, or give them another meaning per
/// key; see docs/differences.md).
pub mod lenient {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;
    use std::collections::BTreeMap;

    /// The integer a JSON value holds, `Ok(None)` for `null`.
    pub fn integer(v: &Value) -> Result<Option<i128>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Ok(Some(i128::from(i)));
                }
                if let Some(u) = n.as_u64() {
                    return Ok(Some(i128::from(u)));
                }
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| format!("{n} is not a number"))?;
                if f.fract() != 0.0 || f.abs() > 1e30 {
                    return Err(format!("expected an integer, found {n}"));
                }
                Ok(Some(f as i128))
            }
            other => Err(format!("expected an integer, found {other}")),
        }
    }

    fn convert<T: TryFrom<i128>>(v: &Value) -> Result<Option<T>, String> {
        match integer(v)? {
            None => Ok(None),
            Some(i) => T::try_from(i)
                .map(Some)
                .map_err(|_| format!("{i} is out of range ({})", std::any::type_name::<T>())),
        }
    }

    /// An optional `u32`: `null` is `None`, `10.0` is 10.
    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        convert(&Value::deserialize(d)?).map_err(D::Error::custom)
    }

    /// An optional `i64`: `null` is `None`, `10.0` is 10.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        convert(&Value::deserialize(d)?).map_err(D::Error::custom)
    }

    /// A `u32` (its `null` is removed before deserializing, see [`super::normalize_task_config`]).
    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        opt_u32(d)?.ok_or_else(|| D::Error::custom("expected an integer, found null"))
    }

    /// An `i64` (its `null` is removed before deserializing).
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        opt_i64(d)?.ok_or_else(|| D::Error::custom("expected an integer, found null"))
    }

    /// Any JSON value as a boolean, by Python's truthiness (`null`, `0`, `""`, `[]`, `{}` are false).
    pub fn truthy<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(!super::falsy(&Value::deserialize(d)?))
    }

    /// A `usize` where `null` (as Python's falsy `None`) is 0.
    pub fn usize_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        Ok(convert(&Value::deserialize(d)?)
            .map_err(D::Error::custom)?
            .unwrap_or(0))
    }

    /// Status (0..=255, as a JSON key or number) → number, e.g. `feelings` and
    /// `invocation_number_coefficient`. Keys may be `"3"` or `"3.0"`; values any JSON number.
    pub fn status_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u8, f64>, D::Error> {
        let map = serde_json::Map::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let key: f64 = k
                .trim()
                .parse()
                .map_err(|_| D::Error::custom(format!("key `{k}` is not a status number")))?;
            if key.fract() != 0.0 || !(0.0..=255.0).contains(&key) {
                return Err(D::Error::custom(format!("key `{k}` is not a status number")));
            }
            let value = v
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| D::Error::custom(format!("value of `{k}` must be a number, found {v}")))?;
            out.insert(key as u8, value);
        }
        Ok(out)
    }
}

/// Remove `null` values of `keys` from `doc`, so the typed defaults apply: Python falls back to
/// its default wherever a setting is falsy.
fn drop_nulls(doc: &mut Value, keys: &[&str]) {
    if let Value::Object(m) = doc {
        for k in keys {
            if m.get(*k).is_some_and(Value::is_null) {
                m.shift_remove(*k);
            }
        }
    }
}

/// Normalise a task config document before deserializing: `null` settings take their defaults.
pub fn normalize_task_config(doc: &mut Value) {
    drop_nulls(
        doc,
        &[
            "dynamo_db_config",
            "sosw_closed_tasks_table",
            "sosw_closed_tasks_labourer_status_index",
            "sosw_retry_tasks_table",
            "sosw_retry_tasks_greenfield_index",
            "greenfield_invocation_delta",
            "greenfield_task_step",
            "labourers",
            "max_attempts",
            "max_closed_to_analyse_for_duration",
            "max_simultaneous_invocations",
            "ecology_config",
        ],
    );
    if let Some(d) = doc.get_mut("dynamo_db_config") {
        drop_nulls(
            d,
            &[
                "table_name",
                "index_greenfield",
                "row_mapper",
                "required_fields",
                "field_names",
            ],
        );
    }
    if let Some(e) = doc.get_mut("ecology_config") {
        drop_nulls(e, &["default_metric_values"]);
    }
}

/// The config documents an essential is assembled from, as read from the config source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigDocuments {
    /// `sosw_essential_config`, when it exists.
    pub essential: Option<Value>,
    /// `<function_name>_config`, when it exists.
    pub own: Option<Value>,
    /// A custom config (the `--config` file of the CLI, a test's override).
    pub custom: Option<Value>,
}

/// The `ecology_config` defaults of Python sosw's EcologyManager.
fn default_ecology_config() -> Value {
    serde_json::to_value(EcologyConfig::default()).expect("config serializes")
}

/// The effective config an essential runs with, assembled from its documents exactly as Python
/// sosw 0.7.51 does (see the module documentation), except that lists replace.
///
/// `defaults` is the essential's own defaults layer (e.g. `OrchestratorConfig::defaults()`); its
/// `task_config`, when present, is the TaskManager's defaults layer (by default
/// [`default_task_config`]) and goes *under* everything the documents say, as in Python. The
/// result's `task_config` is what the TaskManager runs with and `task_config.ecology_config` what
/// the EcologyManager runs with. Pure: `sosw config diff` shows this.
pub fn effective_config(defaults: &Value, documents: &ConfigDocuments) -> Result<Value, ConfigError> {
    let check = |name: &str, v: &Option<Value>| -> Result<Value, ConfigError> {
        match v {
            None | Some(Value::Null) => Ok(Value::Object(Map::new())),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(other) => Err(ConfigError::Shape {
                name: name.into(),
                path: ".".into(),
                reason: format!("expected a JSON object, found {}", kind(other)),
            }),
        }
    };
    let essential = check("sosw_essential_config", &documents.essential)?;
    let own = check("own config", &documents.own)?;
    let custom = check("custom config", &documents.custom)?;
    let mut defaults = check("defaults", &Some(defaults.clone()))?;
    let mut task_base = match defaults
        .as_object_mut()
        .and_then(|d| d.shift_remove("task_config"))
    {
        Some(Value::Object(m)) => Value::Object(m),
        _ => default_task_config(),
    };
    let ecology_base = match task_base
        .as_object_mut()
        .and_then(|d| d.shift_remove("ecology_config"))
    {
        Some(Value::Object(m)) => Value::Object(m),
        _ => default_ecology_config(),
    };

    // 1. The essential's document.
    let mut doc = Value::Object(Map::new());
    for layer in [&essential, &defaults, &own, &custom] {
        merge(&mut doc, layer);
    }

    // 2. The TaskManager's: its defaults, the essential's own document, the essential's task_config.
    let mut task = task_base;
    merge(&mut task, &own);
    match doc.get("task_config") {
        None | Some(Value::Null) => {}
        Some(tc @ Value::Object(_)) => merge(&mut task, tc),
        Some(other) => {
            return Err(ConfigError::Shape {
                name: "task_config".into(),
                path: "task_config".into(),
                reason: format!("expected a JSON object, found {}", kind(other)),
            })
        }
    }

    // 3. The EcologyManager's: its defaults, the essential's own document, task_config.ecology_config.
    let mut ecology = ecology_base;
    merge(&mut ecology, &own);
    if let Some(e @ Value::Object(_)) = task.get("ecology_config") {
        let e = e.clone();
        merge(&mut ecology, &e);
    }
    // The own document's keys reach the ecology config (as in Python) but must not nest another
    // copy of task settings in it.
    if let Value::Object(m) = &mut ecology {
        m.shift_remove("task_config");
    }
    normalize_task_config(&mut task);
    // Python builds the MetaHandler with `custom_config or {}`: a falsy `meta_handler_config`
    // (`null`, `{}`, `0`, `""`, ...) means its defaults.
    // A `null` meta table (or table name) fails Python's DynamoDbClient, which the MetaHandler
    // catches: it then writes no rows. Here: rows are only logged.
    if let Value::Object(m) = &mut doc {
        if m.get("meta_handler_config").is_some_and(falsy) {
            m.shift_remove("meta_handler_config");
        }
        if let Some(Value::Object(meta)) = m.get_mut("meta_handler_config") {
            let table = meta.get("dynamo_db_config");
            if table.is_some_and(Value::is_null)
                || table
                    .and_then(|t| t.get("table_name"))
                    .is_some_and(Value::is_null)
            {
                meta.shift_remove("dynamo_db_config");
                meta.insert("write_meta_to_ddb".into(), Value::Bool(false));
            }
        }
    }
    if let Value::Object(m) = &mut task {
        m.insert("ecology_config".into(), ecology);
        // The copy of the own document's `task_config` inside the TaskManager's config is inert.
        m.shift_remove("task_config");
    }
    doc.as_object_mut()
        .expect("merged layers are an object")
        .insert("task_config".into(), task);
    Ok(doc)
}

/// [`effective_config`], deserialized into the essential's typed config.
pub fn assemble_effective<T: DeserializeOwned>(
    name: &str,
    defaults: &Value,
    documents: &ConfigDocuments,
) -> Result<T, ConfigError> {
    from_value(name, effective_config(defaults, documents)?)
}

/// `meta_handler_config`: the optional history table `sosw_tasks_meta`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaHandlerConfig {
    /// Write meta rows to DynamoDB (default true). When false they are only logged. Read with
    /// Python's truthiness (`null`, `0`, `""` are false; `1`, `"yes"` are true), as Python's
    /// `if config['write_meta_to_ddb']` does.
    #[serde(deserialize_with = "lenient::truthy")]
    pub write_meta_to_ddb: bool,
    /// The table: only `table_name` is used (default `sosw_tasks_meta`).
    pub dynamo_db_config: MetaTableConfig,
}

impl Default for MetaHandlerConfig {
    fn default() -> Self {
        Self {
            write_meta_to_ddb: true,
            dynamo_db_config: MetaTableConfig::default(),
        }
    }
}

/// The meta table of [`MetaHandlerConfig`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaTableConfig {
    /// Default `sosw_tasks_meta`.
    pub table_name: String,
    /// Other keys of the original (row_mapper, ...), kept but unused.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for MetaTableConfig {
    fn default() -> Self {
        Self {
            table_name: "sosw_tasks_meta".into(),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_python_sosw() {
        let c = TaskConfig::default();
        assert_eq!(c.dynamo_db_config.table_name, "sosw_tasks");
        assert_eq!(c.dynamo_db_config.index_greenfield, "sosw_tasks_greenfield");
        assert_eq!(c.sosw_closed_tasks_table, "sosw_closed_tasks");
        assert_eq!(
            c.sosw_closed_tasks_labourer_status_index,
            "labourer_task_status_with_time"
        );
        assert_eq!(c.sosw_retry_tasks_table, "sosw_retry_tasks");
        assert_eq!(c.sosw_retry_tasks_greenfield_index, "labourer_id_greenfield");
        assert_eq!(c.greenfield_invocation_delta, 31_557_600);
        assert_eq!(c.greenfield_task_step, 1000);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.max_closed_to_analyse_for_duration, 10);
        assert_eq!(c.max_simultaneous_invocations, 1);
        assert_eq!(c.dynamo_db_config.row_mapper["payload"], "S");
        assert_eq!(c.ecology_config.default_metric_values["Period"], 60);
        assert_eq!(
            c.ecology_config.default_metric_values["MetricAggregationTimeSlice"],
            300
        );
    }

    #[test]
    fn accepts_the_documented_python_config_unchanged() {
        let doc = json!({
            "dynamo_db_config": {
                "row_mapper": {"task_id": "S", "labourer_id": "S", "greenfield": "N", "attempts": "N",
                               "closed_at": "N", "completed_at": "N", "desired_launch_time": "N",
                               "arn": "S", "payload": "S"},
                "required_fields": ["task_id", "labourer_id", "created_at", "greenfield"],
                "table_name": "sosw_tasks",
                "index_greenfield": "sosw_tasks_greenfield",
                "field_names": {"task_id": "task_id", "labourer_id": "labourer_id", "greenfield": "greenfield"}
            },
            "sosw_closed_tasks_table": "sosw_closed_tasks",
            "sosw_retry_tasks_table": "sosw_retry_tasks",
            "sosw_retry_tasks_greenfield_index": "labourer_id_greenfield",
            "ecology_config": {},
            "labourers": {
                "some_function": {
                    "arn": "arn:aws:lambda:us-west-2:737060422660:function:some_function",
                    "max_simultaneous_invocations": 10,
                    "health_metrics": {
                        "SomeDBCPU": {
                            "details": {"Name": "CPUUtilization", "Namespace": "AWS/RDS", "Period": 60,
                                        "Statistics": ["Average"],
                                        "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "YOUR-DB"}]},
                            "feelings": {"3": 50, "4": 25},
                            "feeling_comparison_operator": "<="
                        }
                    }
                }
            },
            "max_attempts_some_function": 5
        });
        let c = TaskConfig::from_user(&doc).unwrap();
        let l = &c.labourers["some_function"];
        assert_eq!(l.max_simultaneous_invocations, Some(10));
        let m = &l.health_metrics["SomeDBCPU"];
        assert_eq!(m.feelings[&3], 50.0);
        assert_eq!(m.feeling_comparison_operator, ComparisonOperator::Le);
        assert_eq!(c.max_attempts_for("some_function"), 5);
        assert_eq!(c.max_attempts_for("other"), 3);
        // Defaults survive a partial user layer: row_mapper merged, created_at kept.
        assert_eq!(c.dynamo_db_config.row_mapper["created_at"], "N");
    }

    #[test]
    fn python_operator_names_are_accepted() {
        for (name, op) in [
            ("le", ComparisonOperator::Le),
            ("lt", ComparisonOperator::Lt),
            ("ge", ComparisonOperator::Ge),
            ("gt", ComparisonOperator::Gt),
            ("eq", ComparisonOperator::Eq),
            ("ne", ComparisonOperator::Ne),
            (">", ComparisonOperator::Gt),
            ("!=", ComparisonOperator::Ne),
            ("__le__", ComparisonOperator::Le),
            ("__lt__", ComparisonOperator::Lt),
            ("__ge__", ComparisonOperator::Ge),
            ("__gt__", ComparisonOperator::Gt),
            ("__eq__", ComparisonOperator::Eq),
            ("__ne__", ComparisonOperator::Ne),
        ] {
            let parsed: ComparisonOperator = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(parsed, op);
        }
    }

    #[test]
    fn python_valid_numbers_and_nulls_load() {
        let c = TaskConfig::from_user(&json!({
            "max_attempts": 5.0,
            "greenfield_task_step": 1000.0,
            "max_simultaneous_invocations": null,
            "sosw_retry_tasks_table": null,
            "max_attempts_a": null,
            "max_attempts_b": 7.0,
            "labourers": {
                "a": {"max_simultaneous_invocations": 10.0, "max_duration": 600.0, "duration": null},
                "b": {"max_simultaneous_invocations": null, "health_metrics": {"m": {
                    "details": {}, "feelings": {"3": 50.0, "4": 25}, "feeling_comparison_operator": "__le__"}}}
            }
        }))
        .unwrap();
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.greenfield_task_step, 1000);
        assert_eq!(c.max_simultaneous_invocations, 1, "null takes the default");
        assert_eq!(c.sosw_retry_tasks_table, "sosw_retry_tasks");
        assert_eq!(
            c.max_attempts_for("a"),
            5,
            "null max_attempts_<id> falls back, as Python's `or`"
        );
        assert_eq!(c.max_attempts_for("b"), 7);
        assert_eq!(c.labourers["a"].max_simultaneous_invocations, Some(10));
        assert_eq!(c.labourers["a"].max_duration, Some(600));
        assert_eq!(c.labourers["a"].duration, None);
        assert_eq!(c.labourers["b"].max_simultaneous_invocations, None);
        let m = &c.labourers["b"].health_metrics["m"];
        assert_eq!(m.feelings[&4], 25.0);
        assert_eq!(m.feeling_comparison_operator, ComparisonOperator::Le);

        let err = TaskConfig::from_user(&json!({"max_attempts": 2.5}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_attempts") && err.contains("2.5"), "{err}");
        let err = TaskConfig::from_user(&json!({"labourers": {"w": {"max_duration": "60"}}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("labourers.w.max_duration"), "{err}");
    }

    #[test]
    fn integers_beyond_64_bits_in_kept_keys_do_not_break_loading() {
        let c = TaskConfig::from_user(&serde_json::from_str(r#"{"custom": 18446744073709551623}"#).unwrap())
            .unwrap();
        assert_eq!(c.extra["custom"].to_string(), "18446744073709551623");
    }

    fn docs(essential: Value, own: Value) -> ConfigDocuments {
        ConfigDocuments {
            essential: Some(essential),
            own: Some(own),
            custom: None,
        }
    }

    #[test]
    fn essential_task_config_goes_over_the_task_manager_defaults() {
        let defaults = json!({"task_config": default_task_config(), "retry_tasks_limit": 20});
        let eff = effective_config(
            &defaults,
            &docs(
                json!({"task_config": {
                    "dynamo_db_config": {"table_name": "qa_sosw_tasks",
                                         "row_mapper": {"task_id": "S", "labourer_id": "S", "greenfield": "N"}},
                    "sosw_closed_tasks_table": "qa_sosw_closed_tasks",
                    "max_attempts": 5,
                    "greenfield_task_step": 10,
                    "ecology_config": {"default_metric_values": {"Period": 120}},
                    "labourers": {"w": {}}
                }}),
                json!({"retry_tasks_limit": 7, "task_config": {"max_attempts": 6}}),
            ),
        )
        .unwrap();
        let tc = &eff["task_config"];
        assert_eq!(tc["dynamo_db_config"]["table_name"], "qa_sosw_tasks");
        assert_eq!(tc["sosw_closed_tasks_table"], "qa_sosw_closed_tasks");
        assert_eq!(tc["sosw_retry_tasks_table"], "sosw_retry_tasks");
        assert_eq!(tc["max_attempts"], 6, "the own document beats the essential one");
        assert_eq!(tc["greenfield_task_step"], 10);
        assert_eq!(eff["retry_tasks_limit"], 7);
        // The own document's top-level keys reach the TaskManager, as in Python.
        assert_eq!(tc["retry_tasks_limit"], 7);
        assert_eq!(tc["ecology_config"]["default_metric_values"]["Period"], 120);
        assert_eq!(
            tc["ecology_config"]["default_metric_values"]["MetricAggregationTimeSlice"],
            300
        );
        // Row mapper: the defaults' order, user keys over them: created_at stays third.
        let keys: Vec<&String> = tc["dynamo_db_config"]["row_mapper"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(keys[..3], ["task_id", "labourer_id", "created_at"]);
        let c: TaskConfig = from_value("t", tc.clone()).unwrap();
        assert_eq!(c.max_attempts, 6);
        assert_eq!(c.dynamo_db_config.table_name, "qa_sosw_tasks");
    }

    #[test]
    fn a_falsy_or_null_meta_handler_config_loads_as_python_reads_it() {
        #[derive(Deserialize)]
        struct Essential {
            #[serde(default)]
            meta_handler_config: MetaHandlerConfig,
        }
        let load = |own: Value| -> MetaHandlerConfig {
            let eff = effective_config(&json!({}), &docs(json!({}), own)).unwrap();
            from_value::<Essential>("t", eff).unwrap().meta_handler_config
        };
        // `MetaHandler(custom_config=None or {})`: the defaults.
        for falsy in [json!(null), json!({}), json!(0), json!(""), json!([])] {
            let m = load(json!({ "meta_handler_config": falsy }));
            assert!(m.write_meta_to_ddb, "{falsy}");
            assert_eq!(m.dynamo_db_config.table_name, "sosw_tasks_meta", "{falsy}");
        }
        // `if config['write_meta_to_ddb']`: Python's truthiness.
        for (value, writes) in [
            (json!(null), false),
            (json!(0), false),
            (json!(""), false),
            (json!(1), true),
            (json!("yes"), true),
            (json!(true), true),
        ] {
            let m = load(json!({"meta_handler_config": {"write_meta_to_ddb": value}}));
            assert_eq!(m.write_meta_to_ddb, writes, "{value}");
        }
        // A null table: Python's DynamoDbClient fails, the MetaHandler catches it, no rows written.
        for table in [json!(null), json!({"table_name": null})] {
            let m = load(json!({"meta_handler_config": {"dynamo_db_config": table}}));
            assert!(!m.write_meta_to_ddb, "{table}");
        }
        // The shared document's meta table survives an own document that says nothing of it.
        let eff = effective_config(
            &json!({}),
            &docs(
                json!({"meta_handler_config": {"dynamo_db_config": {"table_name": "qa_sosw_tasks_meta"}}}),
                json!({"meta_handler_config": {}}),
            ),
        )
        .unwrap();
        let m = from_value::<Essential>("t", eff).unwrap().meta_handler_config;
        assert_eq!(m.dynamo_db_config.table_name, "qa_sosw_tasks_meta");
    }

    #[test]
    fn labourer_max_attempts_beats_per_labourer_key_and_default() {
        let c = TaskConfig::from_user(&json!({
            "labourers": {"a": {"max_attempts": 7}},
            "max_attempts_a": 5,
            "max_attempts": 2
        }))
        .unwrap();
        assert_eq!(c.max_attempts_for("a"), 7);
    }

    #[test]
    fn wrong_shape_names_the_key_and_expectation() {
        let err =
            TaskConfig::from_user(&json!({"labourers": {"w": {"max_simultaneous_invocations": "ten"}}}))
                .unwrap_err()
                .to_string();
        assert!(err.contains("labourers.w.max_simultaneous_invocations"), "{err}");
        assert!(err.contains("expected an integer"), "{err}");

        let err = TaskConfig::from_user(&json!({"greenfield_task_step": [1]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("greenfield_task_step"), "{err}");

        let err = TaskConfig::from_user(&json!({"max_attempts_w": "x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_attempts_w"), "{err}");

        let err = TaskConfig::from_user(&json!({"labourers": {"w": {"health_metrics": {"m": {
            "details": {}, "feelings": {"3": 1}, "feeling_comparison_operator": "~"}}}}}))
        .unwrap_err()
        .to_string();
        assert!(err.contains("feeling_comparison_operator"), "{err}");
    }

    #[test]
    fn merge_is_recursive_for_maps_and_replaces_lists() {
        let mut base = json!({"a": {"x": 1, "y": 2}, "l": [1, 2], "s": "keep"});
        merge(&mut base, &json!({"a": {"y": 3, "z": 4}, "l": [9]}));
        assert_eq!(
            base,
            json!({"a": {"x": 1, "y": 3, "z": 4}, "l": [9], "s": "keep"})
        );
    }

    #[test]
    fn assemble_applies_layers_in_order() {
        #[derive(Deserialize)]
        struct C {
            v: u32,
            w: u32,
        }
        let c: C = assemble(
            "t",
            &[
                json!({"v": 1, "w": 1}),
                json!({"v": 2}),
                Value::Null,
                json!({"w": 3}),
            ],
        )
        .unwrap();
        assert_eq!((c.v, c.w), (2, 3));
        let err = assemble::<C>("t", &[json!([1])]).err().unwrap().to_string();
        assert!(err.contains("expected a JSON object"), "{err}");
    }

    #[test]
    fn field_names_remap_attributes() {
        let c = TaskConfig::from_user(&json!({"dynamo_db_config": {"field_names": {"greenfield": "gf"}}}))
            .unwrap();
        assert_eq!(c.field("greenfield"), "gf");
        assert_eq!(c.field("task_id"), "task_id");
    }

    fn timing(doc: serde_json::Value) -> Result<(), String> {
        let cfg = TaskConfig::from_user(&doc).map_err(|e| e.to_string())?;
        validate_timing(&cfg).map_err(|e| e.to_string())
    }

    #[test]
    fn a_delta_that_lets_a_running_task_look_queued_is_refused_naming_the_key() {
        let err = timing(
            serde_json::json!({"greenfield_invocation_delta": 2, "labourers": {"w": {"max_duration": 900}}}),
        )
        .unwrap_err();
        assert!(
            err.contains("greenfield_invocation_delta") && err.contains("`w`"),
            "{err}"
        );
        // Exactly longest run + cooldown is still too short; one more second is enough.
        let err = timing(serde_json::json!({"greenfield_invocation_delta": 1200, "labourers": {"w": {}}}))
            .unwrap_err();
        assert!(err.contains("1200"), "{err}");
        timing(serde_json::json!({"greenfield_invocation_delta": 1201, "labourers": {"w": {}}})).unwrap();
        // A longer configured run or cooldown raises the bar.
        assert!(timing(serde_json::json!({"greenfield_invocation_delta": 5000,
            "labourers": {"w": {"duration": 4000, "cooldown": 1000}}}))
        .is_err());
        // The default (a year) passes.
        timing(serde_json::json!({"labourers": {"w": {}}})).unwrap();
    }

    #[test]
    fn out_of_range_steps_deltas_and_durations_are_refused_naming_the_key() {
        for (doc, key) in [
            (
                serde_json::json!({"greenfield_invocation_delta": i64::MAX}),
                "greenfield_invocation_delta",
            ),
            (
                serde_json::json!({"greenfield_task_step": 0}),
                "greenfield_task_step",
            ),
            (
                serde_json::json!({"greenfield_task_step": i64::MAX}),
                "greenfield_task_step",
            ),
            (
                serde_json::json!({"labourers": {"w": {"duration": -5}}}),
                "labourers.w.duration",
            ),
            (
                serde_json::json!({"labourers": {"w": {"cooldown": -1}}}),
                "labourers.w.cooldown",
            ),
            (
                serde_json::json!({"labourers": {"w": {"max_duration": i64::MAX}}}),
                "labourers.w.max_duration",
            ),
        ] {
            let err = timing(doc.clone()).unwrap_err();
            assert!(err.contains(key), "{doc}: {err}");
        }
    }
}
