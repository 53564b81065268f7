//! # sosw-core
//!
//! The task model, managers and configuration of sosw, the Serverless Orchestrator of Serverless
//! Workers, wire-compatible with Python sosw 0.7.x: same tables, keys, indexes, attribute types
//! and config documents. No Lambda runtime in here: the essentials' binaries wrap this library.
//!
//! | module | what it holds | depends on (within the crate) |
//! |---|---|---|
//! | [`clock`] | injectable time | — |
//! | [`error`] | the typed errors, each naming its resource | — |
//! | [`pyjson`] | JSON text exactly as Python's `json.dumps` writes it (the crate `sosw-pyjson`, re-exported) | — |
//! | [`attr`] | DynamoDB items and attributes as Python sosw writes them | — |
//! | [`emf`] | run statistics as CloudWatch Embedded Metric Format lines | — |
//! | [`aws`] | building the AWS clients from the environment; the SDK retry policy and sosw's one bounded [`aws::backoff`] | — |
//! | [`config`] | typed config (`task_config`, labourers, ecology, meta), its defaults, layered assembly and validation | `error` |
//! | [`config_source`] | reading config documents from the DynamoDB `config` table or SSM | `config`, `error` |
//! | [`labourer`] | a worker type and its per-run registration times (`start`, `invoked`, `expired`) | `config` |
//! | [`invoker`] | asynchronous Lambda invocation | `error` |
//! | [`task`] | the stored task ([`task::model`]), the [`TaskManager`] (queue, claim, moves, reports) | `aws`, `clock`, `config`, `error`, `labourer`, `pyjson`, `meta` |
//! | [`task::store`] | the [`TaskStore`] the TaskManager stands on: [`DynamoStore`] (production), [`MemoryStore`] (tests) | `aws`, `error` |
//! | [`task::payload`] | payload encoding, pure: task payloads, worker events, flattened reports | `pyjson`, `error` |
//! | [`meta`] | optional history rows in `sosw_tasks_meta` | `attr`, `clock`, `config`, `error` |
//! | [`ecology`] | health from CloudWatch metrics, running-task counts | `clock`, `config`, `error`, `labourer`, `task` |
//! | [`check`] | `sosw check`: a read-only fsck of an installation (tables, queue files, failed jobs) | `config`, `task` |
//!
//! `config` depends on no other domain module: the checks that span labourers and metrics
//! (`validate_timing`, `validate_feelings`) live in it, so `config` → `labourer` → `ecology` is
//! one direction; `task` → `meta` → `attr` likewise (the item helpers both use live in `attr`).
//!
//! ## Greenfield
//! A task's state lives in one number, its greenfield, on the `sosw_tasks_greenfield` index
//! (hash `labourer_id`, range `greenfield`). Queued tasks have small greenfields (1000, 2000,
//! ...: their queue position); invoking a task sets it to `now + greenfield_invocation_delta`
//! (a year ahead), so for a labourer registered at `start`:
//! `greenfield < start` is queued, `expired..=invoked` is running, `start..expired` is expired,
//! and a task with `completed_at` is completed.

#![warn(missing_docs)]

pub mod attr;
pub mod aws;
pub mod check;
pub mod clock;
pub mod config;
pub mod config_source;
pub mod ecology;
pub mod emf;
pub mod error;
pub mod invoker;
pub mod labourer;
pub mod meta;
pub mod task;

pub use sosw_pyjson as pyjson;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::TaskConfig;
pub use ecology::EcologyManager;
pub use error::{
    AwsError, AwsFailure, ConfigError, EcologyError, InvokeError, InvokeFailure, TaskError, TaskWhereabouts,
};
pub use labourer::{EcoStatus, Labourer};
pub use meta::MetaHandler;
pub use task::{ClaimOutcome, DynamoStore, MemoryStore, Task, TaskId, TaskManager, TaskStore};

#[cfg(test)]
mod module_graph {
    use std::collections::{BTreeMap, BTreeSet};

    /// The modules each top-level module of the crate names (`crate::<module>`, or a re-export
    /// of the crate root resolved to its module), read from the sources.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let reexports = [
            ("Clock", "clock"),
            ("ManualClock", "clock"),
            ("SystemClock", "clock"),
            ("TaskConfig", "config"),
            ("EcologyManager", "ecology"),
            ("ConfigError", "error"),
            ("TaskError", "error"),
            ("EcoStatus", "labourer"),
            ("Labourer", "labourer"),
            ("MetaHandler", "meta"),
            ("TaskManager", "task"),
            ("Task", "task"),
        ];
        let mut graph = BTreeMap::new();
        let mut files = vec![];
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // Every file under a module's directory (e.g. `task/store/*.rs`) belongs to it.
                let module = path.file_name().unwrap().to_string_lossy().to_string();
                let mut dirs = vec![path.clone()];
                while let Some(dir) = dirs.pop() {
                    for sub in std::fs::read_dir(&dir).unwrap() {
                        let sub = sub.unwrap().path();
                        if sub.is_dir() {
                            dirs.push(sub);
                        } else {
                            files.push((module.clone(), sub));
                        }
                    }
                }
            } else if path.file_name().unwrap() != "lib.rs" {
                files.push((path.file_stem().unwrap().to_string_lossy().to_string(), path));
            }
        }
        for (module, path) in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let deps: &mut BTreeSet<String> = graph.entry(module.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let target = reexports
                    .iter()
                    .find(|(item, _)| *item == name)
                    .map(|(_, m)| m.to_string())
                    .unwrap_or(name);
                if target != module && !target.is_empty() {
                    deps.insert(target);
                }
            }
        }
        graph
    }

    fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if d == to {
                    return true;
                }
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        false
    }

    #[test]
    fn config_labourer_and_ecology_depend_one_way() {
        let g = graph();
        assert!(
            g["config"].iter().all(|d| d == "error"),
            "config names {:?}",
            g["config"]
        );
        for (a, b) in [
            ("labourer", "config"),
            ("ecology", "labourer"),
            ("ecology", "config"),
        ] {
            assert!(reaches(&g, a, b), "{a} should use {b}");
            assert!(!reaches(&g, b, a), "{b} reaches {a}: an import cycle ({g:?})");
        }
        for leaf in ["clock", "error", "emf", "aws", "attr"] {
            assert!(g[leaf].is_empty(), "{leaf} names {:?}", g[leaf]);
        }
        assert!(
            reaches(&g, "task", "meta") && !reaches(&g, "meta", "task"),
            "{g:?}"
        );
        // No module of the crate is on an import cycle.
        for m in g.keys() {
            assert!(!reaches(&g, m, m), "{m} is on an import cycle ({g:?})");
        }
    }
}
