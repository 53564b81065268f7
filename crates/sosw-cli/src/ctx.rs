//! What every AWS-facing command shares: clients from the standard AWS environment, the
//! essentials' config from the config table (or SSM, or `--config`), and errors that suggest a fix.

use anyhow::{anyhow, Context as _};
use serde_json::Value;
use sosw_core::aws::{load_sdk_config, Clients};
use sosw_core::config::{from_value, TaskConfig};
use sosw_core::config_source::ConfigSource;
use sosw_core::{SystemClock, TaskManager};
use std::path::PathBuf;
use std::sync::Arc;

/// Clients and config for one command.
pub struct Ctx {
    pub clients: Clients,
    pub tasks: TaskManager,
    /// The assembled orchestrator document (task_config, invocation_number_coefficient, ...).
    pub document: Value,
}

/// `--config FILE`: a custom layer over the config documents found in AWS.
pub fn custom_layer(path: &Option<PathBuf>) -> anyhow::Result<Option<Value>> {
    match path {
        None => Ok(None),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(Some(
                serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", p.display()))?,
            ))
        }
    }
}

impl Ctx {
    /// Load clients and the config of essential `essential` (e.g. `sosw_orchestrator`).
    pub async fn load(essential: &str, custom: Option<Value>) -> anyhow::Result<Self> {
        let sdk = load_sdk_config().await;
        let clients = Clients::new(&sdk);
        // The orchestrator's defaults: the TaskManager's and `invocation_number_coefficient`.
        let defaults = sosw_orchestrator::OrchestratorConfig::defaults();
        let source = ConfigSource::from_env(&sdk)?;
        // The essentials run on defaults without a config table, as Python sosw's do; for an
        // operator a missing table means a wrong account, region or table name.
        source.check_readable().await.map_err(|e| hint(anyhow!(e)))?;
        let document: Value = source
            .load_essential(essential, defaults, custom)
            .await
            .map_err(|e| hint(anyhow!(e)))?;
        let task_config: TaskConfig =
            from_value(&format!("{essential}_config"), document["task_config"].clone())?;
        task_config.validate()?;
        let tasks = TaskManager::new(
            clients.dynamodb.clone(),
            clients.lambda.clone(),
            task_config,
            Arc::new(SystemClock),
        );
        Ok(Self {
            clients,
            tasks,
            document,
        })
    }

    /// The registered labourer `id`, or an error listing the configured ones.
    pub fn labourer(&self, id: &str) -> anyhow::Result<sosw_core::Labourer> {
        self.tasks.register_labourer(id).ok_or_else(|| {
            let known: Vec<&String> = self.tasks.config().labourers.keys().collect();
            anyhow!(
                "unknown labourer `{id}`: configured labourers are {known:?} (add it to `task_config.labourers` in sosw_essential_config)"
            )
        })
    }

    /// The Scheduler's typed config: its defaults under the documents this context loaded.
    pub fn scheduler_config(&self) -> anyhow::Result<sosw_scheduler::SchedulerConfig> {
        let mut doc = sosw_scheduler::SchedulerConfig::defaults();
        sosw_core::config::merge(&mut doc, &self.document);
        sosw_scheduler::SchedulerConfig::from_document(doc).context("the scheduler's config")
    }
}

/// Invoke the Scheduler `function` asynchronously (`Event`) with `event`: a job (`sosw submit`)
/// or a queue file's continuation (`sosw resume`).
pub async fn invoke_scheduler(ctx: &Ctx, function: &str, event: &Value) -> anyhow::Result<()> {
    ctx.clients
        .lambda
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| hint(anyhow!(sosw_core::error::render_error(&e))))
        .with_context(|| format!("invoking the scheduler `{function}`"))?;
    Ok(())
}

/// Add a suggestion to well-known AWS failures. The typed errors of the chain decide first, so the
/// hint names the resource that failed: a missing Lambda function is not a missing table. Errors
/// that reach here only as text (SDK errors rendered by the commands) fall back to their wording.
pub fn hint(err: anyhow::Error) -> anyhow::Error {
    match suggestion(&err) {
        Some(s) => err.context(format!("hint: {s}")),
        None => err,
    }
}

fn function_missing(function: &str) -> String {
    format!(
        "the Lambda function `{function}` does not exist: deploy its stack (docs/deploy.md), or fix the \
         labourer's `arn` in task_config.labourers"
    )
}

fn table_missing(table: &str) -> String {
    format!(
        "the DynamoDB table `{table}` does not exist: deploy cloudformation/sosw-storage.yaml \
         (docs/deploy.md), or check AWS_REGION and AWS_ENDPOINT_URL"
    )
}

const NO_CREDENTIALS: &str =
    "no usable AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
const UNREACHABLE: &str = "AWS could not be reached: check AWS_ENDPOINT_URL / AWS_REGION and the network";
const RESOURCE_MISSING: &str =
    "an AWS resource named above does not exist: deploy the stacks (docs/deploy.md), \
     or check AWS_REGION and AWS_ENDPOINT_URL";

/// Every error of the chain, outermost first, also inside a boxed error (the essentials'
/// `from_env` returns `Box<dyn Error>`, which anyhow keeps as the box and does not list).
fn causes(err: &anyhow::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    type Boxed = Box<dyn std::error::Error + Send + Sync>;
    let mut out: Vec<&(dyn std::error::Error + 'static)> = err.chain().collect();
    let mut next = err
        .downcast_ref::<Boxed>()
        .map(|b| b.as_ref() as &(dyn std::error::Error + 'static));
    while let Some(e) = next {
        out.push(e);
        next = e.source();
    }
    out
}

fn suggestion(err: &anyhow::Error) -> Option<String> {
    use sosw_core::error::{AwsFailure, ConfigError, EcologyError, InvokeError, InvokeFailure, TaskError};
    let causes = causes(err);
    let all =
        |f: &dyn Fn(&(dyn std::error::Error + 'static)) -> Option<String>| causes.iter().find_map(|c| f(*c));
    // What the AWS call itself said first: without credentials or a connection, no resource
    // could have been found, whatever the resource-specific errors around it say.
    let failures: Vec<AwsFailure> = causes.iter().filter_map(|c| AwsFailure::of_cause(*c)).collect();
    if failures.contains(&AwsFailure::Credentials) {
        return Some(NO_CREDENTIALS.into());
    }
    if failures.contains(&AwsFailure::Unreachable) {
        return Some(UNREACHABLE.into());
    }
    let typed = all(&|c| {
        if let Some(e) = c.downcast_ref::<InvokeError>() {
            return (e.kind == InvokeFailure::FunctionMissing).then(|| function_missing(&e.function));
        }
        // `LabourerHealth` keeps the metric's error boxed: the chain shows the box.
        let ecology = c
            .downcast_ref::<EcologyError>()
            .or_else(|| c.downcast_ref::<Box<EcologyError>>().map(AsRef::as_ref));
        match ecology? {
            EcologyError::FunctionConfiguration { function, source, .. } if source.is_not_found() => {
                Some(function_missing(function))
            }
            EcologyError::CloudWatch { metric, source, .. } if source.is_access_denied() => Some(format!(
                "the caller may not read the health metric `{metric}`: grant it cloudwatch:GetMetricStatistics"
            )),
            EcologyError::CloudWatch { metric, .. } => Some(format!(
                "CloudWatch refused the health metric `{metric}`: check its `details` in \
                 task_config.labourers.<id>.health_metrics"
            )),
            EcologyError::NoMaxDuration { labourer } => Some(format!(
                "set `max_duration` of labourer `{labourer}` in task_config.labourers"
            )),
            _ => None,
        }
    })
    .or_else(|| {
        all(&|c| match c.downcast_ref::<TaskError>()? {
            TaskError::Dynamo { table, source, .. } if source.is_not_found() => Some(table_missing(table)),
            TaskError::Store { table, source, .. } if source.is_resource_not_found() => {
                Some(table_missing(table))
            }
            _ => None,
        })
    })
    .or_else(|| {
        all(&|c| match c.downcast_ref::<ConfigError>()? {
            ConfigError::Source {
                name,
                source_kind,
                source,
            } if source.is_not_found() => Some(format!(
                "config `{name}` cannot be read: {source_kind} is missing; deploy \
                 cloudformation/sosw-storage.yaml (docs/deploy.md) or pass --config"
            )),
            _ => None,
        })
    });
    if typed.is_some() {
        return typed;
    }
    if let Some(kind) = failures.first() {
        let s = match kind {
            AwsFailure::NotFound => RESOURCE_MISSING,
            AwsFailure::AccessDenied => {
                "the caller's AWS identity may not make this call: check its IAM policy (the grants sosw \
                 needs are in cloudformation/)"
            }
            AwsFailure::Throttling => "AWS throttled the calls: try again in a moment",
            _ => return None,
        };
        return Some(s.into());
    }
    // Text only: some commands render an SDK error into their own message, so no type reaches
    // here; the SDK's and the services' wording is all there is to go by.
    let text = format!("{err:#}");
    let suggestion = if text.contains("credentials") || text.contains("Credentials") {
        NO_CREDENTIALS
    } else if text.contains("dispatch failure")
        || text.contains("Connection refused")
        || text.contains("connection")
    {
        UNREACHABLE
    } else if text.contains("Function not found") {
        "the Lambda function does not exist: deploy its stack or pass --function"
    } else if text.contains("non-existent table") {
        "a table is missing: deploy cloudformation/sosw-storage.yaml (docs/deploy.md), or check AWS_REGION and AWS_ENDPOINT_URL"
    } else if text.contains("ResourceNotFound") {
        RESOURCE_MISSING
    } else {
        return None;
    };
    Some(suggestion.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sosw_core::error::{
        ConfigError, EcologyError, FailureKind, InvokeError, InvokeFailure, StoreError, TaskError,
    };
    use sosw_test_support::aws_errors::{service, unreachable};

    fn hinted(err: anyhow::Error) -> String {
        format!("{:#}", hint(err))
    }

    fn not_found() -> sosw_core::AwsError {
        service("ResourceNotFoundException", "Requested resource not found", 400)
    }

    #[test]
    fn a_missing_function_is_named_and_not_called_a_missing_table() {
        let err = InvokeError {
            function: "sosw_scheduler".into(),
            kind: InvokeFailure::FunctionMissing,
            source: Box::new(not_found()),
        };
        let text = hinted(anyhow::Error::new(err).context("submitting the job"));
        assert!(
            text.contains("Lambda function `sosw_scheduler` does not exist"),
            "{text}"
        );
        assert!(!text.contains("table"), "{text}");
        let err = EcologyError::FunctionConfiguration {
            labourer: "worker_a".into(),
            function: "arn:aws:lambda:us-east-1:1:function:worker_a".into(),
            source: service("ResourceNotFoundException", "Function not found", 404),
        };
        let text = hinted(err.into());
        assert!(
            text.contains("Lambda function `arn:aws:lambda:us-east-1:1:function:worker_a` does not exist"),
            "{text}"
        );
    }

    #[test]
    fn the_hint_follows_the_type_of_the_failure_not_its_words() {
        // A throttled GetFunctionConfiguration whose message mentions "not found" is no missing function.
        let err = EcologyError::FunctionConfiguration {
            labourer: "worker_a".into(),
            function: "worker_a".into(),
            source: service("TooManyRequestsException", "Function not found in cache", 429),
        };
        let text = hinted(err.into());
        assert!(text.contains("throttled"), "{text}");
        assert!(!text.contains("does not exist"), "{text}");
        // A refused config read is a permission problem, not a missing table.
        let err = ConfigError::Source {
            name: "sosw_orchestrator_config".into(),
            source_kind: "DynamoDB table `config`".into(),
            source: service(
                "AccessDeniedException",
                "not authorized on non-existent table",
                400,
            ),
        };
        let text = hinted(err.into());
        assert!(text.contains("IAM policy"), "{text}");
        assert!(!text.contains("missing"), "{text}");
    }

    #[test]
    fn a_refused_health_metric_names_the_metric_and_the_permission() {
        let err = EcologyError::LabourerHealth {
            labourer: "worker_a".into(),
            metric: "errors".into(),
            source: Box::new(EcologyError::CloudWatch {
                metric: "Errors".into(),
                namespace: "AWS/Lambda".into(),
                source: service("AccessDenied", "User is not authorized", 403),
            }),
        };
        let text = hinted(err.into());
        assert!(
            text.contains("may not read the health metric `Errors`")
                && text.contains("cloudwatch:GetMetricStatistics"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_table_is_named() {
        let err = TaskError::Dynamo {
            operation: "DescribeTable",
            table: "sosw_closed_tasks".into(),
            source: not_found(),
        };
        let text = hinted(err.into());
        assert!(
            text.contains("table `sosw_closed_tasks` does not exist"),
            "{text}"
        );
        let err = TaskError::Store {
            operation: "Query",
            table: "sosw_tasks/sosw_tasks_greenfield".into(),
            source: StoreError::new(FailureKind::ResourceNotFound, "table not found"),
        };
        let text = hinted(anyhow::Error::new(err).context("status"));
        assert!(
            text.contains("table `sosw_tasks/sosw_tasks_greenfield` does not exist"),
            "{text}"
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(ConfigError::Source {
            name: "sosw_orchestrator_config".into(),
            source_kind: "DynamoDB table `config`".into(),
            source: not_found(),
        });
        let text = hinted(anyhow!(boxed));
        assert!(
            text.contains("config `sosw_orchestrator_config` cannot be read"),
            "{text}"
        );
    }

    #[test]
    fn no_answer_and_no_credentials_come_before_the_resource() {
        let err = TaskError::Dynamo {
            operation: "DescribeTable",
            table: "sosw_tasks".into(),
            source: unreachable(),
        };
        let text = hinted(err.into());
        assert!(text.contains("could not be reached"), "{text}");
        assert!(!text.contains("does not exist"), "{text}");
        let err = ConfigError::Source {
            name: "sosw_essential_config".into(),
            source_kind: "SSM Parameter Store".into(),
            source: service(
                "ExpiredTokenException",
                "The security token included in the request is expired",
                400,
            ),
        };
        assert!(hinted(err.into()).contains("no usable AWS credentials"));
    }

    #[test]
    fn text_only_failures_still_get_the_generic_hints() {
        assert!(hinted(anyhow!("dispatch failure: Connection refused")).contains("could not be reached"));
        assert!(hinted(anyhow!("ResourceNotFoundException: Function not found")).contains("Lambda function"));
        assert!(!hinted(anyhow!("ResourceNotFoundException: x")).contains("a table is missing"));
        assert!(!hinted(anyhow!("something else")).contains("hint"));
    }
}
