//! Where config documents come from: the DynamoDB `config` table (Python sosw's default) or SSM
//! Parameter Store, chosen by the `SOSW_CONFIG_SOURCE` environment variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SOSW_CONFIG_SOURCE` | `dynamo` | `dynamo`, `ssm`, or `none` (only built-in defaults and custom config) |
//! | `SOSW_CONFIG_TABLE` | `config` | the DynamoDB table (hash `env`, range `config_name`, value `config_value`) |
//! | `SOSW_ENV` | `production` | the `env` hash key to read |

use crate::config::assemble;
use crate::error::{render_error, ConfigError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A source of named JSON config documents.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// The DynamoDB `config` table.
    Dynamo {
        /// Client.
        client: aws_sdk_dynamodb::Client,
        /// Table name (default `config`).
        table: String,
        /// The `env` hash key (default `production`).
        env: String,
    },
    /// SSM Parameter Store; the parameter name is the config name.
    Ssm {
        /// Client.
        client: aws_sdk_ssm::Client,
    },
    /// No external source.
    None,
}

impl ConfigSource {
    /// Choose the source from `SOSW_CONFIG_SOURCE` / `SOSW_CONFIG_TABLE` / `SOSW_ENV`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let kind = std::env::var("SOSW_CONFIG_SOURCE").unwrap_or_else(|_| "dynamo".into());
        match kind.to_ascii_lowercase().as_str() {
            "dynamo" | "dynamodb" => Ok(Self::Dynamo {
                client: aws_sdk_dynamodb::Client::new(sdk),
                table: std::env::var("SOSW_CONFIG_TABLE").unwrap_or_else(|_| "config".into()),
                env: std::env::var("SOSW_ENV").unwrap_or_else(|_| "production".into()),
            }),
            "ssm" => Ok(Self::Ssm {
                client: aws_sdk_ssm::Client::new(sdk),
            }),
            "none" => Ok(Self::None),
            other => Err(ConfigError::Invalid(format!(
                "SOSW_CONFIG_SOURCE must be `dynamo`, `ssm` or `none`, not `{other}`"
            ))),
        }
    }

    /// Read the document `name`. `Ok(None)` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Value>, ConfigError> {
        let raw = match self {
            Self::None => return Ok(None),
            Self::Dynamo { client, table, env } => {
                let out = client
                    .get_item()
                    .table_name(table)
                    .key("env", AttributeValue::S(env.clone()))
                    .key("config_name", AttributeValue::S(name.to_string()))
                    .send()
                    .await
                    .map_err(|e| ConfigError::Source {
                        name: name.into(),
                        source_kind: format!("DynamoDB table `{table}`"),
                        message: render_error(&e),
                    })?;
                match out.item.as_ref().and_then(|i| i.get("config_value")) {
                    None => return Ok(None),
                    Some(AttributeValue::S(s)) => s.clone(),
                    Some(other) => {
                        return Err(ConfigError::Shape {
                            name: name.into(),
                            path: "config_value".into(),
                            reason: format!("expected a JSON string (type S), found {other:?}"),
                        })
                    }
                }
            }
            Self::Ssm { client } => {
                let out = client
                    .get_parameters()
                    .names(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| ConfigError::Source {
                        name: name.into(),
                        source_kind: "SSM Parameter Store".into(),
                        message: render_error(&e),
                    })?;
                match out.parameters().first().and_then(|p| p.value()) {
                    Some(v) => v.to_string(),
                    None => return Ok(None),
                }
            }
        };
        let value: Value = serde_json::from_str(&raw).map_err(|e| ConfigError::Shape {
            name: name.into(),
            path: ".".into(),
            reason: format!("config_value is not valid JSON: {e}"),
        })?;
        if !value.is_object() {
            return Err(ConfigError::Shape {
                name: name.into(),
                path: ".".into(),
                reason: "expected a JSON object".into(),
            });
        }
        Ok(Some(value))
    }

    /// Assemble an essential's config as the original does: `sosw_essential_config`, then
    /// `defaults`, then `<function_name>_config`, then `custom`.
    pub async fn load_essential<T: DeserializeOwned>(
        &self,
        function_name: &str,
        defaults: Value,
        custom: Option<Value>,
    ) -> Result<T, ConfigError> {
        let essential = self.get("sosw_essential_config").await?.unwrap_or(Value::Null);
        let own_name = format!("{function_name}_config");
        let own = self.get(&own_name).await?.unwrap_or(Value::Null);
        assemble(
            &own_name,
            &[essential, defaults, own, custom.unwrap_or(Value::Null)],
        )
    }
}
