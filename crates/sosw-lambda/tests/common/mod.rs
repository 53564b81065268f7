//! A minimal Lambda Runtime API on 127.0.0.1 (a `sosw_test_support::TestServer`) that hands out
//! events and records what the runtime posts back.
#![allow(dead_code)]

use serde_json::Value;
use sosw_test_support::{Reply, TestServer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// One request the runtime posted: its path and body.
#[derive(Debug)]
pub struct Posted {
    pub path: String,
    pub body: Value,
}

/// Serve `GET .../invocation/next` with `events` (request ids `req-0`, `req-1`, ...), then 503 (the
/// test ends the runtime before that matters); send every POST to the returned receiver. Points
/// lambda_runtime's environment at it (function `test`): each test binary runs one test, so the
/// environment is its own.
pub fn start(events: Vec<Value>) -> (TestServer, mpsc::Receiver<Posted>) {
    let (posted_tx, posted_rx) = mpsc::channel();
    let posted_tx = std::sync::Mutex::new(posted_tx);
    let handed = AtomicUsize::new(0);
    let server = TestServer::start(move |request| {
        if request.method == "GET" && request.path.ends_with("/invocation/next") {
            let n = handed.fetch_add(1, Ordering::SeqCst);
            return match events.get(n) {
                Some(event) => Reply::json(event)
                    .with_header("lambda-runtime-aws-request-id", &format!("req-{n}"))
                    .with_header("lambda-runtime-deadline-ms", "4102444800000")
                    .with_header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-west-2:000000000000:function:test",
                    ),
                None => Reply::status(503),
            };
        }
        let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let _ = posted_tx.lock().unwrap().send(Posted {
            path: request.path,
            body,
        });
        Reply::status(202)
    });
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", server.url.trim_start_matches("http://"));
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "test");
    std::env::set_var("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]stream");
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    (server, posted_rx)
}

/// The next `n` outcomes the runtime posts (waits on a blocking thread).
pub async fn outcomes(posted: mpsc::Receiver<Posted>, n: usize) -> Vec<Posted> {
    tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|i| {
                posted
                    .recv_timeout(std::time::Duration::from_secs(30))
                    .unwrap_or_else(|_| panic!("the runtime posts outcome {i}"))
            })
            .collect()
    })
    .await
    .unwrap()
}
