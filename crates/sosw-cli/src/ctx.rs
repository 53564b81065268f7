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

/// The text of an AWS "resource not found" failure (DynamoDB's and Lambda's wording).
fn says_not_found(message: &str) -> bool {
    message.contains("ResourceNotFound")
        || message.contains("non-existent table")
        || message.contains("Requested resource not found")
        || message.contains("Function not found")
}

fn function_missing(function: &str) -> String {
    format!(
        "the Lambda function `{function}` does not exist: deploy its stack (docs/deploy.md), or fix the \
         labourer's `arn` in task_config.labourers"
    )
}

/// The first error of type `T` in the chain, also inside a boxed error (the essentials' `from_env`
/// returns `Box<dyn Error>`, which anyhow keeps as the box).
fn find<T: std::error::Error + Send + Sync + 'static>(err: &anyhow::Error) -> Option<&T> {
    type Boxed = Box<dyn std::error::Error + Send + Sync>;
    err.downcast_ref::<T>()
        .or_else(|| err.downcast_ref::<Boxed>().and_then(|b| b.downcast_ref::<T>()))
        .or_else(|| err.chain().find_map(|c| c.downcast_ref::<T>()))
}

fn suggestion(err: &anyhow::Error) -> Option<String> {
    use sosw_core::error::{ConfigError, EcologyError, InvokeError, InvokeFailure, TaskError};
    if let Some(e) = find::<InvokeError>(err) {
        if e.kind == InvokeFailure::FunctionMissing {
            return Some(function_missing(&e.function));
        }
    }
    match find::<EcologyError>(err) {
        Some(EcologyError::FunctionConfiguration { labourer, message }) if says_not_found(message) => {
            return Some(function_missing(labourer));
        }
        Some(EcologyError::CloudWatch { metric, .. }) => {
            return Some(format!(
                "CloudWatch refused the health metric `{metric}`: check its `details` in \
                 task_config.labourers.<id>.health_metrics and the caller's cloudwatch:GetMetricStatistics permission"
            ));
        }
        _ => {}
    }
    if let Some(TaskError::Dynamo { table, message, .. }) = find::<TaskError>(err) {
        if says_not_found(message) {
            return Some(format!(
                "the DynamoDB table `{table}` does not exist: deploy cloudformation/sosw-storage.yaml \
                 (docs/deploy.md), or check AWS_REGION and AWS_ENDPOINT_URL"
            ));
        }
    }
    if let Some(ConfigError::Source {
        name,
        source_kind,
        message,
    }) = find::<ConfigError>(err)
    {
        if says_not_found(message) {
            return Some(format!(
                "config `{name}` cannot be read: {source_kind} is missing; deploy \
                 cloudformation/sosw-storage.yaml (docs/deploy.md) or pass --config"
            ));
        }
    }
    let text = format!("{err:#}");
    let suggestion = if text.contains("credentials") || text.contains("Credentials") {
        "no usable AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    } else if text.contains("dispatch failure")
        || text.contains("Connection refused")
        || text.contains("connection")
    {
        "AWS could not be reached: check AWS_ENDPOINT_URL / AWS_REGION and the network"
    } else if text.contains("Function not found") {
        "the Lambda function does not exist: deploy its stack or pass --function"
    } else if text.contains("non-existent table") {
        "a table is missing: deploy cloudformation/sosw-storage.yaml (docs/deploy.md), or check AWS_REGION and AWS_ENDPOINT_URL"
    } else if text.contains("ResourceNotFound") {
        "an AWS resource named above does not exist: deploy the stacks (docs/deploy.md), or check AWS_REGION and AWS_ENDPOINT_URL"
    } else {
        return None;
    };
    Some(suggestion.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sosw_core::error::{ConfigError, EcologyError, InvokeError, InvokeFailure, TaskError};

    fn hinted(err: anyhow::Error) -> String {
        format!("{:#}", hint(err))
    }

    #[test]
    fn a_missing_function_is_named_and_not_called_a_missing_table() {
        let err = InvokeError {
            function: "sosw_scheduler".into(),
            kind: InvokeFailure::FunctionMissing,
            message: "ResourceNotFoundException: Function not found".into(),
        };
        let text = hinted(anyhow::Error::new(err).context("submitting the job"));
        assert!(
            text.contains("Lambda function `sosw_scheduler` does not exist"),
            "{text}"
        );
        assert!(!text.contains("table"), "{text}");
        let err = EcologyError::FunctionConfiguration {
            labourer: "worker_a".into(),
            message: "ResourceNotFoundException: Function not found: arn:aws:lambda:...".into(),
        };
        let text = hinted(err.into());
        assert!(
            text.contains("Lambda function `worker_a` does not exist"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_table_is_named() {
        let err = TaskError::Dynamo {
            operation: "Query",
            table: "sosw_closed_tasks".into(),
            message: "ResourceNotFoundException: Requested resource not found".into(),
        };
        let text = hinted(err.into());
        assert!(
            text.contains("table `sosw_closed_tasks` does not exist"),
            "{text}"
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(ConfigError::Source {
            name: "sosw_orchestrator_config".into(),
            source_kind: "DynamoDB table `config`".into(),
            message: "ResourceNotFoundException: Cannot do operations on a non-existent table".into(),
        });
        let text = hinted(anyhow!(boxed));
        assert!(
            text.contains("config `sosw_orchestrator_config` cannot be read"),
            "{text}"
        );
    }

    #[test]
    fn text_only_failures_still_get_the_generic_hints() {
        assert!(hinted(anyhow!("dispatch failure: Connection refused")).contains("could not be reached"));
        assert!(hinted(anyhow!("ResourceNotFoundException: Function not found")).contains("Lambda function"));
        assert!(!hinted(anyhow!("ResourceNotFoundException: x")).contains("a table is missing"));
        assert!(!hinted(anyhow!("something else")).contains("hint"));
    }
}
