//! A loopback HTTP proxy in front of the local AWS (moto) that classifies, counts, observes and
//! — through an [`Intercept`] hook — injects the faults AWS really produces: throttling and 5xx
//! answers, added latency, connections dropped after the request was applied upstream, and
//! BatchWriteItem items returned as `UnprocessedItems`.
//!
//! ```no_run
//! # async fn demo() {
//! use sosw_test_support::proxy::{Proxy, RequestInfo, Verdict};
//! let proxy = Proxy::builder("http://127.0.0.1:5000")
//!     .intercept(|req: &RequestInfo| match req.op().as_str() {
//!         "lambda.Invoke" => Verdict::lambda_too_many_requests(),
//!         _ => Verdict::Forward,
//!     })
//!     .start()
//!     .await;
//! println!("point the SDK at {}", proxy.endpoint());
//! # }
//! ```
//!
//! Every request received counts in [`Proxy::counts`] (by `service.Operation`), whatever its
//! verdict; an [`Observe`] hook sees each (request, response) pair the client was answered with.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// AWS requests counted by a [`Proxy`] (see also [`crate::LocalAws::start_counted`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// All requests.
    pub requests: u64,
    /// DynamoDB items returned by upstream (`Items` of a query/scan, `Item` of a GetItem).
    pub items_returned: u64,
    /// Requests by `service.Operation`.
    pub by_op: BTreeMap<String, u64>,
}

/// One request as the proxy received it, classified.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The AWS service, from the SigV4 credential scope (`dynamodb`, `lambda`, `s3`...), or `unknown`.
    pub service: String,
    /// The operation (`UpdateItem`, `Invoke`, `PutObject`...).
    pub operation: String,
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

impl RequestInfo {
    /// `service.Operation`, the key of [`RequestCounts::by_op`].
    pub fn op(&self) -> String {
        format!("{}.{}", self.service, self.operation)
    }

    /// The body as JSON (DynamoDB, SQS JSON, Lambda payloads), if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// For a Lambda Invoke: the function name in the path.
    pub fn lambda_function(&self) -> Option<&str> {
        let rest = self
            .path
            .split('?')
            .next()?
            .strip_prefix("/2015-03-31/functions/")?;
        rest.strip_suffix("/invocations")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The response the client got (for an [`Observe`] hook).
#[derive(Debug, Clone)]
pub struct ResponseInfo {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
    /// The proxy answered (or dropped) itself rather than relaying upstream's answer unchanged.
    pub injected: bool,
}

impl ResponseInfo {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What the proxy does with a request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Relay it upstream and its answer back.
    Forward,
    /// Answer it here; upstream never sees it.
    Respond {
        /// HTTP status.
        status: u16,
        /// Response headers (`Content-Length` is set by the proxy).
        headers: Vec<(String, String)>,
        /// Response body.
        body: Bytes,
    },
    /// Wait, then forward.
    Delay(Duration),
    /// Forward (so upstream applies it), then close the client's connection without an answer:
    /// the client sees an I/O error for a request that took effect.
    ForwardThenDrop,
    /// For a DynamoDB `BatchWriteItem`: forward only the first `forward` write requests (in the
    /// order of the request's tables) and answer the rest as `UnprocessedItems`, as DynamoDB does
    /// under throttling. Any other request is forwarded unchanged.
    PartialBatch {
        /// How many write requests reach upstream.
        forward: usize,
    },
}

impl Verdict {
    /// An AWS JSON-protocol error answer (`__type` + `message`, `x-amzn-ErrorType`).
    pub fn aws_json_error(status: u16, error_type: &str, message: &str) -> Self {
        let body = serde_json::json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{error_type}"), "message": message});
        Verdict::Respond {
            status,
            headers: vec![
                ("Content-Type".into(), "application/x-amz-json-1.0".into()),
                ("x-amzn-ErrorType".into(), error_type.into()),
            ],
            body: Bytes::from(body.to_string()),
        }
    }

    /// DynamoDB throttling: 400 `ProvisionedThroughputExceededException` (retryable for the SDK).
    pub fn dynamodb_throttled() -> Self {
        Self::aws_json_error(
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded (injected)",
        )
    }

    /// A server error (500 or 503) with an AWS JSON body.
    pub fn server_error(status: u16) -> Self {
        let kind = if status == 503 {
            "ServiceUnavailable"
        } else {
            "InternalServerError"
        };
        Self::aws_json_error(status, kind, "injected server error")
    }

    /// Lambda throttling: 429 `TooManyRequestsException`.
    pub fn lambda_too_many_requests() -> Self {
        Verdict::Respond {
            status: 429,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("x-amzn-ErrorType".into(), "TooManyRequestsException".into()),
            ],
            body: Bytes::from_static(
                br#"{"Type":"User","message":"Rate Exceeded. (injected)","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#,
            ),
        }
    }

    /// Lambda's answer to an accepted Event invoke: 202, empty body.
    pub fn lambda_accepted() -> Self {
        Verdict::Respond {
            status: 202,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
}

/// Decides each request's fate. Runs on the proxy's tasks: keep it quick and never block.
pub trait Intercept: Send + Sync {
    /// The verdict for one request.
    fn on_request(&self, req: &RequestInfo) -> Verdict;
}

impl<F> Intercept for F
where
    F: Fn(&RequestInfo) -> Verdict + Send + Sync,
{
    fn on_request(&self, req: &RequestInfo) -> Verdict {
        self(req)
    }
}

/// Sees every (request, response) pair once the client's answer is known (for a dropped
/// connection: upstream's answer, which the client never got).
pub trait Observe: Send + Sync {
    /// One exchange.
    fn on_exchange(&self, req: &RequestInfo, resp: &ResponseInfo);
}

impl<F> Observe for F
where
    F: Fn(&RequestInfo, &ResponseInfo) + Send + Sync,
{
    fn on_exchange(&self, req: &RequestInfo, resp: &ResponseInfo) {
        self(req, resp)
    }
}

/// Builds a [`Proxy`].
pub struct ProxyBuilder {
    upstream: String,
    intercept: Option<Arc<dyn Intercept>>,
    observe: Option<Arc<dyn Observe>>,
}

impl fmt::Debug for ProxyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyBuilder")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl ProxyBuilder {
    /// The hook deciding each request's verdict (default: forward everything).
    pub fn intercept(mut self, hook: impl Intercept + 'static) -> Self {
        self.intercept = Some(Arc::new(hook));
        self
    }

    /// As [`Self::intercept`], with a hook shared with the caller.
    pub fn intercept_arc(mut self, hook: Arc<dyn Intercept>) -> Self {
        self.intercept = Some(hook);
        self
    }

    /// The hook that sees every (request, response) pair.
    pub fn observe(mut self, hook: impl Observe + 'static) -> Self {
        self.observe = Some(Arc::new(hook));
        self
    }

    /// Bind a free loopback port and serve on the current tokio runtime until the proxy is dropped.
    pub async fn start(self) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let upstream: hyper::Uri = self
            .upstream
            .parse()
            .unwrap_or_else(|e| panic!("proxy upstream `{}` is not a URI: {e}", self.upstream));
        let state = Arc::new(State {
            upstream,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http(),
            intercept: self.intercept,
            observe: self.observe,
            counts: Mutex::new(RequestCounts::default()),
            applied_transactions: Mutex::new(HashMap::new()),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { state.handle(req).await }
                    });
                    // A dropped connection (ForwardThenDrop) ends here with the service's error.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { addr, state, task }
    }
}

/// A running proxy; stops serving when dropped.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn builder(upstream: impl Into<String>) -> ProxyBuilder {
        ProxyBuilder {
            upstream: upstream.into(),
            intercept: None,
            observe: None,
        }
    }

    /// `http://127.0.0.1:PORT`: where clients connect.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests counted since the start or the last [`Self::reset_counts`].
    pub fn counts(&self) -> RequestCounts {
        self.state.counts.lock().expect("counts lock").clone()
    }

    /// Zero the counters.
    pub fn reset_counts(&self) {
        *self.state.counts.lock().expect("counts lock") = RequestCounts::default();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    upstream: hyper::Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    intercept: Option<Arc<dyn Intercept>>,
    observe: Option<Arc<dyn Observe>>,
    counts: Mutex<RequestCounts>,
    /// DynamoDB's idempotency, which moto lacks: the answer of each applied TransactWriteItems by
    /// its `ClientRequestToken`, replayed to a retry with the same token (as DynamoDB does for
    /// ten minutes), so a transaction whose connection dropped after it was applied meets its own
    /// success on retry, not its own changes.
    applied_transactions: Mutex<HashMap<String, ResponseInfo>>,
}

/// The `ClientRequestToken` of a TransactWriteItems request.
fn transaction_token(info: &RequestInfo) -> Option<String> {
    if info.op() != "dynamodb.TransactWriteItems" {
        return None;
    }
    info.json()?
        .get("ClientRequestToken")?
        .as_str()
        .map(str::to_string)
}

/// The error that makes hyper close a client connection without answering.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the proxy after the request was applied")
    }
}

impl std::error::Error for Dropped {}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
];

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Err(Dropped),
        };
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let service = service_of(&parts.headers);
        let operation = operation_of(&service, &parts.method, &path, &parts.headers, &body);
        let info = RequestInfo {
            service,
            operation,
            method: parts.method,
            path,
            headers: parts.headers,
            body,
        };
        {
            let mut c = self.counts.lock().expect("counts lock");
            c.requests += 1;
            *c.by_op.entry(info.op()).or_insert(0) += 1;
        }
        let token = transaction_token(&info);
        let replay = token.as_ref().and_then(|t| {
            self.applied_transactions
                .lock()
                .expect("transactions lock")
                .get(t)
                .cloned()
        });
        let verdict = match (&replay, &self.intercept) {
            (Some(_), _) => Verdict::Forward,
            (None, Some(hook)) => hook.on_request(&info),
            (None, None) => Verdict::Forward,
        };
        let (resp, drop_after) = match verdict {
            Verdict::Forward if replay.is_some() => (replay.clone().expect("checked"), false),
            Verdict::Forward => (self.forward(&info, info.body.clone()).await, false),
            Verdict::Delay(d) => {
                tokio::time::sleep(d).await;
                (self.forward(&info, info.body.clone()).await, false)
            }
            Verdict::ForwardThenDrop => {
                let mut r = self.forward(&info, info.body.clone()).await;
                r.injected = true;
                (r, true)
            }
            Verdict::Respond {
                status,
                headers,
                body,
            } => {
                let mut map = HeaderMap::new();
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                        map.append(k, v);
                    }
                }
                (
                    ResponseInfo {
                        status,
                        headers: map,
                        body,
                        injected: true,
                    },
                    false,
                )
            }
            Verdict::PartialBatch { forward } => self.partial_batch(&info, forward).await,
        };
        if let (Some(token), None, 200) = (&token, &replay, resp.status) {
            if !resp.injected || drop_after {
                self.applied_transactions
                    .lock()
                    .expect("transactions lock")
                    .insert(
                        token.clone(),
                        ResponseInfo {
                            injected: false,
                            ..resp.clone()
                        },
                    );
            }
        }
        if let Some(obs) = &self.observe {
            obs.on_exchange(&info, &resp);
        }
        if drop_after {
            return Err(Dropped);
        }
        let mut out = Response::new(Full::new(resp.body.clone()));
        *out.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in &resp.headers {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                out.headers_mut().append(k, v.clone());
            }
        }
        Ok(out)
    }

    /// Forward with `body`; an unreachable upstream becomes a 502 (counted as injected: false).
    async fn forward(&self, info: &RequestInfo, body: Bytes) -> ResponseInfo {
        let mut uri = format!(
            "{}://{}{}",
            self.upstream.scheme_str().unwrap_or("http"),
            self.upstream
                .authority()
                .map(|a| a.as_str())
                .unwrap_or("127.0.0.1"),
            info.path
        );
        if !info.path.starts_with('/') {
            uri.insert(uri.len() - info.path.len(), '/');
        }
        let mut req = Request::builder().method(info.method.clone()).uri(&uri);
        for (k, v) in &info.headers {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                req = req.header(k, v);
            }
        }
        let req = req
            .header(CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .expect("a request copied from a valid one is valid");
        let answer = match self.client.request(req).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                match body.collect().await {
                    Ok(b) => Ok((parts, b.to_bytes())),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok((parts, body)) => {
                if info.service == "dynamodb" && body.first() == Some(&b'{') {
                    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) {
                        let items = doc.get("Items").and_then(|i| i.as_array()).map_or(0, |a| a.len())
                            + usize::from(doc.get("Item").is_some());
                        self.counts.lock().expect("counts lock").items_returned += items as u64;
                    }
                }
                ResponseInfo {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body,
                    injected: false,
                }
            }
            Err(e) => ResponseInfo {
                status: 502,
                headers: HeaderMap::new(),
                body: Bytes::from(format!("proxy: upstream {uri} failed: {e}")),
                injected: false,
            },
        }
    }

    async fn partial_batch(&self, info: &RequestInfo, forward: usize) -> (ResponseInfo, bool) {
        let doc = match (info.operation.as_str(), info.json()) {
            ("BatchWriteItem", Some(doc)) => doc,
            _ => return (self.forward(info, info.body.clone()).await, false),
        };
        let Some(tables) = doc.get("RequestItems").and_then(|r| r.as_object()) else {
            return (self.forward(info, info.body.clone()).await, false);
        };
        let mut kept = serde_json::Map::new();
        let mut held = serde_json::Map::new();
        let mut budget = forward;
        for (table, writes) in tables {
            for w in writes.as_array().into_iter().flatten() {
                let side = if budget > 0 {
                    budget -= 1;
                    &mut kept
                } else {
                    &mut held
                };
                side.entry(table.clone())
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()))
                    .as_array_mut()
                    .expect("an array")
                    .push(w.clone());
            }
        }
        let mut resp = if kept.is_empty() {
            ResponseInfo {
                status: 200,
                headers: HeaderMap::from_iter([(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-amz-json-1.0"),
                )]),
                body: Bytes::from_static(b"{\"UnprocessedItems\":{}}"),
                injected: true,
            }
        } else {
            let mut sent = doc.clone();
            sent["RequestItems"] = serde_json::Value::Object(kept);
            self.forward(info, Bytes::from(sent.to_string())).await
        };
        if resp.status != 200 {
            return (resp, false);
        }
        let mut answer: serde_json::Value =
            serde_json::from_slice(&resp.body).unwrap_or_else(|_| serde_json::json!({}));
        let unprocessed = answer
            .as_object_mut()
            .expect("an object")
            .entry("UnprocessedItems")
            .or_insert_with(|| serde_json::json!({}));
        if !unprocessed.is_object() {
            *unprocessed = serde_json::json!({});
        }
        let map = unprocessed.as_object_mut().expect("an object");
        for (table, writes) in held {
            let slot = map
                .entry(table)
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let (Some(slot), serde_json::Value::Array(w)) = (slot.as_array_mut(), writes) {
                slot.extend(w);
            }
        }
        resp.body = Bytes::from(answer.to_string());
        resp.injected = true;
        (resp, false)
    }
}

/// The service of a SigV4-signed request: the fourth element of the credential scope.
fn service_of(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split([',', ' ']).next())
        .and_then(|scope| scope.split('/').nth(3))
        .map(str::to_string)
        .unwrap_or_else(|| "unknown".into())
}

/// The operation of a request, by protocol: JSON (`X-Amz-Target`), Smithy RPC v2 path, Query
/// (`Action=`), Lambda's REST paths and S3's method + path.
fn operation_of(service: &str, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let p = path.split('?').next().unwrap_or(path);
    if let Some(op) = p.rsplit_once("/operation/").map(|(_, op)| op) {
        if !op.is_empty() && op.chars().all(|c| c.is_ascii_alphanumeric()) {
            return op.to_string();
        }
    }
    if let Some(action) =
        query_action(body).or_else(|| path.split_once('?').and_then(|(_, q)| query_action(q.as_bytes())))
    {
        return action;
    }
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    match service {
        "lambda" => {
            if p.ends_with("/invocations") {
                "Invoke".into()
            } else if *method == Method::POST && p.trim_end_matches('/').ends_with("/functions") {
                "CreateFunction".into()
            } else if p.ends_with("/configuration") {
                if *method == Method::GET {
                    "GetFunctionConfiguration"
                } else {
                    "UpdateFunctionConfiguration"
                }
                .into()
            } else {
                format!("{method} {}", parts.first().map_or("", |v| v))
            }
        }
        "s3" => {
            let object = parts.len() > 1;
            match *method {
                Method::PUT if headers.contains_key("x-amz-copy-source") => "CopyObject",
                Method::PUT if object => "PutObject",
                Method::PUT => "CreateBucket",
                Method::GET if object => "GetObject",
                Method::GET => "ListObjects",
                Method::DELETE if object => "DeleteObject",
                Method::DELETE => "DeleteBucket",
                Method::HEAD if object => "HeadObject",
                Method::HEAD => "HeadBucket",
                Method::POST if path.contains("?delete") => "DeleteObjects",
                _ => return format!("{method} object"),
            }
            .into()
        }
        _ => format!("{method} {p}"),
    }
}

/// `Action=X` of a form-encoded (Query protocol) body or query string.
fn query_action(form: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(form.get(..form.len().min(4096))?).ok()?;
    text.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .and_then(|a| {
            let a = a.trim();
            (!a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric())).then(|| a.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::try_from(*k).unwrap(),
                    HeaderValue::try_from(*v).unwrap(),
                )
            })
            .collect()
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20261124/us-west-2/SERVICE/aws4_request, SignedHeaders=host, Signature=00";

    fn auth(service: &str) -> (&'static str, String) {
        ("authorization", AUTH.replace("SERVICE", service))
    }

    #[test]
    fn classifies_each_protocol() {
        let h = |svc: &str, extra: &[(&str, &str)]| {
            let (k, v) = auth(svc);
            let mut all = vec![(k, v.as_str())];
            all.extend_from_slice(extra);
            headers(&all)
        };
        let ddb = h("dynamodb", &[("x-amz-target", "DynamoDB_20120810.UpdateItem")]);
        assert_eq!(service_of(&ddb), "dynamodb");
        assert_eq!(
            operation_of("dynamodb", &Method::POST, "/", &ddb, b"{}"),
            "UpdateItem"
        );
        let sqs = h("sqs", &[("x-amz-target", "AmazonSQS.SendMessage")]);
        assert_eq!(
            operation_of("sqs", &Method::POST, "/", &sqs, b"{}"),
            "SendMessage"
        );
        let lambda = h("lambda", &[]);
        assert_eq!(
            operation_of(
                "lambda",
                &Method::POST,
                "/2015-03-31/functions/w/invocations",
                &lambda,
                b"{}"
            ),
            "Invoke"
        );
        let sns = h("sns", &[]);
        assert_eq!(
            operation_of(
                "sns",
                &Method::POST,
                "/",
                &sns,
                b"Action=Publish&Version=2010-03-31"
            ),
            "Publish"
        );
        let cw = h("monitoring", &[]);
        assert_eq!(
            operation_of(
                "monitoring",
                &Method::POST,
                "/",
                &cw,
                b"Action=GetMetricStatistics&x=1"
            ),
            "GetMetricStatistics"
        );
        let s3 = h("s3", &[]);
        assert_eq!(
            operation_of("s3", &Method::PUT, "/bucket/key.csv", &s3, b""),
            "PutObject"
        );
        assert_eq!(
            operation_of("s3", &Method::GET, "/bucket/key.csv", &s3, b""),
            "GetObject"
        );
        assert_eq!(
            operation_of("s3", &Method::PUT, "/bucket", &s3, b""),
            "CreateBucket"
        );
        assert_eq!(
            operation_of("s3", &Method::DELETE, "/bucket/k", &s3, b""),
            "DeleteObject"
        );
        assert_eq!(service_of(&HeaderMap::new()), "unknown");
    }
}
