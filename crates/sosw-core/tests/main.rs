//! The integration tests of sosw-core, linked into one test binary: each file beside this one is
//! a module; `cargo nextest run -p sosw-core -E 'test(/^FILE::/)'` runs one file's tests.
//! One binary per crate links the AWS SDK once instead of once per file: minutes of CI and
//! gigabytes of `target/` saved.

mod aws_errors;
mod common;
mod config_source_rw;
mod ecology_config_meta;
mod lost_answers;
mod lost_transaction_answer;
mod python_compat;
mod store_contract;
mod store_failures;
mod task_manager;
