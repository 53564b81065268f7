//! A minimal Lambda Runtime API on loopback, to measure an essential's cold start: the time from
//! spawning its binary to its first `GET /runtime/invocation/next` (ready for its first event),
//! then to its answer to that event (`POST .../response` or `.../error`), and its peak RSS
//! (`VmHWM` from `/proc/<pid>/status`) after that first invocation. The process is then stopped
//! through its own handle.
//!
//! Only the requests a Rust runtime client makes are served (HTTP/1.1, `Content-Length` bodies,
//! keep-alive); anything else is answered 404 and reported in [`ColdStart::unexpected`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What one cold start measured.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Spawn → first `GET /2018-06-01/runtime/invocation/next`.
    pub to_ready: Duration,
    /// Spawn → the answer to the first event.
    pub to_response: Duration,
    /// `true` when the answer was `.../response`, `false` for `.../error` (or an init error).
    pub succeeded: bool,
    /// The body of the answer (the handler's output or its error document).
    pub answer: String,
    /// Peak resident set size after the first invocation, in KiB (`VmHWM`).
    pub peak_rss_kib: u64,
    /// Each line the process wrote to stdout or stderr (its logs), with the time since the spawn
    /// at which this harness read it (lines are flushed as written: Rust's stdout is line-buffered).
    pub output: Vec<(Duration, String)>,
    /// Requests this Runtime API did not expect (method and path).
    pub unexpected: Vec<String>,
}

/// Why a cold start could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    /// Spawning the binary or talking to it failed.
    #[error("cold start of {binary}: {source}")]
    Io {
        /// The binary.
        binary: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process exited or closed the connection before answering its first event.
    #[error(
        "cold start of {binary}: the process stopped before answering its first event; its output:\n{output}"
    )]
    NoAnswer {
        /// The binary.
        binary: String,
        /// What it wrote.
        output: String,
    },
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, path, body }))
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Spawn `binary` with `env` (plus the Lambda variables a runtime needs), hand it `event` as its
/// first invocation, and measure. `timeout` bounds every read from the process.
pub fn measure(
    binary: &Path,
    function_name: &str,
    env: &[(String, String)],
    event: &str,
    timeout: Duration,
) -> Result<ColdStart, ColdStartError> {
    let io = |source| ColdStartError::Io {
        binary: binary.display().to_string(),
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    let pid = child.id();
    let lines: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
    let readers: Vec<_> = [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>),
        child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .expect("not poisoned")
                    .push((started.elapsed(), line));
            }
        })
    })
    .collect();
    let outcome = serve_first_event(&listener, event, timeout, started);
    let peak_rss_kib = peak_rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    for reader in readers {
        let _ = reader.join();
    }
    let mut output = std::mem::take(&mut *lines.lock().expect("not poisoned"));
    output.sort_by_key(|(at, _)| *at);
    let text = || {
        output
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    match outcome {
        Ok(Some(served)) => Ok(ColdStart {
            to_ready: served.to_ready,
            to_response: served.to_response,
            succeeded: served.succeeded,
            answer: served.answer,
            peak_rss_kib,
            output,
            unexpected: served.unexpected,
        }),
        Ok(None) => Err(ColdStartError::NoAnswer {
            binary: binary.display().to_string(),
            output: text(),
        }),
        Err(source) => Err(ColdStartError::Io {
            binary: format!("{} (output: {})", binary.display(), text()),
            source,
        }),
    }
}

struct Served {
    to_ready: Duration,
    to_response: Duration,
    succeeded: bool,
    answer: String,
    unexpected: Vec<String>,
}

fn serve_first_event(
    listener: &TcpListener,
    event: &str,
    timeout: Duration,
    started: Instant,
) -> std::io::Result<Option<Served>> {
    listener.set_nonblocking(false)?;
    let mut to_ready = None;
    let mut unexpected = Vec::new();
    let deadline = Instant::now() + timeout;
    // A runtime may open a new connection after an answer; serve connections one at a time.
    while Instant::now() < deadline {
        let (stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(timeout))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        while let Some(req) = read_request(&mut reader)? {
            if req.method == "GET" && req.path.ends_with("/runtime/invocation/next") {
                if to_ready.is_some() {
                    // The second poll: the first event was answered already; not expected here.
                    unexpected.push(format!("{} {}", req.method, req.path));
                    continue;
                }
                to_ready = Some(started.elapsed());
                let deadline_ms = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis() + 900_000)
                    .unwrap_or_default();
                write!(
                    writer,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Lambda-Runtime-Aws-Request-Id: coldstart-1\r\n\
                     Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-west-2:123456789012:function:coldstart\r\n\
                     Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                     Content-Length: {}\r\n\r\n{event}",
                    event.len()
                )?;
                writer.flush()?;
            } else if req.method == "POST"
                && (req.path.ends_with("/response") || req.path.ends_with("/error"))
            {
                let to_response = started.elapsed();
                writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")?;
                writer.flush()?;
                let succeeded = req.path.ends_with("/response") && !req.path.contains("/init/");
                return Ok(Some(Served {
                    to_ready: to_ready.unwrap_or(to_response),
                    to_response,
                    succeeded,
                    answer: String::from_utf8_lossy(&req.body).into_owned(),
                    unexpected,
                }));
            } else {
                unexpected.push(format!("{} {}", req.method, req.path));
                writer.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
                writer.flush()?;
            }
        }
    }
    Ok(None)
}

/// Median and maximum of a set of durations, in milliseconds (`(0, 0)` when empty).
pub fn median_max_ms(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    if ms.is_empty() {
        return (0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let mid = ms.len() / 2;
    let median = if ms.len() % 2 == 0 {
        (ms[mid - 1] + ms[mid]) / 2.0
    } else {
        ms[mid]
    };
    (median, ms[ms.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_sets_and_max() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(median_max_ms(&[d(3), d(1), d(2)]), (2.0, 3.0));
        assert_eq!(median_max_ms(&[d(4), d(1), d(2), d(3)]), (2.5, 4.0));
        assert_eq!(median_max_ms(&[]), (0.0, 0.0));
    }

    /// A runtime client written in Python (the venv's interpreter): polls once, answers with the
    /// event it got, then polls again. The harness must hand it the event, take its answer, and
    /// report the times in order and a peak RSS.
    #[test]
    fn measures_a_runtime_client_from_spawn_to_its_answer() {
        let script = r#"
import os, http.client, json
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
c = http.client.HTTPConnection(api)
c.request("GET", "/2018-06-01/runtime/invocation/next")
r = c.getresponse(); event = json.loads(r.read()); rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
c.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body=json.dumps({"echo": event}))
c.getresponse().read()
print("answered", os.environ["AWS_LAMBDA_FUNCTION_NAME"], flush=True)
c.request("GET", "/2018-06-01/runtime/invocation/next")
c.getresponse()
"#;
        let python = crate::venv_bin("python");
        let dir = std::env::temp_dir().join(format!("sosw-coldstart-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.py");
        std::fs::write(&path, script).unwrap();
        // `measure` runs a binary without arguments: wrap the interpreter in a shell script.
        let wrapper = dir.join("client.sh");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec {} {}\n", python.display(), path.display()),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&wrapper, perms).unwrap();

        let cold = measure(
            &wrapper,
            "echo_fn",
            &[],
            r#"{"ping": 1}"#,
            Duration::from_secs(20),
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(cold.succeeded);
        assert_eq!(cold.answer, r#"{"echo": {"ping": 1}}"#);
        assert!(cold.to_ready <= cold.to_response);
        assert!(cold.peak_rss_kib > 0, "VmHWM read while the process lives");
        assert!(cold.unexpected.is_empty(), "{:?}", cold.unexpected);
    }
}
