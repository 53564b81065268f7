//! The integration tests of sosw-cli, linked into one test binary: each file beside this one is
//! a module; `cargo nextest run -p sosw-cli -E 'test(/^FILE::/)'` runs one file's tests.
//! One binary per crate links the AWS SDK once instead of once per file: minutes of CI and
//! gigabytes of `target/` saved.

mod check;
mod cli;
mod job_checks;
mod plan_vs_python;
