//! # sosw-test-support
//!
//! Test support for this workspace only (`publish = false`; no shipped binary depends on it):
//! a local AWS for tests: a moto server on a free loopback port, started from the project's
//! `.venv` (run `scripts/setup`), stopped when the [`LocalAws`] is dropped. Tables come from the
//! same CloudFormation template users deploy (`cloudformation/sosw-storage.yaml`).

pub mod capacity;
pub mod coldstart;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod proxy;

pub use proxy::RequestCounts;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
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
    proxy: Option<proxy::Proxy>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("addr")
        .port()
}

/// A raw HTTP/1.0 request to a loopback port; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
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
                if matches!(http(port, "GET", "/moto-api/", ""), Ok((200, _))) {
                    let endpoint = format!("http://127.0.0.1:{port}");
                    let sdk = sdk_config_for(&endpoint).await;
                    // No Docker here: moto must not try to run Lambda code in containers.
                    let _ = http(
                        port,
                        "POST",
                        "/moto-api/config",
                        r#"{"lambda":{"use_docker":false}}"#,
                    );
                    return Self {
                        upstream: endpoint.clone(),
                        endpoint,
                        port,
                        sdk,
                        child,
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
    pub async fn start_counted() -> Self {
        Self::start_behind(false, |b| b).await
    }

    /// Start moto (serialised or not, see [`Self::start_serialised`]) behind a [`proxy::Proxy`]
    /// configured by `configure` (its [`proxy::Intercept`] and [`proxy::Observe`] hooks). Clients of
    /// [`Self::sdk_config`], [`Self::env`] and [`Self::endpoint`] go through the proxy;
    /// [`Self::upstream`] is moto itself.
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
    pub fn proxy(&self) -> Option<&proxy::Proxy> {
        self.proxy.as_ref()
    }

    /// Requests counted since the start or the last reset (zeros without a proxy).
    pub fn counts(&self) -> RequestCounts {
        self.proxy.as_ref().map(proxy::Proxy::counts).unwrap_or_default()
    }

    /// Zero the counters.
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
        let cf = aws_sdk_cloudformation::Client::new(&self.sdk);
        let mut req = cf.create_stack().stack_name(name).template_body(body);
        for (k, v) in params {
            req = req.parameters(Parameter::builder().parameter_key(*k).parameter_value(*v).build());
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("create stack {name}: {e:?}"));
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

/// Lambda Invoke requests seen by [`recording_lambda`]: (path, `X-Amz-Invocation-Type`, body).
pub type RecordedInvocations = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A loopback endpoint that records Lambda Invoke requests and answers 202, for tests that check
/// the real request shape. Returns its URL (for `AWS_ENDPOINT_URL_LAMBDA` or an SDK endpoint).
pub async fn recording_lambda() -> (String, RecordedInvocations) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let seen: RecordedInvocations = Default::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = &text[..end];
                    let header = |name: &str| {
                        head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    record.lock().expect("not poisoned").push((
                        path,
                        header("x-amz-invocation-type").unwrap_or_default(),
                        body,
                    ));
                    let _ = sock
                        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    buf.clear();
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}
