//! The integration tests of sosw-tests, linked into one test binary: each file beside this one is
//! a module; `cargo nextest run -p sosw-tests -E 'test(/^FILE::/)'` runs one file's tests.
//! One binary per crate links the AWS SDK once instead of once per file: minutes of CI and
//! gigabytes of `target/` saved.

mod bad_input_corpus;
mod builds;
mod chaos;
mod cloudformation;
mod config_vs_python;
mod lifecycle;
mod monitoring;
