//! The monitoring stack (`cloudformation/sosw-monitoring.yaml`) reads the metrics the essentials
//! really print: every `sosw` metric its alarms and dashboard name is declared, for that
//! essential, by the EMF lines the essentials' own code builds — one source of truth, so renaming
//! a metric without the stack (or the reverse) fails here. The stack's deployment on the local AWS
//! is in `cloudformation.rs`.

use serde_json::{json, Value};
use sosw_tests::template;
use std::collections::{BTreeMap, BTreeSet};

/// Metric names each essential declares in its EMF lines, and the dimension sets it declares.
fn printed() -> (BTreeMap<&'static str, BTreeSet<String>>, BTreeSet<String>) {
    let mut orchestrator = sosw_orchestrator::RunStats::default();
    orchestrator.labourers.insert(
        "worker".into(),
        sosw_orchestrator::LabourerStats {
            queue_head_age_seconds: Some(5),
            ..Default::default()
        },
    );
    let mut scavenger = sosw_scavenger::RunStats::default();
    scavenger
        .labourers
        .insert("worker".into(), sosw_scavenger::LabourerStats::default());
    let lines: Vec<(&'static str, String)> =
        sosw_orchestrator::emf_lines("sosw_orchestrator", &orchestrator, 1)
            .into_iter()
            .map(|l| ("sosw_orchestrator", l))
            .chain(
                sosw_scavenger::emf_lines("sosw_scavenger", &scavenger, 1)
                    .into_iter()
                    .map(|l| ("sosw_scavenger", l)),
            )
            .chain([
                (
                    "sosw_scheduler",
                    sosw_scheduler::emf_line("sosw_scheduler", &Default::default(), 1),
                ),
                (
                    "sosw_worker_assistant",
                    sosw_worker_assistant::emf_line("sosw_worker_assistant", Some("worker"), true, 1),
                ),
                (
                    "sosw_worker_assistant",
                    sosw_worker_assistant::emf_line("sosw_worker_assistant", None, false, 1),
                ),
            ])
            .collect();
    let mut names: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut dimension_sets = BTreeSet::new();
    for (essential, line) in lines {
        let doc: Value = serde_json::from_str(&line).expect("an EMF line is JSON");
        let decl = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Namespace"], "sosw", "{line}");
        for set in decl["Dimensions"].as_array().expect("dimension sets") {
            dimension_sets.insert(set.to_string());
        }
        for metric in decl["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().expect("a metric name").to_string();
            assert!(
                doc.get(&name).is_some(),
                "{essential} declares {name} without a value: {line}"
            );
            names.entry(essential).or_default().insert(name);
        }
    }
    (names, dimension_sets)
}

/// `${NamePrefix}sosw_x` → `sosw_x`.
fn essential_of(function: &Value) -> String {
    let sub = function["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("a function dimension is `!Sub \"${{NamePrefix}}sosw_...\"`: {function}"));
    sub.strip_prefix("${NamePrefix}")
        .unwrap_or_else(|| panic!("{sub} starts with ${{NamePrefix}}"))
        .to_string()
}

/// Every (essential, metric) of namespace `sosw` an alarm reads, with the dimensions it uses.
fn alarm_metrics(t: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for (name, resource) in t["Resources"].as_object().expect("resources") {
        if resource["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let p = &resource["Properties"];
        let mut metrics: Vec<&Value> = vec![p];
        if let Some(list) = p["Metrics"].as_array() {
            metrics.extend(
                list.iter()
                    .filter_map(|m| m.get("MetricStat").map(|s| &s["Metric"])),
            );
        }
        for m in metrics {
            if m["Namespace"] != "sosw" {
                continue;
            }
            let dims = m["Dimensions"].as_array().expect("dimensions");
            let function = dims
                .iter()
                .find(|d| d["Name"] == "function")
                .unwrap_or_else(|| panic!("alarm {name} names its essential"));
            out.push((
                essential_of(&function["Value"]),
                m["MetricName"].as_str().expect("a metric name").to_string(),
                dims.iter()
                    .map(|d| d["Name"].as_str().unwrap_or_default().to_string())
                    .collect(),
            ));
        }
    }
    out
}

#[test]
fn every_sosw_metric_of_the_alarms_and_dashboard_is_printed_by_its_essential() {
    let (printed, dimension_sets) = printed();
    let t = template("sosw-monitoring.yaml");

    // Alarms: on the per-essential rollup (an alarm cannot search over labourer ids).
    let alarms = alarm_metrics(&t);
    assert!(alarms.len() >= 3, "{alarms:?}");
    for (essential, metric, dims) in &alarms {
        assert!(
            printed
                .get(essential.as_str())
                .is_some_and(|n| n.contains(metric)),
            "an alarm reads {metric} of {essential}, which prints {:?}",
            printed.get(essential.as_str())
        );
        assert_eq!(dims, &["function"], "{metric}: alarms read the rollup");
    }
    assert!(
        dimension_sets.contains(r#"["function"]"#),
        "the essentials declare the rollup the alarms read: {dimension_sets:?}"
    );

    // Dashboard: SEARCH expressions per labourer.
    let body = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the dashboard body is a !Sub string");
    let mut searched = 0;
    for part in body.split("MetricName=\\\"").skip(1) {
        let metric = &part[..part.find("\\\"").expect("a closing quote")];
        let rest = &part[metric.len()..];
        let function = rest
            .split("function=\\\"${NamePrefix}")
            .nth(1)
            .filter(|_| {
                rest.find("function=")
                    .is_some_and(|i| i < rest.find('\'').unwrap_or(usize::MAX))
            })
            .map(|f| &f[..f.find("\\\"").expect("a closing quote")]);
        match function {
            Some(essential) => assert!(
                printed.get(essential).is_some_and(|n| n.contains(metric)),
                "the dashboard graphs {metric} of {essential}, which prints {:?}",
                printed.get(essential)
            ),
            None => assert!(
                printed.values().any(|n| n.contains(metric)),
                "the dashboard graphs {metric}, which no essential prints"
            ),
        }
        searched += 1;
    }
    assert!(searched >= 10, "the dashboard's searches were found ({searched})");
    assert!(
        body.contains("{sosw,function,labourer_id}"),
        "per-labourer graphs search the per-labourer dimension set"
    );
    assert!(dimension_sets.contains(r#"["function","labourer_id"]"#));
}

/// The alarms the runbook names (docs/operations.md): each exists with its metric, comparison and
/// threshold, sends to the installation's alarm topic (created, or the one given), points to its
/// runbook section (which exists), and the dashboard's alarm widget lists every one of them.
/// moto's CloudFormation does not create `AWS::CloudWatch::Alarm`, so this reads the template (as
/// cfn-lint validates it); the metrics of namespace `sosw` are checked against what the essentials
/// print by the test above.
#[test]
fn every_alarm_sends_to_the_alarm_topic_and_points_to_its_runbook_section() {
    let t = template("sosw-monitoring.yaml");
    // (resource, alarm name, metric or metric-math ids, comparison, threshold, missing data, runbook anchor)
    let expected: [(&str, &str, &str, &str, Value, &str, &str); 7] = [
        (
            "DeadTasksAlarm",
            "sosw_dead_tasks",
            "sosw/dead",
            "GreaterThanOrEqualToThreshold",
            json!(1),
            "notBreaching",
            "dead-tasks",
        ),
        (
            "QuarantinedRowsAlarm",
            "sosw_quarantined_rows",
            "sosw/quarantined",
            "GreaterThanOrEqualToThreshold",
            json!(1),
            "notBreaching",
            "corrupt-rows-quarantined",
        ),
        (
            "EssentialErrorsAlarm",
            "sosw_essential_errors",
            "AWS/Lambda/Errors",
            "GreaterThanOrEqualToThreshold",
            json!(1),
            "notBreaching",
            "an-essential-fails",
        ),
        (
            "FailedJobsAlarm",
            "sosw_failed_jobs",
            "AWS/SQS/ApproximateNumberOfMessagesVisible",
            "GreaterThanOrEqualToThreshold",
            json!(1),
            "notBreaching",
            "a-job-failed",
        ),
        (
            "OrchestratorSilentAlarm",
            "sosw_orchestrator_silent",
            "AWS/Lambda/Invocations",
            "LessThanThreshold",
            json!(1),
            "breaching",
            "the-orchestrator-stopped",
        ),
        (
            "QueueHeadAgeAlarm",
            "sosw_queue_too_old",
            "sosw/queue_head_age_seconds",
            "GreaterThanThreshold",
            json!({"Ref": "QueueHeadAgeSeconds"}),
            "notBreaching",
            "a-labourer-stopped",
        ),
        (
            "ThrottledInvokesAlarm",
            "sosw_throttled_invokes",
            "sosw/throttled",
            "GreaterThanOrEqualToThreshold",
            json!({"Ref": "ThrottledInvokesPerFiveMinutes"}),
            "notBreaching",
            "a-throttled-worker",
        ),
    ];
    let runbook = std::fs::read_to_string(sosw_tests::repo_root().join("docs/operations.md")).unwrap();
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let resources = t["Resources"].as_object().unwrap();
    let alarms: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        alarms,
        expected.iter().map(|e| e.0).collect::<BTreeSet<_>>(),
        "the template's alarms are the runbook's"
    );
    let action =
        json!([{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "ExistingAlarmTopicArn"}]}]);
    let widget = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the dashboard body is one Fn::Sub string")
        .to_string();
    for (resource, name, metric, comparison, threshold, missing, anchor) in &expected {
        let p = &resources[*resource]["Properties"];
        assert_eq!(
            p["AlarmName"],
            json!({"Fn::Sub": format!("${{NamePrefix}}{name}")}),
            "{resource}"
        );
        assert_eq!(p["AlarmActions"], action, "{resource} sends to the alarm topic");
        assert_eq!(p["ComparisonOperator"], *comparison, "{resource}");
        assert_eq!(p["Threshold"], *threshold, "{resource}");
        assert_eq!(p["TreatMissingData"], *missing, "{resource}");
        let metrics: Vec<String> = std::iter::once(p)
            .chain(
                p["Metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.get("MetricStat").map(|s| &s["Metric"])),
            )
            .filter(|m| m["MetricName"].is_string())
            .map(|m| {
                format!(
                    "{}/{}",
                    m["Namespace"].as_str().unwrap(),
                    m["MetricName"].as_str().unwrap()
                )
            })
            .collect();
        assert!(
            !metrics.is_empty() && metrics.iter().all(|m| m == metric),
            "{resource} reads {metric}: {metrics:?}"
        );
        let description = p["AlarmDescription"].as_str().unwrap_or_default();
        assert!(
            description.contains(&format!("docs/operations.md#{anchor}")),
            "{resource} points to its runbook section: {description}"
        );
        assert!(
            anchors.contains(*anchor),
            "docs/operations.md has `## ...` for #{anchor}: {anchors:?}"
        );
        assert!(
            widget.contains(&format!("alarm:${{NamePrefix}}{name}\"")),
            "the dashboard's alarm widget shows {name}"
        );
    }
}

/// What the monitoring stack imports from `SchedulerStackName` is exported by both ways of
/// deploying the Scheduler: its own stack and the SAM template.
#[test]
fn the_monitoring_stack_imports_only_what_the_scheduler_stack_and_the_sam_template_export() {
    let monitoring =
        std::fs::read_to_string(sosw_tests::repo_root().join("cloudformation/sosw-monitoring.yaml")).unwrap();
    let imported: BTreeSet<String> = monitoring
        .split("${SchedulerStackName}-")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect())
        .collect();
    assert!(imported.contains("FailedJobsQueueName"), "{imported:?}");
    for file in ["sosw-scheduler.yaml", "sosw-sam.yaml"] {
        let t = template(file);
        let exported: BTreeSet<String> = t["Outputs"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|o| o["Export"]["Name"]["Fn::Sub"].as_str())
            .filter_map(|n| n.strip_prefix("${AWS::StackName}-"))
            .map(str::to_string)
            .collect();
        assert!(
            imported.is_subset(&exported),
            "{file} exports {exported:?}, the monitoring stack imports {imported:?}"
        );
    }
}
