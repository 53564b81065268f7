//! How the workspace builds: `scripts/demo` compiles the dependencies once, and `cargo lambda
//! watch` runs the functions from that build.
//!
//! Cargo compiles a dependency again, with everything that depends on it, whenever a build
//! resolves its features differently. `scripts/demo` builds `sosw-demo` with the five Lambda
//! functions, and `cargo lambda watch` then runs each function with `cargo run --bin NAME`, which
//! resolves features for the workspace's `default-members` (the five functions) alone. Both must
//! resolve every shared crate alike, or the demo's first calls compile the AWS SDK a second time.

use sosw_tests::repo_root;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The packages `scripts/demo` builds: the `-p` arguments of its `cargo build` command (read from
/// the script, so that this test follows it).
fn demo_build_packages() -> Vec<String> {
    let script = std::fs::read_to_string(repo_root().join("scripts/demo")).expect("scripts/demo");
    // The command with its continuation lines joined.
    let command = script
        .replace("\\\n", " ")
        .lines()
        .find(|l| l.trim_start().starts_with("cargo build"))
        .expect("scripts/demo has a `cargo build` line")
        .to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    let packages: Vec<String> = words
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1].to_string())
        .collect();
    assert!(
        packages.iter().any(|p| p == "sosw-demo"),
        "scripts/demo builds sosw-demo: {command}"
    );
    packages
}

/// Each crate (`name vX.Y.Z`) of a build of `packages` (none: the default members), with the
/// feature sets it is built with (a crate built for the host and the target can have two).
fn resolved_features(packages: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut tree = Command::new(cargo);
    tree.current_dir(repo_root()).args([
        "tree",
        "--quiet",
        "--edges",
        "normal,build",
        "--format",
        "{p} [{f}]",
        "--prefix",
        "none",
        "--no-dedupe",
    ]);
    for p in packages {
        tree.args(["-p", p]);
    }
    let out = tree.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut crates: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let Some((name, features)) = line.split_once(" [") else {
            continue;
        };
        // `name vX.Y.Z (path)` for workspace crates, `name vX.Y.Z` for the others.
        let key = name.split(' ').take(2).collect::<Vec<_>>().join(" ");
        crates
            .entry(key)
            .or_default()
            .insert(features.trim_end_matches(']').to_string());
    }
    crates
}

#[test]
fn the_demo_and_the_functions_under_cargo_lambda_watch_share_one_build_of_every_dependency() {
    let demo = resolved_features(&demo_build_packages());
    let functions = resolved_features(&[]);
    assert!(
        functions.keys().any(|k| k.starts_with("aws-sdk-dynamodb ")),
        "the default members' build has the AWS SDK: {:?}",
        functions.keys().take(5).collect::<Vec<_>>()
    );
    let differing: Vec<String> = functions
        .iter()
        .filter_map(|(krate, features)| {
            let in_demo = demo.get(krate)?;
            (in_demo != features).then(|| format!("{krate}: functions {features:?}, demo build {in_demo:?}"))
        })
        .collect();
    assert!(
        differing.is_empty(),
        "scripts/demo would compile these (and all that depend on them) twice, once more under \
         cargo lambda watch:\n{}",
        differing.join("\n")
    );
    let missing: Vec<&String> = functions.keys().filter(|k| !demo.contains_key(*k)).collect();
    assert!(missing.is_empty(), "the demo build lacks {missing:?}");
}
