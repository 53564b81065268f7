//! End to end: the whole orchestration lifecycle through the README's main command, `scripts/demo`,
//! smaller — moto with the storage stack, the essentials and the example worker as Lambdas under
//! `cargo lambda watch`, a job, retries and dead tasks, and a summary in which every task is
//! accounted for.

use sosw_tests::repo_root;
use std::process::Command;

#[test]
fn the_whole_lifecycle_balances_completed_plus_dead_equals_scheduled() {
    let root = repo_root();
    // scripts/demo builds the functions and the demo in one build that `cargo lambda watch` then
    // reuses (builds::the_demo_and_the_functions_...), so no function compiles on its first call.
    let out = Command::new(root.join("scripts/demo"))
        .current_dir(&root)
        .args([
            "--tasks",
            "40",
            "--fail-rate",
            "0.15",
            "--timeout-rate",
            "0.05",
            "--interval",
            "1",
            "--plain",
            "--deadline",
            "600",
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .expect("a summary line");
    assert!(summary.contains("scheduled 40"), "{summary}");
    assert!(stdout.contains("every task accounted for"), "{stdout}");
    // With a 15% failure share some tasks must have died after their retries.
    let dead: u64 = summary
        .split("dead ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap();
    assert!(dead > 0 && dead < 40, "{summary}");

    // The deployed binaries' metrics, as CloudWatch would read them from the functions' output:
    // the Worker Assistant counts accepted reports under the reported task's labourer.
    let lambdas =
        std::fs::read_to_string(root.join("target/sosw-demo-lambdas.log")).expect("the functions' output");
    // Every function ran from scripts/demo's build: cargo lambda watch compiled nothing.
    let compiled: Vec<&str> = lambdas
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling "))
        .collect();
    assert!(
        compiled.is_empty(),
        "functions compiled again under cargo lambda watch: {compiled:?}"
    );
    let accepted: Vec<serde_json::Value> = lambdas
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"reports_accepted\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["reports_accepted"] == 1.0)
        .collect();
    assert!(
        !accepted.is_empty(),
        "no accepted report in the functions' output"
    );
    for line in &accepted {
        assert_eq!(line["function"], "sosw_worker_assistant", "{line}");
        assert_eq!(line["labourer_id"], "sosw-example-worker", "{line}");
    }
}
