//! # sosw-core
//!
//! The task model, managers and configuration of sosw, the Serverless Orchestrator of Serverless
//! Workers, wire-compatible with Python sosw 0.7.x: same tables, keys, indexes, attribute types
//! and config documents. No Lambda runtime in here: the essentials' binaries wrap this library.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | typed config (`task_config`, labourers, ecology, meta), layered assembly |
//! | [`config_source`] | reading config documents from the DynamoDB `config` table or SSM |
//! | [`labourer`] | a worker type and its per-run registration times (`start`, `invoked`, `expired`) |
//! | [`task`] | the stored task ([`task::model`]) and the [`TaskManager`] over DynamoDB |
//! | [`ecology`] | health from CloudWatch metrics, running-task counts |
//! | [`emf`] | run statistics as CloudWatch Embedded Metric Format lines |
//! | [`meta`] | optional history rows in `sosw_tasks_meta` |
//! | [`invoker`] | asynchronous Lambda invocation |
//! | [`clock`] | injectable time |
//! | [`pyjson`] | JSON text exactly as Python's `json.dumps` writes it |
//! | [`aws`] | building the AWS clients from the environment |
//! | [`check`] | `sosw check`: a read-only fsck of an installation (tables, queue files, failed jobs) |
//!
//! ## Greenfield
//! A task's state lives in one number, its greenfield, on the `sosw_tasks_greenfield` index
//! (hash `labourer_id`, range `greenfield`). Queued tasks have small greenfields (1000, 2000,
//! ...: their queue position); invoking a task sets it to `now + greenfield_invocation_delta`
//! (a year ahead), so for a labourer registered at `start`:
//! `greenfield < start` is queued, `expired..=invoked` is running, `start..expired` is expired,
//! and a task with `completed_at` is completed.

#![warn(missing_docs)]

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
pub mod pyjson;
pub mod task;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::TaskConfig;
pub use ecology::EcologyManager;
pub use error::{ConfigError, EcologyError, InvokeError, InvokeFailure, TaskError, TaskWhereabouts};
pub use labourer::{EcoStatus, Labourer};
pub use meta::MetaHandler;
pub use task::{ClaimOutcome, Task, TaskId, TaskManager};
