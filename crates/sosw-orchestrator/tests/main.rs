//! The integration tests of sosw-orchestrator, linked into one test binary: each file beside this one is
//! a module; `cargo nextest run -p sosw-orchestrator -E 'test(/^FILE::/)'` runs one file's tests.
//! One binary per crate links the AWS SDK once instead of once per file: minutes of CI and
//! gigabytes of `target/` saved.

mod orchestrator;
mod orchestrator_memory;
