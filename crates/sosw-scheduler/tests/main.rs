//! The integration tests of sosw-scheduler, linked into one test binary: each file beside this one is
//! a module; `cargo nextest run -p sosw-scheduler -E 'test(/^FILE::/)'` runs one file's tests.
//! One binary per crate links the AWS SDK once instead of once per file: minutes of CI and
//! gigabytes of `target/` saved.

mod common;
mod concurrent_continuations;
mod job_intake;
mod scheduler;
