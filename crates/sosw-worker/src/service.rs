//! The tower layer: wrap a handler of typed [`Task`]s into a Lambda service that reports every
//! task's outcome to the Worker Assistant.

use crate::meta::{MetaAction, MetaWriter};
use crate::report::{assistant_event, assistant_from_env, LambdaReporter, Report, Reporter};
use crate::task::{split_event, task_id_of, Task};
use futures::future::BoxFuture;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;
use tracing::{info, warn};

/// `SOSW_TASKS_META_TABLE`: when set, the worker writes `completed` / `failed` rows there.
pub const META_TABLE_ENV: &str = "SOSW_TASKS_META_TABLE";

/// Reports tasks to the Worker Assistant (and optionally writes meta rows). Wrap a handler with
/// [`SoswLayer::layer`]:
///
/// ```no_run
/// # use sosw_worker::{Report, SoswLayer, Task};
/// # use lambda_runtime::service_fn;
/// # #[derive(serde::Deserialize)] struct Order { id: u64 }
/// # async fn handler(task: Task<Order>) -> Result<Report, lambda_runtime::Error> { Ok(Report::default()) }
/// # async fn main_() -> Result<(), lambda_runtime::Error> {
/// lambda_runtime::run(SoswLayer::from_env().await.layer(service_fn(handler))).await
/// # }
/// ```
#[derive(Clone)]
pub struct SoswLayer {
    reporter: Arc<dyn Reporter>,
    meta: Option<Arc<MetaWriter>>,
}

impl fmt::Debug for SoswLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoswLayer")
            .field("meta_table", &self.meta.as_ref().map(|m| m.table().to_string()))
            .finish_non_exhaustive()
    }
}

impl SoswLayer {
    /// Report through `reporter`; no meta rows.
    pub fn new(reporter: impl Reporter + 'static) -> Self {
        Self {
            reporter: Arc::new(reporter),
            meta: None,
        }
    }

    /// From the Lambda environment: AWS config loaded once; reports to
    /// `SOSW_WORKER_ASSISTANT_LAMBDA` (default `sosw_worker_assistant`); meta rows to
    /// `SOSW_TASKS_META_TABLE` when it is set (none otherwise, as Python's Worker without
    /// `meta_handler_config`).
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let layer = Self::new(LambdaReporter::new(
            aws_sdk_lambda::Client::new(&sdk),
            &assistant_from_env(),
        ));
        match std::env::var(META_TABLE_ENV).ok().filter(|t| !t.is_empty()) {
            Some(table) => layer.with_meta(MetaWriter::new(aws_sdk_dynamodb::Client::new(&sdk), table)),
            None => layer,
        }
    }

    /// Also write `completed` / `failed` meta rows with `meta`.
    pub fn with_meta(mut self, meta: MetaWriter) -> Self {
        self.meta = Some(Arc::new(meta));
        self
    }

    /// Wrap `inner`, a service of [`Task<P>`] answering a [`Report`] (typically
    /// `service_fn(handler)` with `async fn handler(task: Task<P>) -> Result<Report, E>`), into
    /// the Lambda service to give `lambda_runtime::run`. `P` is inferred from the handler.
    pub fn layer<S, P>(&self, inner: S) -> SoswService<S, P>
    where
        S: Service<Task<P>, Response = Report>,
    {
        SoswService {
            inner,
            sosw: self.clone(),
            payload: PhantomData,
        }
    }

    /// This layer as a [`tower::Layer`](Layer) for payloads of type `P`, for composing with
    /// other layers (`ServiceBuilder::new().layer(sosw.typed::<Order>())...`).
    pub fn typed<P>(&self) -> TypedSoswLayer<P> {
        TypedSoswLayer {
            sosw: self.clone(),
            payload: PhantomData,
        }
    }

    pub(crate) fn parts(&self) -> (&dyn Reporter, Option<&MetaWriter>) {
        (self.reporter.as_ref(), self.meta.as_deref())
    }

    pub(crate) async fn settle(&self, task_id: &str, outcome: Result<&Report, &str>, context: &Context) {
        settle(
            self.reporter.as_ref(),
            self.meta.as_deref(),
            task_id,
            outcome,
            context,
        )
        .await;
    }
}

/// Tell the Worker Assistant how the task went, then write the meta row if configured and the
/// report was sent (Python writes it after a successful Invoke). Never fails: with the Worker
/// Assistant unreachable the task expires and the scavenger retries it.
pub(crate) async fn settle(
    reporter: &dyn Reporter,
    meta: Option<&MetaWriter>,
    task_id: &str,
    outcome: Result<&Report, &str>,
    context: &Context,
) {
    let (event, action) = match outcome {
        Ok(r) => (
            assistant_event("mark_task_as_completed", task_id, &r.stats, &r.result),
            MetaAction::Completed,
        ),
        Err(message) => {
            let mut result = Map::new();
            result.insert("error".into(), Value::String(message.to_string()));
            (
                assistant_event("mark_task_as_failed", task_id, &Map::new(), &result),
                MetaAction::Failed,
            )
        }
    };
    if let Err(e) = reporter.send(event).await {
        warn!(task_id, error = %e, "could not reach the Worker Assistant; the task will expire and be retried");
        return;
    }
    info!(
        task_id,
        outcome = action.as_str(),
        "task reported to the Worker Assistant"
    );
    if let Some(meta) = meta {
        if let Err(e) = meta.post(task_id, action, context).await {
            warn!(task_id, table = meta.table(), error = %crate::render_error(&e), "meta row not written");
        }
    }
}

/// [`SoswLayer`] for one payload type, as a [`tower::Layer`](Layer).
pub struct TypedSoswLayer<P> {
    sosw: SoswLayer,
    payload: PhantomData<fn(P)>,
}

impl<P> Clone for TypedSoswLayer<P> {
    fn clone(&self) -> Self {
        Self {
            sosw: self.sosw.clone(),
            payload: PhantomData,
        }
    }
}

impl<P> fmt::Debug for TypedSoswLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedSoswLayer").field(&self.sosw).finish()
    }
}

impl<S, P> Layer<S> for TypedSoswLayer<P>
where
    S: Service<Task<P>, Response = Report>,
{
    type Service = SoswService<S, P>;
    fn layer(&self, inner: S) -> Self::Service {
        self.sosw.layer(inner)
    }
}

/// The Lambda service made by [`SoswLayer::layer`]. For each event:
/// - without a non-empty string `task_id` (not from sosw): the whole event is deserialised as
///   `P` and handed over; nothing is reported;
/// - otherwise sosw's fields are taken out ([`SOSW_FIELDS`](crate::SOSW_FIELDS)), the rest is
///   deserialised as `P` and the handler runs; its [`Report`] goes to the Worker Assistant with
///   `mark_task_as_completed`, its error with `mark_task_as_failed` (`result.error`) and is
///   still returned to Lambda; a payload that does not deserialise marks the task failed with a
///   message naming the field, and is returned to Lambda as the error.
pub struct SoswService<S, P> {
    inner: S,
    sosw: SoswLayer,
    payload: PhantomData<fn(P)>,
}

impl<S: Clone, P> Clone for SoswService<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            sosw: self.sosw.clone(),
            payload: PhantomData,
        }
    }
}

impl<S, P> fmt::Debug for SoswService<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoswService")
            .field("sosw", &self.sosw)
            .finish_non_exhaustive()
    }
}

impl<S, P> Service<LambdaEvent<Value>> for SoswService<S, P>
where
    S: Service<Task<P>, Response = Report>,
    S::Error: Into<lambda_runtime::Error>,
    S::Future: Send + 'static,
    P: DeserializeOwned,
{
    type Response = Value;
    type Error = lambda_runtime::Error;
    type Future = BoxFuture<'static, Result<Value, lambda_runtime::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, event: LambdaEvent<Value>) -> Self::Future {
        let LambdaEvent { payload, context } = event;
        let task_id = task_id_of(&payload).map(str::to_string);
        let sosw = self.sosw.clone();
        match split_event::<P>(payload, context.clone()) {
            Err(e) => Box::pin(async move {
                let message = crate::render_error(&e);
                warn!(task_id = task_id.as_deref().unwrap_or(""), error = %message, "event refused");
                if let Some(id) = &task_id {
                    sosw.settle(id, Err(&message), &context).await;
                }
                Err(e.into())
            }),
            Ok(task) => {
                let running = self.inner.call(task);
                Box::pin(async move {
                    let outcome = running.await.map_err(Into::into);
                    if let Some(id) = &task_id {
                        match &outcome {
                            Ok(report) => sosw.settle(id, Ok(report), &context).await,
                            Err(e) => {
                                let message = crate::render_error(e.as_ref());
                                sosw.settle(id, Err(&message), &context).await;
                            }
                        }
                    }
                    outcome.map(|r| r.output)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::tower::ServiceExt;
    use lambda_runtime::{service_fn, Config};
    use serde::Deserialize;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records reports; refuses them all when `down`.
    #[derive(Default, Clone)]
    struct Recorder {
        seen: Arc<Mutex<Vec<Value>>>,
        down: bool,
    }
    impl Reporter for Recorder {
        fn send<'a>(&'a self, event: Value) -> BoxFuture<'a, Result<(), String>> {
            self.seen.lock().unwrap().push(event);
            let down = self.down;
            Box::pin(async move {
                if down {
                    Err("connection refused".into())
                } else {
                    Ok(())
                }
            })
        }
    }
    impl Recorder {
        fn events(&self) -> Vec<Value> {
            self.seen.lock().unwrap().clone()
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Order {
        customer: String,
        items: Vec<Item>,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Item {
        sku: String,
        qty: u32,
    }

    fn context() -> Context {
        let mut ctx = Context::default();
        ctx.request_id = "req-1".into();
        ctx.deadline = 1_900_000_000_000;
        ctx.env_config = Arc::new(Config {
            function_name: "orders_worker".into(),
            log_stream: "2026/11/24/[$LATEST]abc".into(),
            ..Config::default()
        });
        ctx
    }

    fn sosw_event(extra: Value) -> Value {
        let mut event = json!({
            "customer": "acme", "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 3}],
            "task_id": "t1", "labourer_id": "orders_worker", "greenfield": 1732412400,
            "attempts": 2, "created_at": 1732412000.5
        });
        for (k, v) in extra.as_object().unwrap() {
            event[k] = v.clone();
        }
        event
    }

    async fn count(task: Task<Order>) -> Result<Report, lambda_runtime::Error> {
        let qty: u32 = task.payload.items.iter().map(|i| i.qty).sum();
        Ok(Report::default()
            .stat("items", task.payload.items.len())
            .stat("qty", qty)
            .result("customer", task.payload.customer)
            .output(json!({"qty": qty})))
    }

    async fn call<S>(svc: S, event: Value) -> Result<Value, lambda_runtime::Error>
    where
        S: Service<LambdaEvent<Value>, Response = Value, Error = lambda_runtime::Error>,
    {
        svc.oneshot(LambdaEvent::new(event, context())).await
    }

    #[tokio::test]
    async fn the_handler_gets_the_typed_payload_with_sosw_fields_apart_and_the_context() {
        let r = Recorder::default();
        let seen = Arc::new(Mutex::new(None));
        let keep = seen.clone();
        let handler = service_fn(move |task: Task<Order>| {
            let keep = keep.clone();
            async move {
                *keep.lock().unwrap() = Some(task);
                Ok::<_, lambda_runtime::Error>(Report::default())
            }
        });
        call(SoswLayer::new(r.clone()).layer(handler), sosw_event(json!({})))
            .await
            .unwrap();
        let task = seen.lock().unwrap().take().unwrap();
        assert_eq!(
            task.payload,
            Order {
                customer: "acme".into(),
                items: vec![
                    Item {
                        sku: "a".into(),
                        qty: 2
                    },
                    Item {
                        sku: "b".into(),
                        qty: 3
                    }
                ],
            }
        );
        let sosw = task.sosw.clone().unwrap();
        assert_eq!(task.task_id(), Some("t1"));
        assert_eq!(sosw.labourer_id.as_deref(), Some("orders_worker"));
        assert_eq!(sosw.attempts, Some(2));
        assert_eq!(sosw.greenfield, Some(1732412400.0));
        assert_eq!(sosw.created_at, Some(1732412000.5));
        assert_eq!(task.context.request_id, "req-1");
        assert_eq!(task.context.env_config.function_name, "orders_worker");
        assert_eq!(
            task.context.deadline(),
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_900_000_000_000)
        );
        assert!(task.time_left().unwrap() > std::time::Duration::ZERO);
    }

    #[tokio::test]
    async fn success_reports_completed_with_stats_and_result_and_returns_the_output() {
        let r = Recorder::default();
        let out = call(
            SoswLayer::new(r.clone()).layer(service_fn(count)),
            sosw_event(json!({})),
        )
        .await
        .unwrap();
        assert_eq!(out, json!({"qty": 5}));
        assert_eq!(
            r.events(),
            [json!({"action": "mark_task_as_completed", "task_id": "t1",
                    "stats": {"items": 2, "qty": 5}, "result": {"customer": "acme"}})]
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot price the order")]
    struct PricingError(#[source] std::io::Error);

    #[tokio::test]
    async fn a_handler_error_marks_the_task_failed_with_its_causes_and_is_returned_to_lambda() {
        let r = Recorder::default();
        let failing = service_fn(|_: Task<Order>| async {
            Err::<Report, _>(PricingError(std::io::Error::other("price service timed out")))
        });
        let err = call(SoswLayer::new(r.clone()).layer(failing), sosw_event(json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot price the order");
        assert_eq!(
            r.events(),
            [json!({"action": "mark_task_as_failed", "task_id": "t1",
                    "result": {"error": "cannot price the order: price service timed out"}})]
        );
    }

    #[tokio::test]
    async fn a_payload_that_does_not_deserialise_fails_the_task_naming_the_field() {
        let r = Recorder::default();
        let ran = Arc::new(Mutex::new(false));
        let flag = ran.clone();
        let handler = service_fn(move |_: Task<Order>| {
            *flag.lock().unwrap() = true;
            async { Ok::<_, lambda_runtime::Error>(Report::default()) }
        });
        let svc = SoswLayer::new(r.clone()).layer(handler);
        let bad_qty = sosw_event(json!({"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "three"}]}));
        let err = call(svc.clone(), bad_qty).await.unwrap_err();
        assert!(err.to_string().contains("field `items[1].qty`"), "{err}");
        let mut missing = sosw_event(json!({}));
        missing.as_object_mut().unwrap().remove("customer");
        let err = call(svc, missing).await.unwrap_err();
        assert!(err.to_string().contains("missing field `customer`"), "{err}");
        assert!(!*ran.lock().unwrap(), "the handler must not run");
        let events = r.events();
        assert_eq!(events.len(), 2);
        for e in &events {
            assert_eq!(e["action"], "mark_task_as_failed");
            assert_eq!(e["task_id"], "t1");
        }
        let first = events[0]["result"]["error"].as_str().unwrap();
        assert!(
            first.starts_with("task t1: the payload does not fit `"),
            "{first}"
        );
        assert!(
            first.contains("Order`: field `items[1].qty`: invalid type: string \"three\""),
            "{first}"
        );
    }

    #[tokio::test]
    async fn a_wrongly_typed_sosw_field_fails_the_task_naming_it() {
        let r = Recorder::default();
        let err = call(
            SoswLayer::new(r.clone()).layer(service_fn(count)),
            sosw_event(json!({"attempts": "many"})),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("sosw field `attempts` is invalid"),
            "{err}"
        );
        assert_eq!(r.events()[0]["action"], "mark_task_as_failed");
    }

    #[tokio::test]
    async fn events_without_task_id_reach_the_handler_whole_and_report_nothing() {
        let r = Recorder::default();
        let svc = SoswLayer::new(r.clone()).layer(service_fn(|task: Task<Value>| async move {
            assert!(task.sosw.is_none());
            Ok::<_, lambda_runtime::Error>(Report::default().output(task.payload))
        }));
        let event = json!({"labourer_id": "x", "attempts": "not sosw's", "task_id": ""});
        assert_eq!(call(svc, event.clone()).await.unwrap(), event);
        assert!(r.events().is_empty());
        // And a typed payload deserialises from the whole event.
        let out = call(
            SoswLayer::new(r.clone()).layer(service_fn(count)),
            json!({"customer": "c", "items": []}),
        )
        .await
        .unwrap();
        assert_eq!(out, json!({"qty": 0}));
        assert!(r.events().is_empty());
    }

    #[tokio::test]
    async fn an_event_without_task_id_that_does_not_fit_is_an_error_and_reports_nothing() {
        let r = Recorder::default();
        let err = call(
            SoswLayer::new(r.clone()).layer(service_fn(count)),
            json!({"customer": "c"}),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("the payload does not fit `"), "{err}");
        assert!(err.ends_with("Order`: missing field `items`"), "{err}");
        assert!(r.events().is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_worker_assistant_does_not_fail_the_invocation() {
        let r = Recorder {
            down: true,
            ..Recorder::default()
        };
        let out = call(
            SoswLayer::new(r.clone()).layer(service_fn(count)),
            sosw_event(json!({})),
        )
        .await
        .unwrap();
        assert_eq!(out, json!({"qty": 5}));
        assert_eq!(
            r.events().len(),
            1,
            "one attempt, then the task is left to expire"
        );
    }

    #[tokio::test]
    async fn the_typed_layer_composes_as_a_tower_layer() {
        let r = Recorder::default();
        let layer = SoswLayer::new(r.clone()).typed::<Order>();
        let svc = lambda_runtime::tower::ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(count));
        assert_eq!(call(svc, sosw_event(json!({}))).await.unwrap(), json!({"qty": 5}));
        assert_eq!(r.events()[0]["action"], "mark_task_as_completed");
    }

    /// A MetaWriter whose DynamoDB is a recording endpoint: the requests it got.
    /// The endpoint serves while the returned `RecordingLambda` lives.
    async fn recorded_meta() -> (MetaWriter, sosw_test_support::RecordingLambda) {
        let endpoint = sosw_test_support::recording_lambda();
        let sdk = sosw_test_support::sdk_config_for(&endpoint.url).await;
        (
            MetaWriter::new(aws_sdk_dynamodb::Client::new(&sdk), "qa_sosw_tasks_meta"),
            endpoint,
        )
    }

    #[tokio::test]
    async fn the_meta_row_is_written_after_a_sent_report_only_as_python_does() {
        let (meta, writes) = recorded_meta().await;
        let up = SoswLayer::new(Recorder::default()).with_meta(meta);
        call(up.layer(service_fn(count)), sosw_event(json!({})))
            .await
            .unwrap();
        let rows = writes.seen.lock().unwrap().clone();
        assert_eq!(rows.len(), 1, "one PutItem");
        let body: Value = serde_json::from_str(&rows[0].2).unwrap();
        assert_eq!(body["TableName"], "qa_sosw_tasks_meta");
        assert_eq!(body["Item"]["action"], json!({"S": "completed"}));
        assert_eq!(body["Item"]["task_id"], json!({"S": "t1"}));
        assert_eq!(body["Item"]["author"], json!({"S": "orders_worker"}));
        assert_eq!(body["Item"]["invocation_id"], json!({"S": "req-1"}));
        assert_eq!(
            body["Item"]["log_stream_name"],
            json!({"S": "2026/11/24/[$LATEST]abc"})
        );
        assert!(
            body["Item"]["created_at"]["N"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
                > 1.7e9
        );
        assert_eq!(body["ConditionExpression"], "attribute_not_exists(task_id)");

        let (meta, writes) = recorded_meta().await;
        let down = SoswLayer::new(Recorder {
            down: true,
            ..Recorder::default()
        })
        .with_meta(meta);
        call(down.layer(service_fn(count)), sosw_event(json!({})))
            .await
            .unwrap();
        assert!(
            writes.seen.lock().unwrap().is_empty(),
            "no meta row without a report"
        );
    }

    #[tokio::test]
    async fn from_env_reads_the_assistant_name_and_the_meta_table() {
        // nextest runs every test in its own process: the environment is this test's alone.
        std::env::set_var("SOSW_WORKER_ASSISTANT_LAMBDA", "qa_sosw_worker_assistant");
        std::env::set_var(META_TABLE_ENV, "qa_sosw_tasks_meta");
        assert_eq!(assistant_from_env(), "qa_sosw_worker_assistant");
        let layer = SoswLayer::from_env().await;
        assert!(
            format!("{layer:?}").contains(r#"meta_table: Some("qa_sosw_tasks_meta")"#),
            "{layer:?}"
        );
        std::env::remove_var("SOSW_WORKER_ASSISTANT_LAMBDA");
        std::env::set_var(META_TABLE_ENV, "");
        assert_eq!(assistant_from_env(), "sosw_worker_assistant");
        let layer = SoswLayer::from_env().await;
        assert!(format!("{layer:?}").contains("meta_table: None"), "{layer:?}");
    }
}
