//! The Lambda edge the four essentials share (Scheduler, Orchestrator, Scavenger, Worker Assistant).
//!
//! Module map (one file):
//! - [`Essential`]: what an essential is to the runtime: built once per process
//!   ([`Essential::build`]), then asked to handle each event with its [`Invocation`].
//! - [`serve`]: what every `main.rs` calls (`sosw_lambda::serve::<Scheduler>()`): tracing
//!   ([`init_tracing`]), the SDK config loaded once, the process's one [`Clock`], the essential
//!   built once, then [`run`].
//! - [`run`]: polls the Lambda Runtime API and hands each event to a handler together with its
//!   [`Invocation`] (request id, deadline, function name, log stream). A panic inside a handler
//!   fails that invocation only (lambda_runtime's panic layer; the release profile does not abort
//!   on panic).
//! - [`EdgeError`] / [`ErrorKind`]: the error a handler returns; Lambda reports its kind as the
//!   `errorType` (e.g. `RejectedJob`, `Retryable`), so a user can alarm on one kind.
//!
//! `sosw-core` stays free of `lambda_runtime`: only this crate and the binaries depend on it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use sosw_core::error::{ConfigError, TaskError};
use sosw_core::meta::MetaContext;
use sosw_core::{Clock, SystemClock};

/// The boxed error type of start-up and of the runtime itself.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What Lambda's Runtime API tells about one invocation, handed to the essential's handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The invocation's request id (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The deadline in milliseconds since the Unix epoch (`Lambda-Runtime-Deadline-Ms`).
    pub deadline_ms: u64,
    /// The function's ARN as invoked (`Lambda-Runtime-Invoked-Function-Arn`).
    pub invoked_function_arn: String,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
    /// The CloudWatch Logs stream of this execution environment (`AWS_LAMBDA_LOG_STREAM_NAME`).
    pub log_stream_name: String,
}

impl Invocation {
    /// The invocation as lambda_runtime's context describes it.
    pub fn from_context(context: &lambda_runtime::Context) -> Self {
        Self {
            request_id: context.request_id.clone(),
            deadline_ms: context.deadline,
            invoked_function_arn: context.invoked_function_arn.clone(),
            function_name: context.env_config.function_name.clone(),
            log_stream_name: context.env_config.log_stream.clone(),
        }
    }

    /// Time left before the deadline at `clock`'s now (zero when it has passed).
    pub fn remaining(&self, clock: &dyn Clock) -> Duration {
        let now = u64::try_from(clock.now_ms()).unwrap_or(0);
        Duration::from_millis(self.deadline_ms.saturating_sub(now))
    }

    /// The fields every meta row of this invocation carries (`author`, `invocation_id`,
    /// `log_stream_name`), as Python sosw's MetaHandler takes them from the Lambda context.
    pub fn meta_context(&self) -> MetaContext {
        MetaContext {
            author: self.function_name.clone(),
            invocation_id: self.request_id.clone(),
            log_stream_name: self.log_stream_name.clone(),
        }
    }
}

/// One of the four essentials, as the Lambda runtime drives it: built once per process, then
/// handed every event with the invocation's context.
pub trait Essential: Sized + Send + Sync + 'static {
    /// The function name outside Lambda (when `AWS_LAMBDA_FUNCTION_NAME` is not set).
    const DEFAULT_NAME: &'static str;

    /// Build the essential from the SDK config, its function's name (which names its config
    /// documents) and the process's one clock.
    fn build(
        sdk: &aws_config::SdkConfig,
        function_name: &str,
        clock: Arc<dyn Clock>,
    ) -> impl Future<Output = Result<Self, BoxError>> + Send;

    /// Handle one event of an invocation. The error's [`ErrorKind`] is what Lambda reports as
    /// `errorType`.
    fn handle_event(
        &self,
        event: Value,
        invocation: &Invocation,
    ) -> impl Future<Output = Result<Value, EdgeError>>;
}

/// Why an invocation failed, as Lambda reports it in `errorType` (alarm on these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The Scheduler refused a job (bad shape, bad row, missing queue file): nothing was written.
    /// Retrying the same job fails the same way.
    RejectedJob,
    /// The Worker Assistant refused an event that is not a valid report (no action, no task id...).
    RejectedEvent,
    /// A worker's report for a task that is not invoked: already completed, archived, queued
    /// again, waiting in the retry table, or unknown (the message says which; a task waiting for a
    /// retry and an unknown id cannot be told apart without the labourer, which a report does
    /// not name).
    ReportRefused,
    /// An AWS call failed or the queue is full for now: the same event may succeed later.
    Retryable,
    /// The configuration cannot be used.
    ConfigInvalid,
    /// The Orchestrator or Scavenger could process no labourer at all in this run.
    NoLabourerProcessed,
    /// Stored data is not what sosw wrote (e.g. a malformed task row).
    CorruptData,
}

impl ErrorKind {
    /// The `errorType` Lambda reports.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::RejectedJob => "RejectedJob",
            Self::RejectedEvent => "RejectedEvent",
            Self::ReportRefused => "ReportRefused",
            Self::Retryable => "Retryable",
            Self::ConfigInvalid => "ConfigInvalid",
            Self::NoLabourerProcessed => "NoLabourerProcessed",
            Self::CorruptData => "CorruptData",
        }
    }

    /// The kind of a task storage error.
    pub fn of_task_error(error: &TaskError) -> Self {
        match error {
            TaskError::Dynamo { .. } | TaskError::Store { .. } | TaskError::QueueFull { .. } => {
                Self::Retryable
            }
            TaskError::ReportRefused { .. } => Self::ReportRefused,
            TaskError::WrongLabourer { .. } => Self::RejectedEvent,
            TaskError::AutogeneratedField(_) | TaskError::InvalidPayload(_) => Self::RejectedJob,
            TaskError::Malformed { .. } => Self::CorruptData,
        }
    }

    /// The kind of a configuration error: a source that cannot be read is worth a retry, a bad
    /// document is not.
    pub fn of_config_error(error: &ConfigError) -> Self {
        match error {
            ConfigError::Source { .. } => Self::Retryable,
            ConfigError::Shape { .. } | ConfigError::Invalid(_) => Self::ConfigInvalid,
        }
    }
}

/// An invocation's failure: its [`ErrorKind`] and the error itself (kept as the source).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct EdgeError {
    /// What kind of failure, reported as Lambda's `errorType`.
    pub kind: ErrorKind,
    /// The essential's error.
    #[source]
    pub source: BoxError,
}

impl EdgeError {
    /// An error of this kind.
    pub fn new(kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }
}

/// How a scheduled essential's run (Orchestrator, Scavenger) ends its invocation: its EMF lines
/// printed, then a `NoLabourerProcessed` error when `failure` says no labourer could be processed
/// (so Lambda's Errors metric and alarms see it), its figures `stats` otherwise.
pub fn finish_scheduled_run(
    emf_lines: Vec<String>,
    failure: Option<String>,
    stats: Result<Value, serde_json::Error>,
) -> Result<Value, EdgeError> {
    for line in emf_lines {
        println!("{line}");
    }
    match failure {
        Some(failure) => Err(EdgeError::new(ErrorKind::NoLabourerProcessed, failure)),
        None => Ok(stats?),
    }
}

impl From<TaskError> for EdgeError {
    fn from(error: TaskError) -> Self {
        Self::new(ErrorKind::of_task_error(&error), error)
    }
}

impl From<ConfigError> for EdgeError {
    fn from(error: ConfigError) -> Self {
        Self::new(ErrorKind::of_config_error(&error), error)
    }
}

impl From<serde_json::Error> for EdgeError {
    fn from(error: serde_json::Error) -> Self {
        Self::new(ErrorKind::CorruptData, error)
    }
}

impl From<EdgeError> for Diagnostic {
    fn from(error: EdgeError) -> Self {
        // The message carries the whole chain of causes, each said once (an error that shows its
        // source in its own message is not repeated by the source).
        let message = sosw_core::error::render_error(error.source.as_ref());
        Diagnostic {
            error_type: error.kind.error_type().to_string(),
            error_message: message,
        }
    }
}

/// Tracing as lambda_runtime's default subscriber sets it up: the level from `AWS_LAMBDA_LOG_LEVEL`
/// (else `RUST_LOG`, else INFO), JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON` (Lambda's advanced
/// logging controls).
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Poll the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`) and answer every event with `handler`,
/// which gets the event and its [`Invocation`]. A panic in the handler fails that invocation (Lambda
/// sees an error report) and the runtime goes on with the next one.
pub async fn run<F, Fut>(handler: F) -> Result<(), BoxError>
where
    F: Fn(Value, Invocation) -> Fut,
    Fut: Future<Output = Result<Value, EdgeError>>,
{
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let invocation = Invocation::from_context(&event.context);
        handler(event.payload, invocation)
    }))
    .await
}

/// The whole life of an essential's process, what each `main.rs` calls: tracing, the SDK config
/// loaded once, one [`SystemClock`], the essential built once (for its function's name,
/// `AWS_LAMBDA_FUNCTION_NAME` or [`Essential::DEFAULT_NAME`] outside Lambda), then [`run`] with
/// [`Essential::handle_event`].
pub async fn serve<E: Essential>() -> Result<(), BoxError> {
    init_tracing();
    let sdk = sosw_core::aws::load_sdk_config().await;
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| E::DEFAULT_NAME.to_string());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let essential = Arc::new(E::build(&sdk, &function_name, clock).await?);
    run(move |event, invocation| {
        let essential = essential.clone();
        async move { essential.handle_event(event, &invocation).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sosw_core::error::TaskWhereabouts;

    #[test]
    fn a_scheduled_run_that_processed_no_labourer_fails_its_invocation_and_one_that_did_returns_its_figures()
    {
        let failed = finish_scheduled_run(vec![], Some("table `sosw_tasks` missing".into()), Ok(Value::Null))
            .unwrap_err();
        let d = Diagnostic::from(failed);
        assert_eq!(d.error_type, "NoLabourerProcessed");
        assert!(d.error_message.contains("sosw_tasks"), "{}", d.error_message);
        let figures = serde_json::json!({"invoked": 3});
        assert_eq!(
            finish_scheduled_run(vec![], None, Ok(figures.clone())).unwrap(),
            figures
        );
    }

    fn diagnostic(error: impl Into<EdgeError>) -> Diagnostic {
        Diagnostic::from(error.into())
    }

    #[test]
    fn task_errors_map_to_alarmable_types() {
        let unknown = TaskError::ReportRefused {
            task_id: "t1".into(),
            action: "mark_task_as_completed",
            state: TaskWhereabouts::RetryingOrUnknown,
            table: "sosw_tasks".into(),
        };
        let d = diagnostic(unknown);
        assert_eq!(d.error_type, "ReportRefused");
        assert!(d.error_message.contains("t1") && d.error_message.contains("retrying or unknown"));
        let refused = TaskError::ReportRefused {
            task_id: "t2".into(),
            action: "mark_task_as_completed",
            state: TaskWhereabouts::Archived,
            table: "sosw_tasks".into(),
        };
        assert_eq!(diagnostic(refused).error_type, "ReportRefused");
        let dynamo = TaskError::Dynamo {
            operation: "Query",
            table: "sosw_tasks".into(),
            source: sosw_test_support::aws_errors::service("ThrottlingException", "slow down", 400),
        };
        assert_eq!(diagnostic(dynamo).error_type, "Retryable");
        let malformed = TaskError::Malformed {
            task_id: "t3".into(),
            reason: "no labourer_id".into(),
        };
        assert_eq!(diagnostic(malformed).error_type, "CorruptData");
        assert_eq!(
            diagnostic(TaskError::InvalidPayload("not an object".into())).error_type,
            "RejectedJob"
        );
    }

    #[test]
    fn config_errors_map_to_config_invalid_unless_the_source_failed() {
        let shape = ConfigError::Shape {
            name: "sosw_orchestrator_config".into(),
            path: "labourers".into(),
            reason: "expected an object".into(),
        };
        let d = diagnostic(shape);
        assert_eq!(d.error_type, "ConfigInvalid");
        assert!(d.error_message.contains("sosw_orchestrator_config"));
        let source = ConfigError::Source {
            name: "sosw_orchestrator_config".into(),
            source_kind: "SSM Parameter Store".into(),
            source: sosw_test_support::aws_errors::unreachable(),
        };
        assert_eq!(diagnostic(source).error_type, "Retryable");
    }

    #[test]
    fn diagnostic_message_keeps_the_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = EdgeError::new(ErrorKind::Retryable, Outer(std::io::Error::other("inner cause")));
        let d = Diagnostic::from(e);
        assert_eq!(d.error_type, "Retryable");
        assert_eq!(d.error_message, "outer: inner cause");
    }

    #[test]
    fn invocation_carries_request_id_and_deadline() {
        let mut context = lambda_runtime::Context::default();
        context.request_id = "req-1".into();
        context.deadline = 1_700_000_000_000;
        let invocation = Invocation::from_context(&context);
        assert_eq!(invocation.request_id, "req-1");
        assert_eq!(invocation.deadline_ms, 1_700_000_000_000);
        let clock = sosw_core::ManualClock::at(1_699_999_990.5);
        assert_eq!(invocation.remaining(&clock), Duration::from_millis(9_500));
        clock.advance(60.0);
        assert_eq!(invocation.remaining(&clock), Duration::ZERO);
    }
}
