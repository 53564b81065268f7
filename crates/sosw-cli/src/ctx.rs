//! What every AWS-facing command shares: clients from the standard AWS environment, the
//! essentials' config from the config table (or SSM, or `--config`), and errors that suggest a fix.

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value};
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
        let defaults = json!({
            "task_config": sosw_core::config::default_task_config(),
            "invocation_number_coefficient": {"0": 0, "1": 0, "2": 0.5, "3": 0.75, "4": 1}
        });
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

/// Add a suggestion to well-known AWS failures.
pub fn hint(err: anyhow::Error) -> anyhow::Error {
    let text = format!("{err:#}");
    let suggestion = if text.contains("ResourceNotFound") || text.contains("non-existent table") {
        Some("a table is missing: deploy cloudformation/sosw-storage.yaml (docs/deploy.md), or check AWS_REGION and AWS_ENDPOINT_URL")
    } else if text.contains("credentials") || text.contains("Credentials") {
        Some("no usable AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    } else if text.contains("dispatch failure")
        || text.contains("Connection refused")
        || text.contains("connection")
    {
        Some("AWS could not be reached: check AWS_ENDPOINT_URL / AWS_REGION and the network")
    } else if text.contains("Function not found") || text.contains("ResourceNotFoundException") {
        Some("the Lambda function does not exist: deploy its stack or pass --function")
    } else {
        None
    };
    match suggestion {
        Some(s) => err.context(format!("hint: {s}")),
        None => err,
    }
}
