//! The ecology: how healthy a labourer's environment is, from CloudWatch metrics, and how many
//! of its tasks are running. Both are measured once per run and cached.
//!
//! A labourer's health is the worst status over its `health_metrics`, 4 (High) with none. For
//! each metric the value is compared with the `feelings` targets from the best status down, using
//! `feeling_comparison_operator`; the first target the value satisfies gives the status, else 0.
//!
//! Differences from the original: the documented symbols (`<=`, ...) work as well as Python's
//! operator names; feelings out of order are a config error at start-up rather than mid-run; a
//! metric with no datapoints counts as 0 (Bad) with a warning, so a broken metric never lets the
//! orchestrator run at full speed (the original crashes on it).

use crate::clock::Clock;
use crate::config::{EcologyConfig, HealthMetric};
use crate::error::{AwsError, EcologyError, TaskError};
use crate::labourer::{EcoStatus, Labourer};
use crate::task::TaskManager;
use aws_sdk_cloudwatch::types::{Dimension, StandardUnit, Statistic};
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// The status a metric value earns.
pub fn health_for_value(value: f64, metric: &HealthMetric) -> EcoStatus {
    for (status, target) in metric.feelings.iter().rev() {
        if metric.feeling_comparison_operator.apply(value, *target) {
            return EcoStatus(*status);
        }
    }
    EcoStatus::BAD
}

/// The default `invocation_number_coefficient` of the orchestrator: share of
/// `max_simultaneous_invocations` invoked at each health.
pub fn default_invocation_coefficients() -> std::collections::BTreeMap<u8, f64> {
    [(0, 0.0), (1, 0.0), (2, 0.5), (3, 0.75), (4, 1.0)]
        .into_iter()
        .collect()
}

/// How many tasks to invoke now: `floor(max × coefficient[health]) − running`, never below 0.
pub fn desired_invocations(
    max_simultaneous: u32,
    coefficients: &std::collections::BTreeMap<u8, f64>,
    health: EcoStatus,
    running: u64,
) -> u64 {
    let coefficient = coefficients.get(&health.0).copied().unwrap_or(0.0);
    let desired = (f64::from(max_simultaneous) * coefficient).floor().max(0.0) as u64;
    desired.saturating_sub(running)
}

/// Where metric values come from.
pub trait MetricSource: Send + Sync + std::fmt::Debug {
    /// The aggregated value of the metric over its time slice ending at `now`, `None` without
    /// datapoints. `details` already has the defaults filled in.
    fn fetch<'a>(
        &'a self,
        details: &'a Map<String, Value>,
        now: f64,
    ) -> BoxFuture<'a, Result<Option<f64>, EcologyError>>;
}

/// CloudWatch GetMetricStatistics.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics(pub aws_sdk_cloudwatch::Client);

fn metric_name(details: &Map<String, Value>) -> String {
    details
        .get("MetricName")
        .or_else(|| details.get("Name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string()
}

impl MetricSource for CloudWatchMetrics {
    fn fetch<'a>(
        &'a self,
        details: &'a Map<String, Value>,
        now: f64,
    ) -> BoxFuture<'a, Result<Option<f64>, EcologyError>> {
        Box::pin(async move {
            let name = metric_name(details);
            let bad = |reason: &str| EcologyError::BadMetric {
                metric: name.clone(),
                reason: reason.into(),
            };
            let namespace = details
                .get("Namespace")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`Namespace` is required"))?;
            let statistic = statistic_of(details).map_err(|r| bad(&r))?;
            let period = details
                .get("Period")
                .and_then(Value::as_i64)
                .ok_or_else(|| bad("`Period` must be an integer"))?;
            let slice = details
                .get("MetricAggregationTimeSlice")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad("`MetricAggregationTimeSlice` must be a number"))?;
            let mut req = self
                .0
                .get_metric_statistics()
                .namespace(namespace)
                .metric_name(&name)
                .period(period as i32)
                .statistics(Statistic::from(statistic.as_str()))
                .start_time(aws_smithy_types::DateTime::from_secs_f64(now - slice))
                .end_time(aws_smithy_types::DateTime::from_secs_f64(now));
            for d in details
                .get("Dimensions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(dn), Some(dv)) = (
                    d.get("Name").and_then(Value::as_str),
                    d.get("Value").and_then(Value::as_str),
                ) else {
                    return Err(bad("each of `Dimensions` needs string `Name` and `Value`"));
                };
                req = req.dimensions(Dimension::builder().name(dn).value(dv).build());
            }
            if let Some(unit) = details.get("Unit").and_then(Value::as_str) {
                req = req.unit(StandardUnit::from(unit));
            }
            let out = req.send().await.map_err(|e| EcologyError::CloudWatch {
                metric: name.clone(),
                namespace: namespace.to_string(),
                source: AwsError::from_sdk(e),
            })?;
            let values: Vec<f64> = out
                .datapoints()
                .iter()
                .filter_map(|d| match statistic.as_str() {
                    "Average" => d.average,
                    "Maximum" => d.maximum,
                    "Minimum" => d.minimum,
                    "Sum" => d.sum,
                    _ => d.sample_count,
                })
                .collect();
            Ok(aggregate(&statistic, &values))
        })
    }
}

fn statistic_of(details: &Map<String, Value>) -> Result<String, String> {
    let stats = details
        .get("Statistics")
        .and_then(Value::as_array)
        .ok_or("`Statistics` must be a list")?;
    if stats.len() != 1 {
        return Err("exactly one statistic is supported in `Statistics`".into());
    }
    let s = stats[0].as_str().ok_or("`Statistics` must hold strings")?;
    match s {
        "Average" | "Maximum" | "Minimum" | "Sum" | "SampleCount" => Ok(s.to_string()),
        other => Err(format!(
            "unsupported statistic `{other}` (Average, Maximum, Minimum, Sum, SampleCount)"
        )),
    }
}

/// Combine datapoints as the original: mean of averages, max of maxima, min of minima
/// (and sums of Sum / SampleCount).
pub fn aggregate(statistic: &str, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match statistic {
        "Average" => values.iter().sum::<f64>() / values.len() as f64,
        "Maximum" => values.iter().cloned().fold(f64::MIN, f64::max),
        "Minimum" => values.iter().cloned().fold(f64::MAX, f64::min),
        _ => values.iter().sum(),
    })
}

/// One metric definition's value for the run: filled by the first caller, awaited by the others.
type MetricCell = Arc<tokio::sync::OnceCell<Option<f64>>>;

/// Measures labourers' health and running tasks, caching both for the run.
///
/// No lock is held across an `.await`: the metric cache maps each distinct metric definition to
/// its own `OnceCell`, taken from the map under a short synchronous lock and filled outside
/// it, so labourers processed concurrently fetch their metrics concurrently, and callers wanting
/// the same metric share one fetch.
#[derive(Debug)]
pub struct EcologyManager {
    source: Arc<dyn MetricSource>,
    config: EcologyConfig,
    clock: Arc<dyn Clock>,
    metrics: Mutex<HashMap<String, MetricCell>>,
    running: Mutex<HashMap<String, u64>>,
}

impl EcologyManager {
    /// An ecology over a metric source.
    pub fn new(source: Arc<dyn MetricSource>, config: EcologyConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            source,
            config,
            clock,
            metrics: Default::default(),
            running: Default::default(),
        }
    }

    /// Forget cached metrics and running counts (call at the start of each run).
    pub async fn reset(&self) {
        self.metrics.lock().expect("not poisoned").clear();
        self.running.lock().expect("not poisoned").clear();
    }

    fn with_defaults(&self, details: &Map<String, Value>) -> Map<String, Value> {
        let mut params = details.clone();
        for (k, v) in &self.config.default_metric_values {
            params.entry(k.clone()).or_insert_with(|| v.clone());
        }
        params
    }

    /// The value of a metric, fetched at most once per run for each distinct definition.
    pub async fn metric_value(&self, details: &Map<String, Value>) -> Result<Option<f64>, EcologyError> {
        let params = self.with_defaults(details);
        let key = canonical(&Value::Object(params.clone()));
        let cell = self
            .metrics
            .lock()
            .expect("not poisoned")
            .entry(key)
            .or_default()
            .clone();
        // A failed fetch leaves the cell empty: the next caller tries again.
        let value = cell
            .get_or_try_init(|| async {
                let value = self.source.fetch(&params, self.clock.now()).await?;
                info!(metric = %metric_name(&params), ?value, "ecology metric fetched");
                Ok::<_, EcologyError>(value)
            })
            .await?;
        Ok(*value)
    }

    /// The labourer's health: the worst over its metrics, High with none.
    pub async fn labourer_health(&self, labourer: &Labourer) -> Result<EcoStatus, EcologyError> {
        let mut health = EcoStatus::HIGH;
        for (name, metric) in &labourer.config.health_metrics {
            let value =
                self.metric_value(&metric.details)
                    .await
                    .map_err(|e| EcologyError::LabourerHealth {
                        labourer: labourer.id.clone(),
                        metric: name.clone(),
                        source: Box::new(e),
                    })?;
            let status = match value {
                Some(value) => health_for_value(value, metric),
                None => {
                    warn!(labourer_id = %labourer.id, metric = %name, "no datapoints for health metric; counting it as Bad");
                    EcoStatus::BAD
                }
            };
            health = health.min(status);
        }
        Ok(health)
    }

    /// Tasks of the labourer presumed running, counted once per run.
    pub async fn running_tasks(&self, labourer: &Labourer, tasks: &TaskManager) -> Result<u64, TaskError> {
        if let Some(n) = self.running.lock().expect("not poisoned").get(&labourer.id) {
            return Ok(*n);
        }
        let n = tasks.running_count(labourer).await?;
        Ok(*self
            .running
            .lock()
            .expect("not poisoned")
            .entry(labourer.id.clone())
            .or_insert(n))
    }

    /// Add to the cached running count after invoking tasks (no-op until it was counted).
    pub fn add_running_tasks(&self, labourer_id: &str, count: u64) {
        if let Some(n) = self.running.lock().expect("not poisoned").get_mut(labourer_id) {
            *n += count;
        }
    }
}

/// A JSON text with object keys sorted, to identify a metric definition.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{:?}:{}", k, canonical(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate_feelings, ComparisonOperator};
    use serde_json::json;

    fn metric(op: &str, feelings: Value) -> HealthMetric {
        serde_json::from_value(
            json!({"details": {}, "feelings": feelings, "feeling_comparison_operator": op}),
        )
        .unwrap()
    }

    #[test]
    fn health_follows_feelings_from_best_down() {
        let m = metric("<=", json!({"3": 50, "4": 25}));
        assert_eq!(health_for_value(10.0, &m), EcoStatus::HIGH);
        assert_eq!(health_for_value(25.0, &m), EcoStatus::HIGH);
        assert_eq!(health_for_value(40.0, &m), EcoStatus::GOOD);
        assert_eq!(health_for_value(70.0, &m), EcoStatus::BAD);
    }

    #[test]
    fn greater_than_feelings_work_too() {
        // The original rejects every `>=` configuration (it compares the first target with 0).
        let m = metric("ge", json!({"2": 100, "4": 500}));
        validate_feelings(&m).unwrap();
        assert_eq!(health_for_value(600.0, &m), EcoStatus::HIGH);
        assert_eq!(health_for_value(200.0, &m), EcoStatus::MODERATE);
        assert_eq!(health_for_value(50.0, &m), EcoStatus::BAD);
    }

    #[test]
    fn feelings_out_of_order_are_rejected() {
        let m = metric("<=", json!({"3": 25, "4": 50}));
        let err = validate_feelings(&m).unwrap_err();
        assert!(err.contains("status 3"), "{err}");
        assert!(validate_feelings(&metric("<", json!({"9": 1}))).is_err());
        assert!(validate_feelings(&metric("<", json!({}))).is_err());
        assert_eq!(m.feeling_comparison_operator, ComparisonOperator::Le);
    }

    #[test]
    fn desired_invocations_follow_health_and_running_tasks() {
        let c = default_invocation_coefficients();
        assert_eq!(desired_invocations(10, &c, EcoStatus::MODERATE, 0), 5);
        assert_eq!(desired_invocations(10, &c, EcoStatus::GOOD, 0), 7);
        assert_eq!(desired_invocations(10, &c, EcoStatus::HIGH, 3), 7);
        assert_eq!(desired_invocations(10, &c, EcoStatus::HIGH, 30), 0);
        assert_eq!(desired_invocations(10, &c, EcoStatus::POOR, 0), 0);
    }

    #[test]
    fn aggregation_by_statistic() {
        assert_eq!(aggregate("Average", &[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(aggregate("Maximum", &[1.0, 7.0, 6.0]), Some(7.0));
        assert_eq!(aggregate("Minimum", &[4.0, 2.0, 6.0]), Some(2.0));
        assert_eq!(aggregate("Average", &[]), None);
    }

    #[test]
    fn statistics_must_be_a_single_supported_one() {
        let d = |v: Value| v.as_object().cloned().unwrap();
        assert!(statistic_of(&d(json!({"Statistics": ["Average", "Maximum"]}))).is_err());
        assert!(statistic_of(&d(json!({"Statistics": ["p99"]}))).is_err());
        assert_eq!(
            statistic_of(&d(json!({"Statistics": ["Maximum"]}))).unwrap(),
            "Maximum"
        );
    }

    /// A metric source whose fetches wait until `expected` fetches are in flight at once, so the
    /// test only completes when they overlap; it counts fetches and the most in flight.
    #[derive(Debug)]
    struct OverlapGate {
        expected: usize,
        in_flight: Mutex<usize>,
        peak: Mutex<usize>,
        fetches: Mutex<usize>,
        all_in: tokio::sync::Notify,
    }

    impl OverlapGate {
        fn new(expected: usize) -> Arc<Self> {
            Arc::new(Self {
                expected,
                in_flight: Mutex::new(0),
                peak: Mutex::new(0),
                fetches: Mutex::new(0),
                all_in: tokio::sync::Notify::new(),
            })
        }
    }

    impl MetricSource for OverlapGate {
        fn fetch<'a>(
            &'a self,
            _: &'a Map<String, Value>,
            _: f64,
        ) -> BoxFuture<'a, Result<Option<f64>, EcologyError>> {
            Box::pin(async move {
                *self.fetches.lock().unwrap() += 1;
                let now = {
                    let mut n = self.in_flight.lock().unwrap();
                    *n += 1;
                    let mut peak = self.peak.lock().unwrap();
                    *peak = (*peak).max(*n);
                    *n
                };
                let released = self.all_in.notified();
                if now >= self.expected {
                    self.all_in.notify_waiters();
                } else {
                    // Serialised fetches never reach `expected`: the paused clock then jumps to this
                    // guard, and the peak stays below it (the test fails instead of hanging).
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(3600), released).await;
                }
                *self.in_flight.lock().unwrap() -= 1;
                Ok(Some(10.0))
            })
        }
    }

    fn labourer_with_metric(id: &str, metric_name: &str) -> Labourer {
        let cfg = crate::config::TaskConfig::from_user(&json!({"labourers": {id: {"health_metrics": {"m": {
            "details": {"Namespace": "AWS/Lambda", "MetricName": metric_name},
            "feelings": {"3": 50, "4": 25}, "feeling_comparison_operator": "<="}}}}}))
        .unwrap();
        Labourer::register(id, &cfg.labourers[id], &cfg, 0)
    }

    #[tokio::test(start_paused = true)]
    async fn two_labourers_fetch_their_health_metrics_at_the_same_time() {
        let gate = OverlapGate::new(2);
        let eco = EcologyManager::new(
            gate.clone(),
            EcologyConfig::default(),
            Arc::new(crate::ManualClock::at(0.0)),
        );
        let (a, b) = (
            labourer_with_metric("a", "Errors"),
            labourer_with_metric("b", "Throttles"),
        );
        let (ha, hb) = tokio::join!(eco.labourer_health(&a), eco.labourer_health(&b));
        assert_eq!((ha.unwrap(), hb.unwrap()), (EcoStatus::HIGH, EcoStatus::HIGH));
        assert_eq!(
            *gate.peak.lock().unwrap(),
            2,
            "the two labourers' fetches did not overlap"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn labourers_sharing_a_metric_share_one_fetch() {
        let gate = OverlapGate::new(1);
        let eco = EcologyManager::new(
            gate.clone(),
            EcologyConfig::default(),
            Arc::new(crate::ManualClock::at(0.0)),
        );
        let (a, b) = (
            labourer_with_metric("a", "Errors"),
            labourer_with_metric("b", "Errors"),
        );
        let (ha, hb) = tokio::join!(eco.labourer_health(&a), eco.labourer_health(&b));
        assert_eq!((ha.unwrap(), hb.unwrap()), (EcoStatus::HIGH, EcoStatus::HIGH));
        assert_eq!(*gate.fetches.lock().unwrap(), 1);
        eco.reset().await;
        eco.labourer_health(&a).await.unwrap();
        assert_eq!(*gate.fetches.lock().unwrap(), 2, "reset forgets the cached value");
    }

    #[test]
    fn canonical_ignores_key_order() {
        assert_eq!(
            canonical(&json!({"a": 1, "b": [1, {"y": 1, "x": 2}]})),
            canonical(&json!({"b": [1, {"x": 2, "y": 1}], "a": 1}))
        );
    }
}
