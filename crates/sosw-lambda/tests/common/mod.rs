//! A minimal Lambda Runtime API on 127.0.0.1 that hands out events and records what the runtime
//! posts back.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use serde_json::Value;

/// One request the runtime posted: its path and body.
#[derive(Debug)]
pub struct Posted {
    pub path: String,
    pub body: Value,
}

/// Serve `GET .../invocation/next` with `events` (request ids `req-0`, `req-1`, ...), then answer
/// further `next` calls with 503 (the test ends the runtime before that matters); send every POST
/// to `posted`.
pub fn serve(listener: TcpListener, events: Vec<Value>, posted: mpsc::Sender<Posted>) {
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

/// Start the fake Runtime API with `events` on a thread and point lambda_runtime's environment at it
/// (function `test`). Each test binary runs one test, so the environment is its own.
pub fn start(events: Vec<Value>) -> mpsc::Receiver<Posted> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (posted_tx, posted_rx) = mpsc::channel();
    std::thread::spawn(move || serve(listener, events, posted_tx));
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", address.to_string());
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "test");
    std::env::set_var("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]stream");
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    posted_rx
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
