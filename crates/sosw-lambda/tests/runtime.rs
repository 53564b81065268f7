//! Panics fail the invocation, not the process: the shared `run` against a minimal Lambda Runtime
//! API on 127.0.0.1 that hands out two events and records what the runtime posts back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use serde_json::{json, Value};

/// One request the runtime posted: its path and body.
#[derive(Debug)]
struct Posted {
    path: String,
    body: Value,
}

/// Serve `GET .../invocation/next` with `events` (request ids `req-0`, `req-1`, ...), then answer
/// further `next` calls with 503 (the test ends the runtime before that matters); send every POST
/// to `posted`.
fn serve(listener: TcpListener, events: Vec<Value>, posted: mpsc::Sender<Posted>) {
    let handed = Arc::new(AtomicUsize::new(0));
    let events = Arc::new(events);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let (handed, events, posted) = (handed.clone(), events.clone(), posted.clone());
        std::thread::spawn(move || {
            let _ = connection(stream, &handed, &events, &posted);
        });
    }
}

/// One keep-alive connection: requests until the client closes it.
fn connection(
    stream: TcpStream,
    handed: &AtomicUsize,
    events: &[Value],
    posted: &mpsc::Sender<Posted>,
) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if method == "GET" && path.ends_with("/invocation/next") {
            let n = handed.fetch_add(1, Ordering::SeqCst);
            match events.get(n) {
                Some(event) => {
                    let body = event.to_string();
                    write!(
                        writer,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-{n}\r\n\
                         lambda-runtime-deadline-ms: 4102444800000\r\n\
                         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-west-2:000000000000:function:test\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    )?;
                }
                None => write!(
                    writer,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                )?,
            }
        } else {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = posted.send(Posted { path, body });
            write!(writer, "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")?;
        }
        writer.flush()?;
    }
}

#[tokio::test]
async fn a_panic_fails_its_invocation_and_the_next_one_is_answered() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (posted_tx, posted_rx) = mpsc::channel();
    std::thread::spawn(move || {
        serve(
            listener,
            vec![json!({"panic": true}), json!({"panic": false})],
            posted_tx,
        )
    });
    // This test binary runs this one test; lambda_runtime reads its settings from the environment.
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", address.to_string());
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "test");
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");

    let runtime = tokio::spawn(sosw_lambda::run(
        |event: Value, invocation: sosw_lambda::Invocation| async move {
            if event["panic"] == json!(true) {
                panic!("handler panicked on {}", invocation.request_id);
            }
            Ok(json!({"answered": invocation.request_id, "deadline_ms": invocation.deadline_ms}))
        },
    ));

    let wait = std::time::Duration::from_secs(30);
    let first = tokio::task::spawn_blocking({
        move || {
            let first = posted_rx
                .recv_timeout(wait)
                .expect("the runtime posts the first outcome");
            let second = posted_rx
                .recv_timeout(wait)
                .expect("the runtime posts the second outcome");
            (first, second)
        }
    })
    .await
    .unwrap();
    runtime.abort();
    let (first, second) = first;

    assert_eq!(first.path, "/2018-06-01/runtime/invocation/req-0/error");
    assert!(
        first.body["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("handler panicked on req-0"),
        "{:?}",
        first.body
    );
    assert_eq!(second.path, "/2018-06-01/runtime/invocation/req-1/response");
    assert_eq!(
        second.body,
        json!({"answered": "req-1", "deadline_ms": 4102444800000u64})
    );
    assert!(!runtime.is_finished() || runtime.await.unwrap_err().is_cancelled());
}
