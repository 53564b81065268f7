//! The CloudFormation stacks users deploy (`cloudformation/*.yaml`): cfn-lint is clean, and the
//! storage stack plus the four function stacks create on the local AWS (moto) with exactly the
//! tables, indexes, bucket, topic, functions, log groups, schedules, exports and least-privilege
//! IAM policies specified.
//!
//! What moto 5.2.5 does not do through CloudFormation, and how it is covered instead (the
//! templates stay written for real AWS; these properties are checked in the template itself):
//! - `AWS::S3::Bucket`: only `BucketEncryption` and `Tags` are applied; `PublicAccessBlockConfiguration`,
//!   `OwnershipControls` and `LifecycleConfiguration` are ignored.
//! - `AWS::S3::BucketPolicy`, `AWS::SNS::Subscription`, `AWS::Lambda::EventInvokeConfig`: not
//!   supported, skipped with a warning (the stack still completes).
//! - `AWS::Lambda::Function`: `Architectures` and `LoggingConfig` are ignored (functions come out
//!   `x86_64`, logging unset).
//! - `AWS::DynamoDB::Table`: `PointInTimeRecoverySpecification` is ignored (PITR reads DISABLED).
//! - `AWS::IAM::Role` inline policies are stored as a Python `repr`, not JSON
//!   (see `sosw_tests::policy_document`); `!GetAtt LogGroup.Arn` lacks the `:*` suffix real
//!   CloudFormation returns.
//! - Capabilities (`CAPABILITY_IAM`) are not enforced.

use aws_sdk_dynamodb::types::{KeyType, ProjectionType, TableDescription};
use serde_json::{json, Value};
use sosw_test_support::LocalAws;
use sosw_tests::{cfn_lint, lambda_zip, policy_document, statements, template, templates, Statement};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-west-2";
const CODE_BUCKET: &str = "sosw-code";

/// The four essentials: (stack template, package name, default function name = binary name).
const ESSENTIALS: [(&str, &str, &str); 4] = [
    ("sosw-orchestrator.yaml", "sosw-orchestrator", "sosw_orchestrator"),
    ("sosw-scheduler.yaml", "sosw-scheduler", "sosw_scheduler"),
    ("sosw-scavenger.yaml", "sosw-scavenger", "sosw_scavenger"),
    (
        "sosw-worker-assistant.yaml",
        "sosw-worker-assistant",
        "sosw_worker_assistant",
    ),
];

#[test]
fn every_template_passes_cfn_lint_without_warnings() {
    let all = templates();
    let names: BTreeSet<String> = all
        .iter()
        .map(|p| p.file_name().expect("file name").to_string_lossy().into_owned())
        .collect();
    let others = [
        "sosw-storage.yaml",
        "sosw-python-role-grants.yaml",
        "sosw-example-worker.yaml",
        "sosw-monitoring.yaml",
        "sosw-sam.yaml",
    ];
    for expected in others.into_iter().chain(ESSENTIALS.iter().map(|e| e.0)) {
        assert!(
            names.contains(expected),
            "cloudformation/{expected} is missing (found {names:?})"
        );
    }
    let lint = cfn_lint(&all);
    assert!(
        lint.clean,
        "cfn-lint reported problems in cloudformation/*.yaml:\n{}",
        lint.output
    );
}

/// What moto cannot apply is asserted on the template itself.
#[test]
fn storage_template_declares_private_encrypted_bucket_and_pitr() {
    let t = template("sosw-storage.yaml");
    let r = &t["Resources"];
    let bucket = &r["QueueBucket"]["Properties"];
    assert_eq!(r["QueueBucket"]["Type"], "AWS::S3::Bucket");
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            bucket["PublicAccessBlockConfiguration"][flag],
            json!(true),
            "{flag}"
        );
    }
    let sse =
        &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"];
    assert!(
        ["AES256", "aws:kms"].contains(&sse["SSEAlgorithm"].as_str().unwrap_or_default()),
        "{sse}"
    );
    assert_eq!(
        bucket["OwnershipControls"]["Rules"],
        json!([{"ObjectOwnership": "BucketOwnerEnforced"}])
    );
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_array()
        .expect("lifecycle rules");
    assert!(rules.iter().all(|rule| rule["Status"] == "Enabled"));
    assert!(
        rules
            .iter()
            .any(|rule| rule["Prefix"] == json!({"Fn::Sub": "${QueuePrefix}/"})
                && rule["ExpirationInDays"] == json!({"Ref": "QueueObjectExpirationDays"})),
        "no rule expiring stale queue files under the queue prefix: {rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|rule| rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].is_number()),
        "no rule aborting incomplete multipart uploads: {rules:?}"
    );
    let policy = &r["QueueBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Effect"], "Deny");
    assert_eq!(
        policy["Condition"],
        json!({"Bool": {"aws:SecureTransport": false}})
    );

    let tables: Vec<&str> = r
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, v)| v["Type"] == "AWS::DynamoDB::Table")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(tables.len(), 5, "{tables:?}");
    for table in tables {
        assert_eq!(
            r[table]["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            json!(true),
            "{table} needs PITR"
        );
        assert_eq!(r[table]["DeletionPolicy"], "Retain", "{table}");
    }
    assert_eq!(r["DeadTaskTopic"]["Type"], "AWS::SNS::Topic");
}

/// `cargo metadata --no-deps` of the workspace.
fn cargo_metadata() -> Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(sosw_tests::repo_root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `cargo lambda build --release` with no flags builds arm64 zips of the Lambda functions and
/// nothing else: the workspace's `[workspace.metadata.lambda.build]` asks for arm64 and zip (the
/// stacks' default `Architecture` is arm64), and `default-members` are the four essentials and
/// the example worker, one binary each. (The build itself, several minutes, is `scripts/package`;
/// its zips are measured in docs/benchmarks.md.)
#[test]
fn cargo_lambda_build_with_no_flags_makes_arm64_zips_of_the_lambda_functions() {
    let metadata = cargo_metadata();
    let build = &metadata["metadata"]["lambda"]["build"];
    assert_eq!(build["arm64"], true, "{build}");
    assert_eq!(build["output_format"], "zip", "{build}");
    let default_members: BTreeSet<String> = metadata["workspace_default_members"]
        .as_array()
        .expect("default-members")
        .iter()
        .map(|id| {
            metadata["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["id"] == *id)
                .map(|p| p["name"].as_str().unwrap().to_string())
                .unwrap()
        })
        .collect();
    let expected: BTreeSet<String> = ESSENTIALS
        .iter()
        .map(|(_, package, _)| package.to_string())
        .chain(["sosw-example-worker".to_string()])
        .collect();
    assert_eq!(default_members, expected);
    for package in &default_members {
        let bins = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == package.as_str())
            .flat_map(|p| p["targets"].as_array().unwrap())
            .filter(|t| t["kind"] == json!(["bin"]))
            .count();
        assert_eq!(bins, 1, "{package}: one binary, one function");
    }
    for (file, _, _) in ESSENTIALS {
        assert_eq!(
            template(file)["Parameters"]["Architecture"]["Default"],
            "arm64",
            "{file}"
        );
    }
}

/// An essential's binary carries its deployed function's name, so that `cargo lambda build`
/// writes `target/lambda/<function>/bootstrap.zip` (the stack's default code key), and `cargo
/// lambda watch` / `cargo lambda deploy` name the function as the stack does: the demo and a
/// deployment read the same config document (`<function>_config`).
#[test]
fn each_essential_binary_is_named_as_its_stack_names_the_function() {
    let metadata = cargo_metadata();
    let sam = template("sosw-sam.yaml");
    for (file, package, function) in ESSENTIALS {
        let bins: Vec<&str> = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == package)
            .flat_map(|p| p["targets"].as_array().unwrap())
            .filter(|t| t["kind"] == json!(["bin"]))
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(bins, [function], "the binaries of {package}");
        let t = template(file);
        assert_eq!(
            t["Parameters"]["CodeS3Key"]["Default"],
            format!("sosw-rs/{function}/bootstrap.zip"),
            "{file}"
        );
        let built_by_sam = sam["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["Metadata"]["BuildMethod"] == "rust-cargolambda")
            .any(|r| r["Metadata"]["BuildProperties"]["Binary"] == function);
        assert!(built_by_sam, "sosw-sam.yaml builds the binary {function}");
    }
}

#[test]
fn function_templates_declare_arm64_json_logs_and_no_async_retries_for_schedules() {
    for (file, _, function) in ESSENTIALS {
        let t = template(file);
        let f = &t["Resources"]["Function"]["Properties"];
        assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64", "{file}");
        assert_eq!(f["Architectures"], json!([{"Ref": "Architecture"}]), "{file}");
        assert_eq!(f["Runtime"], "provided.al2023", "{file}");
        assert_eq!(f["Handler"], "bootstrap", "{file}");
        assert_eq!(
            f["FunctionName"],
            json!({"Fn::Sub": format!("${{NamePrefix}}{function}")}),
            "{file}"
        );
        assert_eq!(
            f["LoggingConfig"]["LogGroup"],
            json!({"Ref": "LogGroup"}),
            "{file}"
        );
        assert_eq!(f["LoggingConfig"]["LogFormat"], "JSON", "{file}");
        let scheduled = t["Resources"].get("ScheduleRule").is_some();
        assert_eq!(
            scheduled,
            matches!(function, "sosw_orchestrator" | "sosw_scavenger"),
            "{file}"
        );
        if scheduled {
            let retry = &t["Resources"]["AsyncInvokeConfig"]["Properties"];
            assert_eq!(retry["MaximumRetryAttempts"], json!(0), "{file}");
        }
        if function == "sosw_scheduler" {
            // A job that fails every attempt is kept in the failed-jobs queue (moto's
            // CloudFormation does not create EventInvokeConfig, so this is checked here).
            let async_config = &t["Resources"]["AsyncInvokeConfig"];
            assert_eq!(async_config["Type"], "AWS::Lambda::EventInvokeConfig");
            assert_eq!(
                async_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
                json!({"Fn::GetAtt": ["FailedJobs", "Arn"]})
            );
            assert_eq!(
                async_config["Properties"]["FunctionName"],
                json!({"Ref": "Function"})
            );
            assert_eq!(t["Resources"]["FailedJobs"]["Type"], "AWS::SQS::Queue");
        }
    }
}

/// How a deployment is named; the expected ARNs follow from it.
struct Deployment {
    storage_stack: &'static str,
    /// `NamePrefix` of the storage stack (tables, topic).
    table_prefix: &'static str,
    /// `NamePrefix` of the function stacks.
    function_prefix: &'static str,
    storage_params: Vec<(&'static str, &'static str)>,
    /// Workers registered with one sosw-worker-grant.yaml stack each (`None`: `sosw-worker-*`).
    workers: Option<&'static str>,
    queue_prefix: &'static str,
}

impl Deployment {
    fn table(&self, name: &str) -> String {
        format!(
            "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}{name}",
            self.table_prefix
        )
    }
    fn index(&self, table: &str, index: &str) -> String {
        format!("{}/index/{index}", self.table(table))
    }
    fn function(&self, essential: &str) -> String {
        format!("{}{essential}", self.function_prefix)
    }
    fn function_arn(name: &str) -> String {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
    }
    fn stack(&self, dash_name: &str) -> String {
        format!("{}{dash_name}", self.function_prefix.replace('_', "-"))
    }
}

type Expected = BTreeMap<&'static str, (Vec<&'static str>, Vec<String>)>;

/// The exact policy of each essential: Sid -> (actions, resources).
fn expected_policy(d: &Deployment, essential: &str, bucket: &str, topic: &str) -> Expected {
    let mut e: Expected = BTreeMap::new();
    let function = d.function(essential);
    e.insert(
        "Logs",
        (
            vec!["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![format!(
                "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function}"
            )],
        ),
    );
    // A Query, as Python sosw's roles grant: the same role serves both implementations.
    e.insert("ReadConfig", (vec!["dynamodb:Query"], vec![d.table("config")]));
    e.insert(
        "WriteMeta",
        (
            vec!["dynamodb:BatchWriteItem", "dynamodb:PutItem"],
            vec![d.table("sosw_tasks_meta")],
        ),
    );
    let greenfield = || {
        (
            vec!["dynamodb:Query"],
            vec![d.index("sosw_tasks", "sosw_tasks_greenfield")],
        )
    };
    match essential {
        "sosw_orchestrator" => {
            e.insert(
                "TaskQueue",
                (
                    vec![
                        "dynamodb:GetItem",
                        "dynamodb:Query",
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                    ],
                    vec![d.table("sosw_tasks")],
                ),
            );
            e.insert(
                "Quarantine",
                (vec!["dynamodb:PutItem"], vec![d.table("sosw_closed_tasks")]),
            );
            e.insert("TaskQueueGreenfieldIndex", greenfield());
            e.insert(
                "HealthMetrics",
                (vec!["cloudwatch:GetMetricStatistics"], vec!["*".to_string()]),
            );
        }
        "sosw_scheduler" => {
            e.insert(
                "TaskQueue",
                (
                    vec![
                        "dynamodb:BatchGetItem",
                        "dynamodb:BatchWriteItem",
                        "dynamodb:DescribeTable",
                        "dynamodb:PutItem",
                    ],
                    vec![d.table("sosw_tasks")],
                ),
            );
            e.insert("TaskQueueGreenfieldIndex", greenfield());
            e.insert(
                "ExistingTasks",
                (
                    vec!["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"],
                    vec![d.table("sosw_closed_tasks"), d.table("sosw_retry_tasks")],
                ),
            );
            e.insert(
                "FailedJobs",
                (
                    vec!["sqs:SendMessage"],
                    vec![format!(
                        "arn:aws:sqs:{REGION}:{ACCOUNT}:{}sosw_scheduler_failed_jobs",
                        d.function_prefix
                    )],
                ),
            );
            e.insert(
                "QueueFiles",
                (
                    vec![
                        "s3:AbortMultipartUpload",
                        "s3:DeleteObject",
                        "s3:GetObject",
                        "s3:PutObject",
                    ],
                    vec![format!("arn:aws:s3:::{bucket}/{}/*", d.queue_prefix)],
                ),
            );
            e.insert(
                "QueueBucketList",
                (vec!["s3:ListBucket"], vec![format!("arn:aws:s3:::{bucket}")]),
            );
            e.insert(
                "InvokeSibling",
                (
                    vec!["lambda:InvokeFunction"],
                    vec![Deployment::function_arn(&function)],
                ),
            );
        }
        "sosw_scavenger" => {
            e.insert(
                "TaskQueue",
                (
                    vec![
                        "dynamodb:ConditionCheckItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:Query",
                        "dynamodb:UpdateItem",
                    ],
                    vec![d.table("sosw_tasks")],
                ),
            );
            e.insert("TaskQueueGreenfieldIndex", greenfield());
            e.insert(
                "ClosedTasks",
                (
                    vec!["dynamodb:ConditionCheckItem", "dynamodb:PutItem"],
                    vec![d.table("sosw_closed_tasks")],
                ),
            );
            e.insert(
                "ClosedTasksIndex",
                (
                    vec!["dynamodb:Query"],
                    vec![d.index("sosw_closed_tasks", "labourer_task_status_with_time")],
                ),
            );
            e.insert(
                "RetryTasks",
                (
                    vec![
                        "dynamodb:ConditionCheckItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:PutItem",
                        "dynamodb:Query",
                    ],
                    vec![d.table("sosw_retry_tasks")],
                ),
            );
            e.insert(
                "RetryTasksGreenfieldIndex",
                (
                    vec!["dynamodb:Query"],
                    vec![d.index("sosw_retry_tasks", "labourer_id_greenfield")],
                ),
            );
            e.insert("DeadTaskAlerts", (vec!["sns:Publish"], vec![topic.to_string()]));
        }
        "sosw_worker_assistant" => {
            e.insert(
                "TaskQueue",
                (
                    vec!["dynamodb:GetItem", "dynamodb:UpdateItem"],
                    vec![d.table("sosw_tasks")],
                ),
            );
        }
        other => panic!("unknown essential {other}"),
    }
    e
}

/// Least privilege, whatever the exact list: Allow only, no action wildcards, Resource "*" only
/// for cloudwatch:GetMetricStatistics, and no wildcard in the service, region or account of an ARN.
fn assert_least_privilege(essential: &str, statements: &[Statement]) {
    for s in statements {
        assert_eq!(s.effect, "Allow", "{essential} {}", s.sid);
        assert!(
            s.condition.is_none(),
            "{essential} {}: unexpected condition",
            s.sid
        );
        for action in &s.actions {
            assert!(
                !action.contains('*'),
                "{essential} {}: wildcard action {action}",
                s.sid
            );
        }
        for resource in &s.resources {
            if resource == "*" {
                assert_eq!(
                    s.actions,
                    vec!["cloudwatch:GetMetricStatistics"],
                    "{essential} {}: Resource \"*\" is only for cloudwatch:GetMetricStatistics",
                    s.sid
                );
                continue;
            }
            let head: Vec<&str> = resource.splitn(6, ':').take(5).collect();
            assert!(
                resource.starts_with("arn:aws:"),
                "{essential} {}: {resource}",
                s.sid
            );
            assert!(
                head.iter().all(|part| !part.contains('*')),
                "{essential} {}: wildcard in {resource}",
                s.sid
            );
            if resource.starts_with("arn:aws:dynamodb:") {
                let path = resource.splitn(6, ':').nth(5).unwrap_or_default();
                assert!(
                    path.starts_with("table/") && !path.contains('*'),
                    "{essential} {}: {resource}",
                    s.sid
                );
            }
        }
    }
}

fn key_schema(t: &TableDescription) -> Vec<(String, &'static str)> {
    t.key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                if *k.key_type() == KeyType::Hash {
                    "HASH"
                } else {
                    "RANGE"
                },
            )
        })
        .collect()
}

fn attribute_types(t: &TableDescription) -> HashMap<String, String> {
    t.attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_string(),
                a.attribute_type().as_str().to_string(),
            )
        })
        .collect()
}

fn hr(h: &str, r: Option<&str>) -> Vec<(String, &'static str)> {
    let mut out = vec![(h.to_string(), "HASH")];
    if let Some(r) = r {
        out.push((r.to_string(), "RANGE"));
    }
    out
}

async fn verify_tables(aws: &LocalAws, d: &Deployment) -> anyhow::Result<()> {
    let ddb = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let describe = |name: &str| {
        let ddb = ddb.clone();
        let name = format!("{}{name}", d.table_prefix);
        async move {
            ddb.describe_table()
                .table_name(&name)
                .send()
                .await
                .map(|o| o.table.expect("table"))
        }
    };

    let tasks = describe("sosw_tasks").await?;
    assert_eq!(key_schema(&tasks), hr("task_id", None));
    let gsi = tasks.global_secondary_indexes();
    assert_eq!(gsi.len(), 1);
    assert_eq!(gsi[0].index_name(), Some("sosw_tasks_greenfield"));
    assert_eq!(
        gsi[0]
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect::<Vec<_>>(),
        ["labourer_id", "greenfield"]
    );
    assert_eq!(
        gsi[0].projection().and_then(|p| p.projection_type()),
        Some(&ProjectionType::All)
    );
    let types = attribute_types(&tasks);
    assert_eq!(
        (
            types["task_id"].as_str(),
            types["labourer_id"].as_str(),
            types["greenfield"].as_str()
        ),
        ("S", "S", "N")
    );

    let closed = describe("sosw_closed_tasks").await?;
    assert_eq!(key_schema(&closed), hr("task_id", None));
    let gsi = closed.global_secondary_indexes();
    assert_eq!(gsi.len(), 1);
    assert_eq!(gsi[0].index_name(), Some("labourer_task_status_with_time"));
    assert_eq!(
        gsi[0]
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect::<Vec<_>>(),
        ["labourer_id_task_status", "closed_at"]
    );
    let projection = gsi[0].projection().expect("projection");
    assert_eq!(projection.projection_type(), Some(&ProjectionType::Include));
    let mut non_key = projection.non_key_attributes().to_vec();
    non_key.sort();
    assert_eq!(non_key, ["attempts", "completed_at", "greenfield"]);
    assert_eq!(attribute_types(&closed)["closed_at"], "N");

    let retry = describe("sosw_retry_tasks").await?;
    assert_eq!(key_schema(&retry), hr("labourer_id", Some("task_id")));
    assert!(retry.global_secondary_indexes().is_empty());
    let lsi = retry.local_secondary_indexes();
    assert_eq!(lsi.len(), 1);
    assert_eq!(lsi[0].index_name(), Some("labourer_id_greenfield"));
    assert_eq!(
        lsi[0]
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect::<Vec<_>>(),
        ["labourer_id", "desired_launch_time"]
    );
    assert_eq!(
        lsi[0].projection().and_then(|p| p.projection_type()),
        Some(&ProjectionType::All)
    );
    assert_eq!(attribute_types(&retry)["desired_launch_time"], "N");

    let meta = describe("sosw_tasks_meta").await?;
    assert_eq!(key_schema(&meta), hr("task_id", Some("created_at")));
    assert_eq!(attribute_types(&meta)["created_at"], "N");

    let config = describe("config").await?;
    assert_eq!(key_schema(&config), hr("env", Some("config_name")));
    for table in [&tasks, &closed, &retry, &meta, &config] {
        let mode = table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str().to_string());
        assert_eq!(
            mode.as_deref(),
            Some("PAY_PER_REQUEST"),
            "{:?}",
            table.table_name()
        );
    }
    Ok(())
}

/// The inline policy `policy` of role `role` is least privilege and exactly `expected`.
async fn assert_role_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    policy: &str,
    expected: Expected,
    name: &str,
) -> anyhow::Result<()> {
    let doc = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await?;
    let found = statements(&policy_document(doc.policy_document()));
    assert_least_privilege(name, &found);
    let found: BTreeMap<String, (Vec<String>, Vec<String>)> = found
        .into_iter()
        .map(|s| {
            // Real CloudFormation's !GetAtt LogGroup.Arn ends in ":*"; moto's does not.
            let resources = if s.sid == "Logs" {
                s.resources
                    .iter()
                    .map(|r| r.trim_end_matches(":*").to_string())
                    .collect()
            } else {
                s.resources
            };
            (s.sid, (s.actions, resources))
        })
        .collect();
    let expected: BTreeMap<String, (Vec<String>, Vec<String>)> = expected
        .into_iter()
        .map(|(sid, (mut actions, mut resources))| {
            actions.sort();
            resources.sort();
            (
                sid.to_string(),
                (actions.into_iter().map(String::from).collect(), resources),
            )
        })
        .collect();
    assert_eq!(found, expected, "IAM policy {policy} of {name}");
    Ok(())
}

async fn deploy_and_verify(d: Deployment) -> anyhow::Result<()> {
    let aws = LocalAws::start().await;
    let cfn = aws_sdk_cloudformation::Client::new(aws.sdk_config());
    let s3 = aws_sdk_s3::Client::new(aws.sdk_config());

    // Storage first; its exports feed the function stacks.
    let storage: HashMap<String, String> = aws
        .create_stack(d.storage_stack, "sosw-storage.yaml", &d.storage_params)
        .await
        .into_iter()
        .collect();
    verify_tables(&aws, &d).await?;

    let bucket = storage["QueueBucketName"].clone();
    if let Some((_, name)) = d.storage_params.iter().find(|(k, _)| *k == "QueueBucketName") {
        assert_eq!(&bucket, name);
    }
    assert_eq!(storage["QueueBucketArn"], format!("arn:aws:s3:::{bucket}"));
    assert_eq!(storage["QueuePrefix"], d.queue_prefix);
    let encryption = s3.get_bucket_encryption().bucket(&bucket).send().await?;
    let rule = &encryption
        .server_side_encryption_configuration()
        .expect("encryption")
        .rules()[0];
    let algorithm = rule
        .apply_server_side_encryption_by_default()
        .map(|r| r.sse_algorithm().as_str().to_string());
    assert_eq!(algorithm.as_deref(), Some("AES256"));

    let topic = storage["DeadTaskTopicArn"].clone();
    assert_eq!(
        topic,
        format!("arn:aws:sns:{REGION}:{ACCOUNT}:{}sosw_info", d.table_prefix)
    );
    let sns = aws_sdk_sns::Client::new(aws.sdk_config());
    let attrs = sns.get_topic_attributes().topic_arn(&topic).send().await?;
    let attrs = attrs.attributes().expect("topic attributes");
    assert_eq!(
        attrs.get("KmsMasterKeyId").map(String::as_str),
        Some("alias/aws/sns")
    );

    // The code the function stacks point at: a stand-in zip per essential.
    s3.create_bucket()
        .bucket(CODE_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await?;
    let zip = lambda_zip("bootstrap", b"#!/bin/sh\nexit 1\n");
    for (_, _, essential) in ESSENTIALS {
        s3.put_object()
            .bucket(CODE_BUCKET)
            .key(format!("sosw-rs/{essential}/bootstrap.zip"))
            .body(zip.clone().into())
            .send()
            .await?;
    }

    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    let iam = aws_sdk_iam::Client::new(aws.sdk_config());
    let events = aws_sdk_eventbridge::Client::new(aws.sdk_config());
    let logs = aws_sdk_cloudwatchlogs::Client::new(aws.sdk_config());

    let mut roles: HashMap<&str, String> = HashMap::new();
    for (file, package, essential) in ESSENTIALS {
        let stack = d.stack(package);
        let mut params = vec![
            ("CodeS3Bucket", CODE_BUCKET),
            ("StorageStackName", d.storage_stack),
        ];
        if !d.function_prefix.is_empty() {
            params.push(("NamePrefix", d.function_prefix));
        }
        let scheduled = matches!(essential, "sosw_orchestrator" | "sosw_scavenger");
        let outputs: HashMap<String, String> = aws
            .create_stack(&stack, file, &params)
            .await
            .into_iter()
            .collect();
        let name = d.function(essential);
        assert_eq!(outputs["FunctionName"], name, "{stack}");
        assert_eq!(outputs["FunctionArn"], Deployment::function_arn(&name), "{stack}");
        assert_eq!(outputs["LogGroupName"], format!("/aws/lambda/{name}"), "{stack}");
        if essential == "sosw_scheduler" {
            // Failed jobs are kept: the queue exists and the stack names it.
            let queue = format!("{name}_failed_jobs");
            assert_eq!(outputs["FailedJobsQueueName"], queue, "{stack}");
            let sqs = aws_sdk_sqs::Client::new(aws.sdk_config());
            let url = sqs.get_queue_url().queue_name(&queue).send().await?;
            // moto answers with its own endpoint, CloudFormation with the regional one.
            let tail = format!("/{ACCOUNT}/{queue}");
            assert!(url.queue_url().is_some_and(|u| u.ends_with(&tail)), "{url:?}");
            assert!(outputs["FailedJobsQueueUrl"].ends_with(&tail), "{stack}");
        }

        // The function.
        let f = lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await?;
        assert_eq!(f.runtime().map(|r| r.as_str()), Some("provided.al2023"), "{name}");
        assert_eq!(f.handler(), Some("bootstrap"), "{name}");
        assert_eq!(f.role(), Some(outputs["RoleArn"].as_str()), "{name}");
        let (memory, timeout) = match essential {
            "sosw_orchestrator" | "sosw_scavenger" => (256, 60),
            "sosw_scheduler" => (512, 900),
            _ => (128, 30),
        };
        assert_eq!(
            (f.memory_size(), f.timeout()),
            (Some(memory), Some(timeout)),
            "{name}"
        );
        let env: BTreeMap<String, String> = f
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let expected_env: BTreeMap<String, String> = [
            ("SOSW_CONFIG_SOURCE", "dynamo".to_string()),
            ("SOSW_CONFIG_TABLE", format!("{}config", d.table_prefix)),
            ("SOSW_ENV", "production".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(env, expected_env, "{name}");

        // Its log group.
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(format!("/aws/lambda/{name}"))
            .send()
            .await?;
        let group = groups
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(&format!("/aws/lambda/{name}")))
            .unwrap_or_else(|| panic!("log group of {name}"));
        assert_eq!(group.retention_in_days(), Some(30), "{name}");

        // Its schedule: every minute for the orchestrator and the scavenger, none for the others.
        let rule_name = format!("{name}_every_minute");
        let rule = events.describe_rule().name(&rule_name).send().await;
        if scheduled {
            let rule = rule?;
            assert_eq!(rule.schedule_expression(), Some("rate(1 minute)"), "{rule_name}");
            assert_eq!(rule.state().map(|s| s.as_str()), Some("ENABLED"), "{rule_name}");
            assert_eq!(rule.arn(), Some(outputs["ScheduleRuleArn"].as_str()));
            let targets = events.list_targets_by_rule().rule(&rule_name).send().await?;
            let arns: Vec<&str> = targets.targets().iter().map(|t| t.arn()).collect();
            assert_eq!(arns, [outputs["FunctionArn"].as_str()], "{rule_name}");
            // EventBridge may invoke it, only from this rule.
            let policy = lambda.get_policy().function_name(&name).send().await?;
            let policy: Value = serde_json::from_str(policy.policy().expect("resource policy"))?;
            let statements = policy["Statement"].as_array().expect("statements");
            assert_eq!(statements.len(), 1, "{policy}");
            assert_eq!(
                statements[0]["Principal"],
                json!({"Service": "events.amazonaws.com"})
            );
            assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
            assert_eq!(
                statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"],
                json!(outputs["ScheduleRuleArn"])
            );
        } else {
            assert!(rule.is_err(), "{name} must not run on a schedule");
            assert!(!outputs.contains_key("ScheduleRuleArn"));
        }

        // Its role: exactly the specified permissions.
        let role_name = outputs["RoleArn"]
            .rsplit('/')
            .next()
            .expect("role name")
            .to_string();
        let names = iam.list_role_policies().role_name(&role_name).send().await?;
        assert_eq!(names.policy_names().len(), 1, "{name}: one inline policy");
        let attached = iam
            .list_attached_role_policies()
            .role_name(&role_name)
            .send()
            .await?;
        assert!(
            attached.attached_policies().is_empty(),
            "{name}: no managed policies"
        );
        let expected = expected_policy(&d, essential, &bucket, &topic);
        assert_role_policy(&iam, &role_name, &names.policy_names()[0], expected, &name).await?;
        roles.insert(essential, role_name);
    }

    // Workers are registered one stack each (sosw-worker-grant.yaml): the Orchestrator's role may
    // invoke each, the Scavenger's read its configuration; nothing else is added.
    for worker in d.workers.unwrap_or("sosw-worker-*").split(',') {
        let stack = d.stack(&format!("grant-{}", worker.replace(['*', '_'], "-")));
        let orchestrator_stack = d.stack("sosw-orchestrator");
        let scavenger_stack = d.stack("sosw-scavenger");
        aws.create_stack(
            &stack,
            "sosw-worker-grant.yaml",
            &[
                ("WorkerFunction", worker),
                ("OrchestratorStackName", &orchestrator_stack),
                ("ScavengerStackName", &scavenger_stack),
            ],
        )
        .await;
        let arns = vec![
            Deployment::function_arn(worker),
            format!("{}:*", Deployment::function_arn(worker)),
        ];
        for (essential, action) in [
            ("sosw_orchestrator", "lambda:InvokeFunction"),
            ("sosw_scavenger", "lambda:GetFunctionConfiguration"),
        ] {
            let expected: Expected = [("Worker", (vec![action], arns.clone()))].into_iter().collect();
            let policy = format!("sosw-worker-{stack}");
            assert_role_policy(&iam, &roles[essential], &policy, expected, essential).await?;
        }
    }

    // Exports of the storage stack and of the function stacks.
    let exports = cfn.list_exports().send().await?;
    let exported: BTreeSet<&str> = exports.exports().iter().filter_map(|e| e.name()).collect();
    for suffix in [
        "TasksTable",
        "ClosedTasksTable",
        "RetryTasksTable",
        "TasksMetaTable",
        "ConfigTable",
        "TasksTableArn",
        "ClosedTasksTableArn",
        "RetryTasksTableArn",
        "TasksMetaTableArn",
        "ConfigTableArn",
        "QueueBucket",
        "QueueBucketArn",
        "QueuePrefix",
        "DeadTaskTopicArn",
        "DeadTaskTopicName",
    ] {
        let export = format!("{}-{suffix}", d.storage_stack);
        assert!(
            exported.contains(export.as_str()),
            "missing export {export}: {exported:?}"
        );
    }
    for (_, package, _) in ESSENTIALS {
        for suffix in ["FunctionName", "FunctionArn"] {
            let export = format!("{}-{suffix}", d.stack(package));
            assert!(
                exported.contains(export.as_str()),
                "missing export {export}: {exported:?}"
            );
        }
    }
    let rules = events.list_rules().send().await?;
    assert_eq!(
        rules.rules().len(),
        2,
        "one schedule each for the orchestrator and the scavenger"
    );

    // The optional monitoring stack over this installation: its dashboard exists and names the
    // installation's functions (moto's CloudFormation skips alarms; their definitions are checked
    // against the essentials' EMF lines in tests/tests/monitoring.rs).
    let mut params = vec![("SchedulerStackName", d.stack("sosw-scheduler"))];
    if !d.function_prefix.is_empty() {
        params.push(("NamePrefix", d.function_prefix.to_string()));
    }
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let outputs: HashMap<String, String> = aws
        .create_stack(&d.stack("sosw-monitoring"), "sosw-monitoring.yaml", &params)
        .await
        .into_iter()
        .collect();
    assert_eq!(outputs["DashboardName"], format!("{}sosw", d.function_prefix));
    let cloudwatch = aws_sdk_cloudwatch::Client::new(aws.sdk_config());
    let dashboard = cloudwatch
        .get_dashboard()
        .dashboard_name(&outputs["DashboardName"])
        .send()
        .await?;
    let body: serde_json::Value = serde_json::from_str(dashboard.dashboard_body().unwrap_or_default())?;
    let text = body.to_string();
    assert!(body["widgets"].as_array().is_some_and(|w| w.len() > 10), "{text}");
    for essential in ["sosw_orchestrator", "sosw_scavenger", "sosw_worker_assistant"] {
        assert!(
            text.contains(&d.function(essential)),
            "dashboard names {essential}: {text}"
        );
    }
    assert!(outputs["AlarmTopicArn"].ends_with(&format!(":{}sosw_alarms", d.function_prefix)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_with_default_parameters_create_on_local_aws() -> anyhow::Result<()> {
    deploy_and_verify(Deployment {
        storage_stack: "sosw-storage",
        table_prefix: "",
        function_prefix: "",
        storage_params: vec![],
        workers: None,
        queue_prefix: "sosw/scheduler",
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_with_name_prefix_bucket_name_and_worker_list_create_on_local_aws() -> anyhow::Result<()> {
    deploy_and_verify(Deployment {
        storage_stack: "qa-sosw-storage",
        table_prefix: "qa_",
        function_prefix: "qa_",
        storage_params: vec![
            ("NamePrefix", "qa_"),
            ("QueueBucketName", "qa-sosw-queue-bucket"),
            ("QueuePrefix", "jobs/queue"),
        ],
        workers: Some("report_builder,mailer,etl-*"),
        queue_prefix: "jobs/queue",
    })
    .await
}

/// The grants for Python sosw's roles are, statement for statement, what each essential's own
/// stack grants, minus logging (Python's roles have AWSLambdaBasicExecutionRole).
#[test]
fn python_role_grants_equal_each_essentials_own_policy_without_logs() {
    let grants = template("sosw-python-role-grants.yaml");
    for (file, resource, role_parameter) in [
        (
            "sosw-orchestrator.yaml",
            "OrchestratorGrants",
            "OrchestratorRoleName",
        ),
        ("sosw-scheduler.yaml", "SchedulerGrants", "SchedulerRoleName"),
        ("sosw-scavenger.yaml", "ScavengerGrants", "ScavengerRoleName"),
        (
            "sosw-worker-assistant.yaml",
            "WorkerAssistantGrants",
            "WorkerAssistantRoleName",
        ),
    ] {
        let own = template(file);
        let own_statements: Vec<Value> = own["Resources"]["Role"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter(|s| s["Sid"] != "Logs")
            .cloned()
            .collect();
        let g = &grants["Resources"][resource];
        assert_eq!(g["Type"], "AWS::IAM::Policy", "{resource}");
        assert_eq!(
            g["Properties"]["Roles"],
            json!([{"Ref": role_parameter}]),
            "{resource}"
        );
        assert_eq!(
            g["Properties"]["PolicyDocument"]["Statement"],
            json!(own_statements),
            "{resource} must grant exactly what {file} grants (without Logs)"
        );
    }
    // The parameters the statements refer to take the same values in both templates.
    let orchestrator = template("sosw-orchestrator.yaml");
    for p in ["StorageStackName", "NamePrefix"] {
        for field in ["Type", "Default", "AllowedPattern", "MaxLength"] {
            assert_eq!(
                grants["Parameters"][p][field], orchestrator["Parameters"][p][field],
                "{p}.{field}"
            );
        }
    }
}

#[test]
fn example_worker_stack_turns_lambdas_async_retries_off() {
    let t = template("sosw-example-worker.yaml");
    let config = &t["Resources"]["AsyncInvokeConfig"];
    assert_eq!(config["Type"], "AWS::Lambda::EventInvokeConfig");
    assert_eq!(
        config["Properties"],
        json!({"FunctionName": {"Ref": "Function"}, "Qualifier": "$LATEST", "MaximumRetryAttempts": 0})
    );
    let f = &t["Resources"]["Function"]["Properties"];
    assert_eq!(
        f["Environment"]["Variables"]["SOSW_WORKER_ASSISTANT_LAMBDA"],
        json!({"Ref": "WorkerAssistantFunctionName"})
    );
}

const PYTHON_BUCKET: &str = "sosw-s3-123456789012";
const PYTHON_ESSENTIALS: [&str; 4] = [
    "sosw_orchestrator",
    "sosw_scheduler",
    "sosw_scavenger",
    "sosw_worker_assistant",
];

/// A Python sosw deployment as its own examples define it (examples/yaml/initial/
/// sosw-dev-shared-dynamodb.yaml, sosw-ddb-config.yaml, examples/essentials/*/sosw-*.yaml):
/// provisioned tables without PITR, the `config` table, the `sosw-s3-<account>` bucket, the
/// `sosw_info` topic and the roles `lambda_sosw_<essential>` with their inline policies.
async fn create_python_deployment(aws: &LocalAws) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, LocalSecondaryIndex,
        Projection, ProvisionedThroughput, ScalarAttributeType,
    };
    let ddb = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    let attr = |n: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .expect("attribute")
    };
    let key = |n: &str, k: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(k)
            .build()
            .expect("key")
    };
    let capacity = || {
        ProvisionedThroughput::builder()
            .read_capacity_units(3)
            .write_capacity_units(2)
            .build()
            .expect("capacity")
    };
    use ScalarAttributeType::{N, S};
    ddb.create_table()
        .table_name("sosw_tasks")
        .attribute_definitions(attr("task_id", S))
        .attribute_definitions(attr("labourer_id", S))
        .attribute_definitions(attr("greenfield", N))
        .key_schema(key("task_id", KeyType::Hash))
        .provisioned_throughput(capacity())
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("sosw_tasks_greenfield")
                .key_schema(key("labourer_id", KeyType::Hash))
                .key_schema(key("greenfield", KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .provisioned_throughput(capacity())
                .build()?,
        )
        .send()
        .await?;
    ddb.create_table()
        .table_name("sosw_closed_tasks")
        .attribute_definitions(attr("task_id", S))
        .attribute_definitions(attr("labourer_id_task_status", S))
        .attribute_definitions(attr("closed_at", N))
        .key_schema(key("task_id", KeyType::Hash))
        .provisioned_throughput(capacity())
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("labourer_task_status_with_time")
                .key_schema(key("labourer_id_task_status", KeyType::Hash))
                .key_schema(key("closed_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .non_key_attributes("completed_at")
                        .non_key_attributes("greenfield")
                        .non_key_attributes("attempts")
                        .build(),
                )
                .provisioned_throughput(capacity())
                .build()?,
        )
        .send()
        .await?;
    ddb.create_table()
        .table_name("sosw_retry_tasks")
        .attribute_definitions(attr("labourer_id", S))
        .attribute_definitions(attr("task_id", S))
        .attribute_definitions(attr("desired_launch_time", N))
        .key_schema(key("labourer_id", KeyType::Hash))
        .key_schema(key("task_id", KeyType::Range))
        .provisioned_throughput(capacity())
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name("labourer_id_greenfield")
                .key_schema(key("labourer_id", KeyType::Hash))
                .key_schema(key("desired_launch_time", KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()?,
        )
        .send()
        .await?;
    ddb.create_table()
        .table_name("sosw_tasks_meta")
        .attribute_definitions(attr("task_id", S))
        .attribute_definitions(attr("created_at", N))
        .key_schema(key("task_id", KeyType::Hash))
        .key_schema(key("created_at", KeyType::Range))
        .provisioned_throughput(capacity())
        .send()
        .await?;
    ddb.create_table()
        .table_name("config")
        .attribute_definitions(attr("env", S))
        .attribute_definitions(attr("config_name", S))
        .key_schema(key("env", KeyType::Hash))
        .key_schema(key("config_name", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await?;

    let s3 = aws_sdk_s3::Client::new(aws.sdk_config());
    s3.create_bucket()
        .bucket(PYTHON_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await?;
    aws_sdk_sns::Client::new(aws.sdk_config())
        .create_topic()
        .name("sosw_info")
        .send()
        .await?;

    // The roles, with the gist of Python's inline policies: everything on the task queue, Query
    // and DescribeTable on the config table (what the sosw-rs code paths need beyond that is
    // what sosw-python-role-grants.yaml adds).
    let iam = aws_sdk_iam::Client::new(aws.sdk_config());
    let table = |t: &str| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}");
    for essential in PYTHON_ESSENTIALS {
        let role = format!("lambda_{essential}");
        iam.create_role()
            .role_name(&role)
            .path("/")
            .assume_role_policy_document(
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": ["lambda.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]})
                .to_string(),
            )
            .send()
            .await?;
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*",
             "Resource": [table("sosw_tasks"), format!("{}/*", table("sosw_tasks"))]},
            {"Effect": "Allow", "Action": ["dynamodb:Query", "dynamodb:DescribeTable"],
             "Resource": [table("config")]}]});
        iam.put_role_policy()
            .role_name(&role)
            .policy_name(format!("{essential}_python_permissions"))
            .policy_document(doc.to_string())
            .send()
            .await?;
    }
    Ok(())
}

fn sosw_json(aws: &LocalAws, bin: &std::path::Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(bin)
        .args(args)
        .envs(aws.env())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run sosw");
    assert!(
        out.status.success(),
        "sosw {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sosw {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Migration, proven on the local AWS: a Python sosw deployment's tables, bucket, topic and
/// roles exist (with a task Python queued); the storage stack adopts them without creating or
/// changing anything; the role grants complete the Python roles; the sosw-rs function stacks
/// deploy beside the Python functions; and a job, an orchestration, the workers' reports and a
/// scavenger run go through the adopted tables, the Python-era task included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_adopt_a_python_sosw_deployment_and_run_the_lifecycle_on_it() -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let aws = LocalAws::start().await;
    create_python_deployment(&aws).await?;
    let ddb = aws_sdk_dynamodb::Client::new(aws.sdk_config());
    // A task as Python sosw 0.7.51's TaskManager.create_task writes it (payload a JSON string).
    ddb.put_item()
        .table_name("sosw_tasks")
        .item("task_id", A::S("python-era-task".into()))
        .item("labourer_id", A::S("python_worker".into()))
        .item("greenfield", A::N("5000".into()))
        .item("attempts", A::N("0".into()))
        .item("created_at", A::N("1700000000.123456".into()))
        .item("payload", A::S(r#"{"word": "from python"}"#.into()))
        .send()
        .await?;
    aws.put_config(
        "sosw_essential_config",
        &json!({"task_config": {"labourers": {"python_worker": {"max_simultaneous_invocations": 5, "max_duration": 60}}},
                "job_schema_variants": {"default": {"chunkable_attrs": [["word", {}]]}}}),
    )
    .await;
    aws.put_config("sosw_scheduler_config", &json!({"queue_bucket": PYTHON_BUCKET}))
        .await;

    let topic = format!("arn:aws:sns:{REGION}:{ACCOUNT}:sosw_info");
    let storage: HashMap<String, String> = aws
        .create_stack(
            "sosw-storage",
            "sosw-storage.yaml",
            &[
                ("AdoptExistingTables", "true"),
                ("ExistingQueueBucketName", PYTHON_BUCKET),
                ("ExistingDeadTaskTopicArn", &topic),
            ],
        )
        .await
        .into_iter()
        .collect();
    let table_arn = |t: &str| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}");
    for (output, value) in [
        ("TasksTableName", "sosw_tasks".to_string()),
        ("ClosedTasksTableName", "sosw_closed_tasks".into()),
        ("RetryTasksTableName", "sosw_retry_tasks".into()),
        ("TasksMetaTableName", "sosw_tasks_meta".into()),
        ("ConfigTableName", "config".into()),
        ("TasksTableArn", table_arn("sosw_tasks")),
        ("ClosedTasksTableArn", table_arn("sosw_closed_tasks")),
        ("RetryTasksTableArn", table_arn("sosw_retry_tasks")),
        ("TasksMetaTableArn", table_arn("sosw_tasks_meta")),
        ("ConfigTableArn", table_arn("config")),
        ("QueueBucketName", PYTHON_BUCKET.into()),
        ("QueueBucketArn", format!("arn:aws:s3:::{PYTHON_BUCKET}")),
        ("QueuePrefix", "sosw/scheduler".into()),
        ("DeadTaskTopicArn", topic.clone()),
        ("DeadTaskTopicName", "sosw_info".into()),
    ] {
        assert_eq!(storage.get(output), Some(&value), "output {output}");
    }
    // Nothing was created or replaced: the same five tables, still provisioned, the task kept.
    let mut tables = ddb.list_tables().send().await?.table_names().to_vec();
    tables.sort();
    assert_eq!(
        tables,
        [
            "config",
            "sosw_closed_tasks",
            "sosw_retry_tasks",
            "sosw_tasks",
            "sosw_tasks_meta"
        ]
    );
    let tasks = ddb
        .describe_table()
        .table_name("sosw_tasks")
        .send()
        .await?
        .table
        .expect("table");
    assert_eq!(
        tasks
            .provisioned_throughput()
            .and_then(|p| p.read_capacity_units()),
        Some(3)
    );
    let s3 = aws_sdk_s3::Client::new(aws.sdk_config());
    let buckets: Vec<String> = s3
        .list_buckets()
        .send()
        .await?
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(buckets, [PYTHON_BUCKET]);
    let sns = aws_sdk_sns::Client::new(aws.sdk_config());
    assert_eq!(sns.list_topics().send().await?.topics().len(), 1);

    // The grants complete each Python role with exactly what its sosw-rs essential uses.
    aws.create_stack("sosw-python-role-grants", "sosw-python-role-grants.yaml", &[])
        .await;
    let d = Deployment {
        storage_stack: "sosw-storage",
        table_prefix: "",
        function_prefix: "",
        storage_params: vec![],
        workers: None,
        queue_prefix: "sosw/scheduler",
    };
    let iam = aws_sdk_iam::Client::new(aws.sdk_config());
    for essential in PYTHON_ESSENTIALS {
        let role = format!("lambda_{essential}");
        let mut names = iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await?
            .policy_names()
            .to_vec();
        names.sort();
        let grant = format!(
            "sosw-rs-{}",
            essential.trim_start_matches("sosw_").replace('_', "-")
        );
        let mut expected_names = vec![format!("{essential}_python_permissions"), grant.clone()];
        expected_names.sort();
        assert_eq!(names, expected_names, "{role}");
        let mut expected = expected_policy(&d, essential, PYTHON_BUCKET, &topic);
        expected.remove("Logs");
        assert_role_policy(&iam, &role, &grant, expected, &role).await?;
    }

    // The sosw-rs function stacks deploy beside the Python functions (another NamePrefix), on
    // the adopted tables, their schedules off until the cut-over.
    s3.create_bucket()
        .bucket(CODE_BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await?;
    let zip = lambda_zip("bootstrap", b"#!/bin/sh\nexit 1\n");
    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    let events = aws_sdk_eventbridge::Client::new(aws.sdk_config());
    for (file, package, essential) in ESSENTIALS {
        s3.put_object()
            .bucket(CODE_BUCKET)
            .key(format!("sosw-rs/{essential}/bootstrap.zip"))
            .body(zip.clone().into())
            .send()
            .await?;
        let scheduled = matches!(essential, "sosw_orchestrator" | "sosw_scavenger");
        let mut params = vec![("CodeS3Bucket", CODE_BUCKET), ("NamePrefix", "rs_")];
        if scheduled {
            params.push(("ScheduleState", "DISABLED"));
        }
        aws.create_stack(&format!("rs-{package}"), file, &params).await;
        let f = lambda
            .get_function_configuration()
            .function_name(format!("rs_{essential}"))
            .send()
            .await?;
        let env = f.environment().and_then(|e| e.variables()).expect("environment");
        assert_eq!(env.get("SOSW_CONFIG_TABLE").map(String::as_str), Some("config"));
        if scheduled {
            let rule = events
                .describe_rule()
                .name(format!("rs_{essential}_every_minute"))
                .send()
                .await?;
            assert_eq!(rule.state().map(|s| s.as_str()), Some("DISABLED"));
        }
    }

    // The lifecycle on the adopted tables, through the essentials' own code paths.
    let bin = sosw_test_support::workspace_binary("sosw");
    let dir = std::env::temp_dir().join(format!("sosw_migration_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let job = dir.join("job.json");
    std::fs::write(
        &job,
        r#"{"lambda_name": "python_worker", "words": ["a", "b"], "isolate_words": true}"#,
    )?;
    let out = sosw_json(
        &aws,
        &bin,
        &["run", "scheduler", "--event", job.to_str().expect("path")],
    );
    assert_eq!(out["tasks_created"], 2, "{out}");
    let out = sosw_json(&aws, &bin, &["run", "orchestrator"]);
    assert_eq!(
        out["invoked"], 3,
        "the Python-era task and the two new ones: {out}"
    );
    let ids: Vec<String> = ddb
        .scan()
        .table_name("sosw_tasks")
        .send()
        .await?
        .items()
        .iter()
        .map(|i| i["task_id"].as_s().expect("task_id").clone())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&"python-era-task".to_string()), "{ids:?}");
    for id in &ids {
        let report = dir.join(format!("report-{id}.json"));
        std::fs::write(
            &report,
            json!({"action": "mark_task_as_completed", "task_id": id}).to_string(),
        )?;
        sosw_json(
            &aws,
            &bin,
            &[
                "run",
                "worker-assistant",
                "--event",
                report.to_str().expect("path"),
            ],
        );
    }
    let out = sosw_json(&aws, &bin, &["run", "scavenger"]);
    assert_eq!(out["total"]["archived"], 3, "{out}");
    assert_eq!(ddb.scan().table_name("sosw_tasks").send().await?.count(), 0);
    let archived = ddb
        .get_item()
        .table_name("sosw_closed_tasks")
        .key("task_id", A::S("python-era-task".into()))
        .send()
        .await?
        .item
        .expect("the Python-era task is archived");
    assert_eq!(
        archived["labourer_id_task_status"],
        A::S("python_worker_1".into())
    );
    assert_eq!(archived["payload"], A::S(r#"{"word": "from python"}"#.into()));
    assert_eq!(archived["attempts"], A::N("1".into()));
    Ok(())
}
