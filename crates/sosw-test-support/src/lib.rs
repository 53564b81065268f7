//! # sosw-test-support
//!
//! Test support for this workspace only (`publish = false`; no shipped binary depends on it):
//! a local AWS for tests: a moto server on a free loopback port, started from the project's
//! `.venv` (run `scripts/setup`), stopped when the [`LocalAws`] is dropped. Tables come from the
//! same CloudFormation template users deploy (`cloudformation/sosw-storage.yaml`).
//!
//! Module map:
//! - [`LocalAws`]: moto on loopback (plain, serialised or behind the request counter), its SDK
//!   config and environment, stacks and config documents.
//! - [`http`]: one HTTP request to a loopback port (`ureq`).
//! - [`TestServer`]: a loopback HTTP endpoint answering with a closure (`tiny_http`), stopped when
//!   dropped; [`recording_lambda`] is one that records Lambda Invoke requests.
//! - [`proxy`]: a counting, fault-injecting proxy in front of moto; [`capacity`]: DynamoDB capacity
//!   units from item sizes; [`coldstart`]: a minimal Lambda Runtime API timing a binary's start.
//! - [`tasks`]: queue `n` tasks, claim the next `n` (what an orchestrator does).
//! - [`aws_errors`]: typed AWS failures ([`sosw_core::AwsError`]) without a service.
//! - [`logs`]: capture what the code under test logs, to assert a failure is visible.
//! - [`workspace_binary`]: a binary of this workspace, built the way the test build builds it.

pub mod aws_errors;
pub mod capacity;
pub mod coldstart;
pub mod config_cases;
pub mod logs;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(feature = "proxy")]
pub mod proxy;
pub mod tasks;

#[cfg(feature = "proxy")]
pub use proxy::RequestCounts;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
}

/// A binary of this workspace (`sosw`, `sosw-demo`, `sosw_scheduler`, ...), built once per test
/// process with `cargo build --workspace --bins --tests`.
///
/// Those flags resolve dependency features exactly as `cargo test --workspace` (and so
/// `cargo nextest run --workspace`) does, so after the test build this compiles nothing but the
/// binaries the test build does not link itself. A narrower `cargo build -p sosw-cli` resolves
/// features for that package alone and compiles every dependency a second time: another 1 GB
/// copy of the AWS SDK in `target/`, and minutes of CI.
pub fn workspace_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let profile_dir = BUILT.get_or_init(|| {
        // This test binary is `<target>/<profile>/deps/<name>-<hash>`.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary is in <target>/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--workspace", "--bins", "--tests"])
            .env("CARGO_TARGET_DIR", profile_dir.parent().expect("a target dir"))
            .current_dir(repo_root());
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build --workspace");
        assert!(status.success(), "cargo build --workspace --bins --tests failed");
        profile_dir
    });
    let binary = profile_dir.join(name);
    assert!(binary.exists(), "the workspace has no binary {name} ({binary:?})");
    binary
}

/// A program in the project's virtualenv; panics with a hint when it is missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup` first",
        path.display()
    );
    path
}

/// A running moto server and an SDK config pointing at it (or at a [`proxy::Proxy`] in front of it).
#[derive(Debug)]
pub struct LocalAws {
    /// `http://127.0.0.1:PORT`: where clients connect (moto, or the proxy in front of it).
    pub endpoint: String,
    /// The port clients connect to.
    pub port: u16,
    /// moto itself, behind the proxy when there is one: `http://127.0.0.1:PORT`.
    pub upstream: String,
    sdk: aws_config::SdkConfig,
    child: Child,
    #[cfg(feature = "proxy")]
    proxy: Option<proxy::Proxy>,
}

/// The PYTHONPATH of every moto this crate starts: `crates/sosw-test-support/moto` first, whose
/// `sitecustomize.py` makes moto's TransactWriteItems check every item before writing any and
/// roll back only the items it wrote (O(items), as DynamoDB; moto's own copies every table the
/// transaction touches once per item), then whatever PYTHONPATH the caller had.
fn moto_pythonpath() -> std::ffi::OsString {
    let patch = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("moto");
    let mut paths = vec![patch];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).expect("PYTHONPATH entries hold no separator")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("addr")
        .port()
}

/// One HTTP request to a loopback port (`GET`, or any other method with a JSON `body`); returns
/// (status, body) whatever the status.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String), ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut response = if method.eq_ignore_ascii_case("GET") {
        agent.get(&url).call()?
    } else {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .map_err(ureq::Error::from)?;
        agent.run(request)?
    };
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_to_string()?))
}

impl LocalAws {
    /// moto's cap on items per TransactWriteItems (DynamoDB allows 100): give it to
    /// [`sosw_core::TaskManager::with_max_transaction_items`]; child processes get it from [`Self::env`].
    pub const TRANSACTION_ITEMS: usize = sosw_core::task::manager::MOTO_TRANSACTION_ITEMS;

    /// Start moto on a free port and wait until it answers. Its requests run concurrently, and
    /// its conditional writes are **not** atomic under concurrent requests (see
    /// [`Self::start_serialised`]).
    pub async fn start() -> Self {
        Self::launch(false).await
    }

    /// Start moto with every request handled under one lock (`crates/sosw-test-support/moto_serialised.py`):
    /// conditional writes and transactions become atomic, as DynamoDB's are. For the tests that
    /// prove concurrency guarantees (claims, moves).
    pub async fn start_serialised() -> Self {
        Self::launch(true).await
    }

    async fn launch(serialised: bool) -> Self {
        let (program, prefix): (PathBuf, Vec<String>) = if serialised {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("moto_serialised.py");
            (venv_bin("python"), vec![script.display().to_string()])
        } else {
            (venv_bin("moto_server"), Vec::new())
        };
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&program)
                .env("PYTHONPATH", moto_pythonpath())
                .args(&prefix)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken or crash: try another port
                }
                let probe = tokio::task::spawn_blocking(move || http(port, "GET", "/moto-api/", ""));
                if matches!(probe.await, Ok(Ok((200, _)))) {
                    let endpoint = format!("http://127.0.0.1:{port}");
                    let sdk = sdk_config_for(&endpoint).await;
                    // No Docker here: moto must not try to run Lambda code in containers.
                    let _ = tokio::task::spawn_blocking(move || {
                        http(
                            port,
                            "POST",
                            "/moto-api/config",
                            r#"{"lambda":{"use_docker":false}}"#,
                        )
                    })
                    .await;
                    return Self {
                        upstream: endpoint.clone(),
                        endpoint,
                        port,
                        sdk,
                        child,
                        #[cfg(feature = "proxy")]
                        proxy: None,
                    };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start on loopback");
    }

    /// Start moto with a counting [`proxy::Proxy`] in front of it (for benchmarks): see
    /// [`Self::counts`].
    #[cfg(feature = "proxy")]
    pub async fn start_counted() -> Self {
        Self::start_behind(false, |b| b).await
    }

    /// Start moto (serialised or not, see [`Self::start_serialised`]) behind a [`proxy::Proxy`]
    /// configured by `configure` (its [`proxy::Intercept`] and [`proxy::Observe`] hooks). Clients of
    /// [`Self::sdk_config`], [`Self::env`] and [`Self::endpoint`] go through the proxy;
    /// [`Self::upstream`] is moto itself.
    #[cfg(feature = "proxy")]
    pub async fn start_behind(
        serialised: bool,
        configure: impl FnOnce(proxy::ProxyBuilder) -> proxy::ProxyBuilder,
    ) -> Self {
        let mut aws = Self::launch(serialised).await;
        let proxy = configure(proxy::Proxy::builder(aws.upstream.clone()))
            .start()
            .await;
        aws.endpoint = proxy.endpoint();
        aws.port = proxy.port();
        aws.sdk = sdk_config_for(&aws.endpoint).await;
        aws.proxy = Some(proxy);
        aws
    }

    /// The proxy in front of moto, if started with one.
    #[cfg(feature = "proxy")]
    pub fn proxy(&self) -> Option<&proxy::Proxy> {
        self.proxy.as_ref()
    }

    /// Requests counted since the start or the last reset (zeros without a proxy).
    #[cfg(feature = "proxy")]
    pub fn counts(&self) -> RequestCounts {
        self.proxy.as_ref().map(proxy::Proxy::counts).unwrap_or_default()
    }

    /// Zero the counters.
    #[cfg(feature = "proxy")]
    pub fn reset_counts(&self) {
        if let Some(p) = &self.proxy {
            p.reset_counts();
        }
    }

    /// SDK config for this server (region us-west-2, static test credentials).
    pub fn sdk_config(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// Environment variables that point a child process (a Lambda binary, the CLI) here.
    pub fn env(&self) -> Vec<(String, String)> {
        env_for(&self.endpoint)
    }

    /// Create a CloudFormation stack from a template in `cloudformation/`, wait for it, and
    /// return its outputs.
    pub async fn create_stack(
        &self,
        name: &str,
        template: &str,
        params: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        use aws_sdk_cloudformation::types::{Parameter, StackStatus};
        let body = std::fs::read_to_string(repo_root().join("cloudformation").join(template))
            .unwrap_or_else(|e| panic!("read cloudformation/{template}: {e}"));
        // CreateStack is not idempotent on moto: a retry after an answer that came too late (a
        // loaded machine) would create the stack's tables again and fail with "Table already
        // exists". So one attempt, and a failed one whose stack exists anyway is waited for.
        let cf = aws_sdk_cloudformation::Client::new(&self.sdk);
        let once = aws_sdk_cloudformation::Client::from_conf(
            aws_sdk_cloudformation::config::Builder::from(&self.sdk)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        );
        let mut req = once.create_stack().stack_name(name).template_body(body);
        for (k, v) in params {
            req = req.parameters(Parameter::builder().parameter_key(*k).parameter_value(*v).build());
        }
        if let Err(e) = req.send().await {
            let exists = cf
                .describe_stacks()
                .stack_name(name)
                .send()
                .await
                .is_ok_and(|out| !out.stacks().is_empty());
            assert!(exists, "create stack {name}: {e:?}");
        }
        for _ in 0..100 {
            let out = cf
                .describe_stacks()
                .stack_name(name)
                .send()
                .await
                .expect("describe stack");
            let stack = &out.stacks()[0];
            match stack.stack_status() {
                Some(StackStatus::CreateComplete) => {
                    return stack
                        .outputs()
                        .iter()
                        .map(|o| {
                            (
                                o.output_key().unwrap_or_default().to_string(),
                                o.output_value().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                }
                Some(StackStatus::CreateInProgress) | None => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Some(other) => panic!("stack {name} failed: {other:?} {:?}", stack.stack_status_reason()),
            }
        }
        panic!("stack {name} did not complete");
    }

    /// Write a config document to the `config` table (env `production`), as users do.
    pub async fn put_config(&self, name: &str, doc: &serde_json::Value) {
        use aws_sdk_dynamodb::types::AttributeValue;
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .put_item()
            .table_name("config")
            .item("env", AttributeValue::S("production".into()))
            .item("config_name", AttributeValue::S(name.into()))
            .item("config_value", AttributeValue::S(doc.to_string()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("write config `{name}`: {e:?}"));
    }

    /// Create sosw's shared storage (tables with sosw's own names) from `cloudformation/sosw-storage.yaml`.
    pub async fn deploy_storage(&self) -> Vec<(String, String)> {
        self.create_stack("sosw-storage", "sosw-storage.yaml", &[]).await
    }

    /// Deploy the storage stack ([`Self::deploy_storage`]) and return the name of its queue
    /// bucket (output `QueueBucketName`), which the Scheduler's config needs as `queue_bucket`.
    pub async fn deploy_queue_bucket(&self) -> String {
        let outputs = self.deploy_storage().await;
        outputs
            .into_iter()
            .find_map(|(k, v)| (k == "QueueBucketName").then_some(v))
            .expect("the storage stack has the output QueueBucketName")
    }

    /// Create an on-demand DynamoDB table keyed by a string `id` (for tests of the harness itself,
    /// where sosw's own tables would be in the way); returns a client for this local AWS.
    pub async fn create_id_table(&self, name: &str) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let ddb = aws_sdk_dynamodb::Client::new(self.sdk_config());
        ddb.create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create table {name}: {e:?}"));
        ddb
    }

    /// An S3 client for this local AWS, addressing buckets by path (moto serves no bucket
    /// subdomains on loopback).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(self.sdk_config())
                .force_path_style(true)
                .build(),
        )
    }
}

/// SDK config for a local endpoint.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-west-2"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "sosw-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Environment variables pointing the AWS SDK at `endpoint`.
pub fn env_for(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-west-2"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        (sosw_core::task::manager::TRANSACTION_ITEMS_ENV, "25"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        // The proxy stops serving when dropped (after this, with the struct's fields).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request a [`TestServer`] received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers as received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`TestServer`] answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A reply with a status and no body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: vec![],
        }
    }

    /// A `200` JSON reply.
    pub fn json(body: &serde_json::Value) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A loopback HTTP endpoint for tests: `tiny_http` on its own thread, answering every request
/// with `handler`. Stopped (and its thread joined) when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Listen on a free loopback port.
    pub fn start(handler: impl Fn(Request) -> Reply + Send + 'static) -> Self {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("an IP listener"));
        let serving = server.clone();
        let thread = std::thread::spawn(move || {
            for mut request in serving.incoming_requests() {
                let mut body = Vec::new();
                if std::io::Read::read_to_end(request.as_reader(), &mut body).is_err() {
                    continue;
                }
                let reply = handler(Request {
                    method: request.method().as_str().to_string(),
                    path: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_string(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect(),
                    body,
                });
                let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
                for (name, value) in &reply.headers {
                    response.add_header(
                        tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                            .expect("a valid header"),
                    );
                }
                let _ = request.respond(response);
            }
        });
        Self {
            url,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Lambda Invoke requests seen by [`recording_lambda`]: (path, `X-Amz-Invocation-Type`, body).
pub type RecordedInvocations = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A loopback endpoint that records Lambda Invoke requests and answers 202, for tests that check
/// the real request shape: its `url` goes to `AWS_ENDPOINT_URL_LAMBDA` or an SDK endpoint.
pub struct RecordingLambda {
    /// The endpoint (`http://127.0.0.1:<port>`).
    pub url: String,
    /// What it received.
    pub seen: RecordedInvocations,
    _server: TestServer,
}

/// Start a [`RecordingLambda`].
pub fn recording_lambda() -> RecordingLambda {
    let seen: RecordedInvocations = Default::default();
    let record = seen.clone();
    let server = TestServer::start(move |request| {
        record.lock().expect("not poisoned").push((
            request.path.clone(),
            request
                .header("x-amz-invocation-type")
                .unwrap_or_default()
                .to_string(),
            String::from_utf8_lossy(&request.body).into_owned(),
        ));
        Reply::status(202)
    });
    RecordingLambda {
        url: server.url.clone(),
        seen,
        _server: server,
    }
}
