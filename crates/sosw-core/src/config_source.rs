//! Where config documents come from: the DynamoDB `config` table (Python sosw's default) or SSM
//! Parameter Store, chosen by the `SOSW_CONFIG_SOURCE` environment variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SOSW_CONFIG_SOURCE` | `dynamo` | `dynamo`, `ssm`, or `none` (only built-in defaults and custom config) |
//! | `SOSW_CONFIG_TABLE` | `config` | the DynamoDB table (hash `env`, range `config_name`, value `config_value`) |
//! | `SOSW_ENV` | `production` | the `env` hash key to read |
//!
//! As in Python sosw, a document that does not exist, and one whose value is empty or falsy JSON
//! (`null`, `{}`, `""`, `0`, `false`, `[]`), counts as absent, and a missing config table means
//! "no documents" (the essential runs on its defaults, with a warning). Any other failure to read
//! the table (access denied, throttling, network) stops the essential: running on defaults then
//! could point it at another installation's tables (see docs/differences.md).

use crate::config::{assemble_effective, falsy, ConfigDocuments};
use crate::error::{AwsError, ConfigError};
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
    /// Documents that stand in for those of `base` (the rest is read from `base`): what an
    /// essential would run with if these documents were stored (`sosw config diff`).
    Overlay {
        /// Where the other documents come from.
        base: Box<ConfigSource>,
        /// Replacement documents by name.
        documents: std::collections::BTreeMap<String, Value>,
    },
}

impl ConfigSource {
    /// Choose the source from `SOSW_CONFIG_SOURCE` / `SOSW_CONFIG_TABLE` / `SOSW_ENV`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Self::from_env_with(sdk, || aws_sdk_dynamodb::Client::new(sdk))
    }

    /// As [`Self::from_env`], reading the config table with the essential's own DynamoDB client
    /// (one client built at start-up instead of two).
    pub fn from_env_sharing(
        sdk: &aws_config::SdkConfig,
        dynamodb: &aws_sdk_dynamodb::Client,
    ) -> Result<Self, ConfigError> {
        Self::from_env_with(sdk, || dynamodb.clone())
    }

    fn from_env_with(
        sdk: &aws_config::SdkConfig,
        dynamodb: impl FnOnce() -> aws_sdk_dynamodb::Client,
    ) -> Result<Self, ConfigError> {
        let kind = std::env::var("SOSW_CONFIG_SOURCE").unwrap_or_else(|_| "dynamo".into());
        match kind.to_ascii_lowercase().as_str() {
            "dynamo" | "dynamodb" => Ok(Self::Dynamo {
                client: dynamodb(),
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

    /// Where documents are read from and written to, for messages: ``DynamoDB table `config`
    /// (env `production`)`` or `SSM Parameter Store`.
    pub fn describe(&self) -> String {
        match self {
            Self::Dynamo { table, env, .. } => format!("DynamoDB table `{table}` (env `{env}`)"),
            Self::Ssm { .. } => "SSM Parameter Store".into(),
            Self::None => "no config source (SOSW_CONFIG_SOURCE=none)".into(),
            Self::Overlay { base, .. } => format!("{} with replaced documents", base.describe()),
        }
    }

    /// Read the document `name`. `Ok(None)` when it does not exist, or the config table does not
    /// exist (Python sosw's behaviour: the essential runs on defaults).
    pub async fn get(&self, name: &str) -> Result<Option<Value>, ConfigError> {
        self.fetch(name, true).await
    }

    /// Fail unless the config source can be read: a missing config table is an error here (for
    /// operator tools, where it means a wrong account, region or `SOSW_CONFIG_TABLE`).
    pub async fn check_readable(&self) -> Result<(), ConfigError> {
        self.fetch("sosw_essential_config", false).await.map(|_| ())
    }

    async fn fetch(&self, name: &str, missing_table_is_empty: bool) -> Result<Option<Value>, ConfigError> {
        let raw = match self {
            Self::None => return Ok(None),
            Self::Overlay { base, documents } => {
                return match documents.get(name) {
                    Some(doc) => Ok(Some(doc.clone())),
                    None => Box::pin(base.fetch(name, missing_table_is_empty)).await,
                };
            }
            Self::Dynamo { client, table, env } => {
                // A Query on the full key, not GetItem: the roles of a Python sosw deployment
                // grant `dynamodb:Query` on the config table (Python reads it that way), so the
                // same role serves both implementations.
                let out = client
                    .query()
                    .table_name(table)
                    .key_condition_expression("#env = :env AND #name = :name")
                    .expression_attribute_names("#env", "env")
                    .expression_attribute_names("#name", "config_name")
                    .expression_attribute_values(":env", AttributeValue::S(env.clone()))
                    .expression_attribute_values(":name", AttributeValue::S(name.to_string()))
                    .send()
                    .await;
                let out = match out {
                    Ok(out) => out,
                    Err(e)
                        if missing_table_is_empty
                            && e.as_service_error()
                                .is_some_and(|se| se.is_resource_not_found_exception()) =>
                    {
                        tracing::warn!(
                            config_name = name,
                            table = %table,
                            "the config table does not exist: running on defaults, as Python sosw does"
                        );
                        return Ok(None);
                    }
                    Err(e) => {
                        return Err(ConfigError::Source {
                            name: name.into(),
                            source_kind: format!("DynamoDB table `{table}`"),
                            source: AwsError::from_sdk(e),
                        })
                    }
                };
                match out.items().first().and_then(|i| i.get("config_value")) {
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
                        source: AwsError::from_sdk(e),
                    })?;
                match out.parameters().first().and_then(|p| p.value()) {
                    Some(v) => v.to_string(),
                    None => return Ok(None),
                }
            }
        };
        parse_document(name, &raw)
    }

    /// Read the documents essential `function_name` is assembled from: `sosw_essential_config`
    /// and its own document, both requests in flight at once (one round trip at start-up). When
    /// both fail, the error is the essential config's.
    pub async fn load_documents(
        &self,
        function_name: &str,
        custom: Option<Value>,
    ) -> Result<ConfigDocuments, ConfigError> {
        let own_name = format!("{function_name}_config");
        let (essential, own) = futures::join!(self.get("sosw_essential_config"), self.get(&own_name));
        Ok(ConfigDocuments {
            essential: essential?,
            own: own?,
            custom,
        })
    }

    /// Store `doc` (a JSON object) as the document `name`, as Python sosw's `update_config`
    /// does: in the config table, `config_value` of the row (`env`, `config_name`) is set and the
    /// row's other attributes are kept; in SSM the parameter is overwritten (keeping its type) or
    /// created as a `String`.
    pub async fn put(&self, name: &str, doc: &Value) -> Result<(), ConfigError> {
        if !doc.is_object() {
            return Err(ConfigError::Shape {
                name: name.into(),
                path: ".".into(),
                reason: "a config document must be a JSON object".into(),
            });
        }
        let text = doc.to_string();
        let failed = |e: AwsError| ConfigError::Source {
            name: name.into(),
            source_kind: self.describe(),
            source: e,
        };
        match self {
            Self::Dynamo { client, table, env } => {
                client
                    .update_item()
                    .table_name(table)
                    .key("env", AttributeValue::S(env.clone()))
                    .key("config_name", AttributeValue::S(name.to_string()))
                    .update_expression("SET config_value = :value")
                    .expression_attribute_values(":value", AttributeValue::S(text))
                    .send()
                    .await
                    .map_err(|e| failed(AwsError::from_sdk(e)))?;
            }
            Self::Ssm { client } => {
                let exists = client
                    .get_parameters()
                    .names(name)
                    .send()
                    .await
                    .map_err(|e| failed(AwsError::from_sdk(e)))?
                    .parameters()
                    .iter()
                    .any(|p| p.name() == Some(name));
                let mut put = client.put_parameter().name(name).value(text).overwrite(exists);
                if !exists {
                    put = put.r#type(aws_sdk_ssm::types::ParameterType::String);
                }
                put.send().await.map_err(|e| failed(AwsError::from_sdk(e)))?;
            }
            Self::None | Self::Overlay { .. } => {
                return Err(ConfigError::Invalid(format!(
                    "cannot store config `{name}` in {}: choose SOSW_CONFIG_SOURCE=dynamo or ssm",
                    self.describe()
                )))
            }
        }
        Ok(())
    }

    /// Assemble an essential's config as the original does: `sosw_essential_config`, then
    /// `defaults`, then `<function_name>_config`, then `custom`.
    pub async fn load_essential<T: DeserializeOwned>(
        &self,
        function_name: &str,
        defaults: Value,
        custom: Option<Value>,
    ) -> Result<T, ConfigError> {
        let documents = self.load_documents(function_name, custom).await?;
        assemble_effective(&format!("{function_name}_config"), &defaults, &documents)
    }
}

/// A stored `config_value`: `None` when empty or falsy JSON (Python's `get_config(...) or {}`),
/// the object otherwise; anything else is refused (Python sosw crashes on it at start-up).
pub fn parse_document(name: &str, raw: &str) -> Result<Option<Value>, ConfigError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(raw).map_err(|e| ConfigError::Shape {
        name: name.into(),
        path: ".".into(),
        reason: format!("config_value is not valid JSON: {e}"),
    })?;
    if falsy(&value) {
        return Ok(None);
    }
    if !value.is_object() {
        return Err(ConfigError::Shape {
            name: name.into(),
            path: ".".into(),
            reason: format!("expected a JSON object, found {value}"),
        });
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falsy_documents_are_absent_as_in_python() {
        for raw in ["", "null", "{}", "0", "false", "\"\"", "[]", "0.0"] {
            assert_eq!(parse_document("d", raw).unwrap(), None, "{raw}");
        }
        assert!(parse_document("d", r#"{"a": 1}"#).unwrap().is_some());
        for raw in ["[1]", "3", "\"x\"", "not json"] {
            let err = parse_document("d", raw).unwrap_err().to_string();
            assert!(err.contains('d'), "{err}");
        }
    }
}
