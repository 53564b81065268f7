//! `sosw config get|put|diff`: the config documents of the essentials, where they live (the
//! DynamoDB config table or SSM, as `SOSW_CONFIG_SOURCE` / `SOSW_CONFIG_TABLE` / `SOSW_ENV` say),
//! without a Python heredoc.
//!
//! - `get NAME` prints a stored document.
//! - `put NAME FILE` (or `-` for stdin) stores one; the JSON is checked before anything is written.
//! - `diff ESSENTIAL` prints what the stored documents change in the effective config of an
//!   essential (its built-in defaults, `sosw_essential_config` and `<essential>_config`, assembled
//!   exactly as the essential does at start-up); with `--with NAME=FILE` it prints what storing
//!   those documents would change instead. `--full` prints the whole effective config.

use crate::ctx::hint;
use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};
use sosw_core::config_source::ConfigSource;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Arguments of `sosw config`.
#[derive(Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a stored config document (pretty JSON, with or without --json).
    #[command(after_help = "Example:\n  sosw config get sosw_scheduler_config > sosw_scheduler_config.json")]
    Get {
        /// Document name, e.g. `sosw_essential_config` or `sosw_scheduler_config`.
        name: String,
    },
    /// Store a config document from a file (`-`: standard input); other attributes of its row are kept.
    #[command(
        after_help = "Examples:\n  sosw config put sosw_scheduler_config sosw_scheduler_config.json\n  jq '.rows_to_process = 500' s.json | sosw config put sosw_scheduler_config -"
    )]
    Put {
        /// Document name.
        name: String,
        /// JSON file holding the document (an object).
        file: PathBuf,
    },
    /// Show what the stored documents (or proposed ones) change in an essential's effective config.
    #[command(
        after_help = "Examples:\n  sosw config diff sosw_orchestrator\n  sosw config diff scheduler --with sosw_scheduler_config=new.json --json\n  sosw config diff sosw_scheduler --function-name qa_sosw_scheduler --full"
    )]
    Diff {
        /// The essential whose effective config is assembled.
        essential: EssentialName,
        /// A proposed document: `NAME=FILE` (repeatable). Compares the effective config now with
        /// the one these documents would give, without storing them.
        #[arg(long = "with", value_name = "NAME=FILE")]
        with: Vec<String>,
        /// Print the whole effective config (with --with: the proposed one) instead of the changes.
        #[arg(long)]
        full: bool,
        /// The deployed function's name when it has a prefix (e.g. `qa_sosw_scheduler`): its own
        /// document is `<function name>_config`.
        #[arg(long, value_name = "NAME")]
        function_name: Option<String>,
    },
}

/// The essentials, by their function names.
#[derive(Clone, Copy, ValueEnum)]
pub enum EssentialName {
    /// `sosw_scheduler`
    #[value(name = "sosw_scheduler", alias = "scheduler")]
    Scheduler,
    /// `sosw_orchestrator`
    #[value(name = "sosw_orchestrator", alias = "orchestrator")]
    Orchestrator,
    /// `sosw_scavenger`
    #[value(name = "sosw_scavenger", alias = "scavenger")]
    Scavenger,
    /// `sosw_worker_assistant`
    #[value(name = "sosw_worker_assistant", alias = "worker-assistant")]
    WorkerAssistant,
}

impl EssentialName {
    /// The function name the essential's documents are named after.
    pub fn function_name(self) -> &'static str {
        match self {
            Self::Scheduler => "sosw_scheduler",
            Self::Orchestrator => "sosw_orchestrator",
            Self::Scavenger => "sosw_scavenger",
            Self::WorkerAssistant => "sosw_worker_assistant",
        }
    }

    /// The built-in defaults the essential assembles its config with.
    fn defaults(self) -> Value {
        match self {
            Self::Scheduler => sosw_scheduler::SchedulerConfig::defaults(),
            Self::Orchestrator => sosw_orchestrator::OrchestratorConfig::defaults(),
            Self::Scavenger => sosw_scavenger::ScavengerConfig::defaults(),
            // The Worker Assistant has no defaults layer of its own (see sosw-worker-assistant).
            Self::WorkerAssistant => json!({}),
        }
    }
}

/// Read a JSON document from a file, or standard input for `-`; it must be an object.
fn read_document(path: &Path) -> anyhow::Result<Value> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the document from standard input")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    if !doc.is_object() {
        bail!(
            "{} holds a JSON {}, but a config document is a JSON object",
            path.display(),
            kind(&doc)
        );
    }
    Ok(doc)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One change between two JSON documents, at a dotted path.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// Only in the new document.
    Added(String, Value),
    /// Only in the old document.
    Removed(String, Value),
    /// In both, with different values.
    Changed(String, Value, Value),
}

/// The changes from `old` to `new`, objects compared key by key (sorted), anything else as a whole.
pub fn changes(old: &Value, new: &Value) -> Vec<Change> {
    fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for k in keys {
                    match (a.get(k), b.get(k)) {
                        (Some(x), Some(y)) => walk(&join(k), x, y, out),
                        (Some(x), None) => out.push(Change::Removed(join(k), x.clone())),
                        (None, Some(y)) => out.push(Change::Added(join(k), y.clone())),
                        (None, None) => {}
                    }
                }
            }
            (a, b) if a != b => out.push(Change::Changed(path.to_string(), a.clone(), b.clone())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

/// One change as `sosw config diff --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct JsonChange {
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// The dotted path of the key (`task_config.max_attempts`).
    pub path: String,
    /// The value before (absent for `added`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after (absent for `removed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

impl From<&Change> for JsonChange {
    fn from(c: &Change) -> Self {
        match c {
            Change::Added(p, v) => Self {
                change: "added",
                path: p.clone(),
                old: None,
                new: Some(v.clone()),
            },
            Change::Removed(p, v) => Self {
                change: "removed",
                path: p.clone(),
                old: Some(v.clone()),
                new: None,
            },
            Change::Changed(p, a, b) => Self {
                change: "changed",
                path: p.clone(),
                old: Some(a.clone()),
                new: Some(b.clone()),
            },
        }
    }
}

/// What `sosw config diff --json` prints.
#[derive(Debug, Serialize)]
pub struct Diff {
    /// The function whose effective config is compared (`sosw_scheduler`, `qa_sosw_scheduler`...).
    pub function: String,
    /// What is compared with what, in words (the text output's header).
    pub compared: String,
    /// The changes, by path in key order.
    pub changes: Vec<JsonChange>,
}

/// What `sosw config put --json` prints.
#[derive(Debug, Serialize)]
pub struct Stored {
    /// The document name.
    pub name: String,
    /// Where it was stored.
    pub stored_in: String,
}

/// Render changes one per line: `+ path: value`, `- path: value`, `~ path: old -> new`.
pub fn render(changes: &[Change]) -> String {
    let mut s = String::new();
    for c in changes {
        let line = match c {
            Change::Added(p, v) => format!("+ {p}: {v}"),
            Change::Removed(p, v) => format!("- {p}: {v}"),
            Change::Changed(p, a, b) => format!("~ {p}: {a} -> {b}"),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

async fn source() -> anyhow::Result<ConfigSource> {
    let sdk = sosw_core::aws::load_sdk_config().await;
    Ok(ConfigSource::from_env(&sdk)?)
}

/// The effective config `essential`, deployed as `function`, assembles from `source`, through
/// the essentials' own code.
async fn effective(source: &ConfigSource, essential: EssentialName, function: &str) -> anyhow::Result<Value> {
    source
        .load_essential::<Value>(function, essential.defaults(), None)
        .await
        .map_err(|e| hint(anyhow!(e)))
}

/// Run `sosw config`.
pub async fn run(args: &ConfigArgs, json: bool) -> anyhow::Result<()> {
    match &args.command {
        ConfigCommand::Get { name } => {
            let source = source().await?;
            match source.get(name).await.map_err(|e| hint(anyhow!(e)))? {
                Some(doc) => println!("{}", serde_json::to_string_pretty(&doc)?),
                None => bail!(
                    "config document `{name}` is not in {} (`sosw config put {name} FILE` stores it)",
                    source.describe()
                ),
            }
        }
        ConfigCommand::Put { name, file } => {
            let doc = read_document(file)?;
            let source = source().await?;
            source.put(name, &doc).await.map_err(|e| hint(anyhow!(e)))?;
            if json {
                crate::output::print_json(&Stored {
                    name: name.clone(),
                    stored_in: source.describe(),
                })?;
            } else {
                eprintln!("stored `{name}` in {}", source.describe());
            }
        }
        ConfigCommand::Diff {
            essential,
            with,
            full,
            function_name,
        } => {
            let function = function_name.as_deref().unwrap_or(essential.function_name());
            let stored = source().await?;
            let mut proposed: BTreeMap<String, Value> = BTreeMap::new();
            for spec in with {
                let (name, file) = spec
                    .split_once('=')
                    .filter(|(n, f)| !n.is_empty() && !f.is_empty())
                    .ok_or_else(|| anyhow!("--with `{spec}`: expected NAME=FILE"))?;
                proposed.insert(name.to_string(), read_document(Path::new(file))?);
            }
            let (before, after, header) = if proposed.is_empty() {
                (
                    effective(&ConfigSource::None, *essential, function).await?,
                    effective(&stored, *essential, function).await?,
                    format!(
                        "{function}: built-in defaults -> effective config from {}",
                        stored.describe()
                    ),
                )
            } else {
                let names: Vec<&String> = proposed.keys().collect();
                let header = format!("{function}: effective config now -> with the proposed {names:?}");
                let overlay = ConfigSource::Overlay {
                    base: Box::new(stored.clone()),
                    documents: proposed,
                };
                (
                    effective(&stored, *essential, function).await?,
                    effective(&overlay, *essential, function).await?,
                    header,
                )
            };
            if *full {
                println!("{}", serde_json::to_string_pretty(&after)?);
            } else if json {
                crate::output::print_json(&Diff {
                    function: function.to_string(),
                    compared: header,
                    changes: changes(&before, &after).iter().map(JsonChange::from).collect(),
                })?;
            } else {
                let diff = changes(&before, &after);
                println!("# {header}");
                if diff.is_empty() {
                    println!("(no changes)");
                } else {
                    print!("{}", render(&diff));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_listed_per_nested_key_in_key_order() {
        let old = json!({"a": 1, "t": {"x": [1], "y": "same", "gone": true}});
        let new = json!({"a": 2, "t": {"x": [1, 2], "y": "same", "new": null}, "b": {}});
        assert_eq!(
            render(&changes(&old, &new)),
            "~ a: 1 -> 2\n+ b: {}\n- t.gone: true\n+ t.new: null\n~ t.x: [1] -> [1,2]\n"
        );
        assert!(changes(&old, &old).is_empty());
    }
}
