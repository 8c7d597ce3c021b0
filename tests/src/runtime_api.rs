//! A local Lambda Runtime API, to run a function binary the way Lambda runs it: the process is
//! started with `AWS_LAMBDA_RUNTIME_API` pointing here, `lambda_runtime` initialises (config, SDK
//! clients) and asks for the next event (`GET …/invocation/next`), the handler runs and posts its
//! response, and asks for the next. [`cold_start`] times the first event from the process
//! launch; [`warm`] hands one process a sequence of events, one at a time as a Lambda execution
//! environment gets them. Both report the process's peak resident memory (`VmHWM`, what Lambda
//! reports as "Max Memory Used") once it has answered the last.

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use serde_json::Value;

/// One cold start of one function.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Launch → the runtime asks for its first event (process start + `main` until `run`).
    pub init: Duration,
    /// Launch → the first response (or error) posted.
    pub first_response: Duration,
    /// The response body, or the error the function reported.
    pub outcome: Result<Value, String>,
    /// Peak resident memory of the process, in KiB (0 where `/proc` cannot tell).
    pub peak_rss_kib: u64,
}

/// One execution environment that handled a sequence of events.
#[derive(Debug, Clone)]
pub struct Warm {
    /// Launch → the runtime asks for its first event.
    pub init: Duration,
    /// Per event: how long the handler took (event handed out → answer posted), and the answer.
    pub answers: Vec<(Duration, Result<Value, String>)>,
    /// Peak resident memory of the process over all of them, in KiB (0 where `/proc` cannot
    /// tell).
    pub peak_rss_kib: u64,
}

#[derive(Default)]
struct State {
    events: Vec<Vec<u8>>,
    /// Events handed out so far.
    served: usize,
    init: Option<Duration>,
    /// When the event being handled was handed out.
    handed_out: Option<Duration>,
    answers: Vec<(Duration, Result<Value, String>)>,
}

/// A request id per event: the runtime posts the answer under it.
fn request_id(n: usize) -> String {
    format!("8476a536-e9f4-11e8-9739-{n:012x}")
}

async fn serve(
    state: Arc<Mutex<State>>,
    started: Instant,
    finished: Arc<tokio::sync::Notify>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let accepted = || {
        Response::builder()
            .status(202)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap_or_default()
    };
    if method == hyper::Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        let event = {
            let Ok(mut s) = state.lock() else {
                return Ok(accepted());
            };
            let n = s.served;
            s.init.get_or_insert(started.elapsed());
            s.handed_out = Some(started.elapsed());
            s.served += 1;
            s.events.get(n).cloned().map(|e| (n, e))
        };
        let Some((n, event)) = event else {
            // Every event handed out: the next poll waits until the process is killed.
            std::future::pending::<()>().await;
            return Ok(accepted());
        };
        let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", request_id(n))
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
            )
            .body(Full::new(Bytes::from(event)))
            .unwrap_or_default());
    }
    let error = || Err(String::from_utf8_lossy(&body).into_owned());
    let invocation = path.strip_prefix("/2018-06-01/runtime/invocation/");
    let (id, outcome) = match invocation.and_then(|p| p.split_once('/')) {
        Some((id, "response")) => (
            Some(id),
            Some(serde_json::from_slice(&body).map_err(|e| e.to_string())),
        ),
        Some((id, "error")) => (Some(id), Some(error())),
        _ if path == "/2018-06-01/runtime/init/error" => (None, Some(error())),
        _ => (None, None),
    };
    if let (Some(outcome), Ok(mut s)) = (outcome, state.lock()) {
        // An answer counts under the id of the event being handled; an init error ends it all.
        let current = s.served.checked_sub(1).map(request_id);
        if id.is_some() && id != current.as_deref() {
            return Ok(accepted());
        }
        if id.is_none() {
            let n = s.events.len();
            s.answers
                .resize(n.saturating_sub(1), (Duration::ZERO, Err("not run".into())));
        }
        let took = started
            .elapsed()
            .saturating_sub(s.handed_out.take().unwrap_or_default());
        s.answers.push((took, outcome));
        if s.answers.len() == s.events.len() {
            finished.notify_one();
        }
    }
    Ok(accepted())
}

/// Peak resident memory (`VmHWM`) of process `pid` (a number, or `self`), in KiB; 0 where
/// `/proc` cannot tell.
pub fn peak_rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Launches `binary` with exactly `env` (plus the Runtime API variables), hands it `event`,
/// and returns the timings once it has answered. The process is killed afterwards.
pub async fn cold_start(
    binary: &Path,
    env: &[(String, String)],
    event: &Value,
    timeout: Duration,
) -> std::io::Result<ColdStart> {
    let w = warm(binary, env, std::slice::from_ref(event), timeout).await?;
    let init = w.init;
    let (took, outcome) = w
        .answers
        .into_iter()
        .next()
        .ok_or_else(|| std::io::Error::other("no event was served"))?;
    Ok(ColdStart {
        init,
        first_response: init + took,
        outcome,
        peak_rss_kib: w.peak_rss_kib,
    })
}

/// Launches `binary` with exactly `env` (plus the Runtime API variables) and hands it `events`
/// one at a time, each once the previous one is answered; returns once the last is answered
/// (or `timeout` after the launch). The process is killed afterwards.
pub async fn warm(
    binary: &Path,
    env: &[(String, String)],
    events: &[Value],
    timeout: Duration,
) -> std::io::Result<Warm> {
    if events.is_empty() {
        return Err(std::io::Error::other("no event to hand out"));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let events = events
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()?;
    let state = Arc::new(Mutex::new(State {
        events,
        ..State::default()
    }));
    let finished = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let server = tokio::spawn(accept(listener, state.clone(), started, finished.clone()));
    let waited = tokio::time::timeout(timeout, async {
        tokio::select! {
            biased;
            _ = finished.notified() => Ok(()),
            status = child.wait() => Err(status),
        }
    })
    .await;
    let peak_rss_kib = child.id().map_or(0, |pid| peak_rss_kib(&pid.to_string()));
    let _ = child.kill().await;
    server.abort();
    match waited {
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{} did not answer within {timeout:?}", binary.display()),
        )),
        Ok(Err(status)) => Err(std::io::Error::other(format!(
            "{} exited before answering: {status:?}",
            binary.display()
        ))),
        Ok(Ok(())) => {
            let mut s = state
                .lock()
                .map_err(|_| std::io::Error::other("state poisoned"))?;
            let init = s
                .init
                .ok_or_else(|| std::io::Error::other("no event was served"))?;
            Ok(Warm {
                init,
                answers: std::mem::take(&mut s.answers),
                peak_rss_kib,
            })
        }
    }
}

/// Serves the Runtime API on `listener` until aborted.
async fn accept(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<State>>,
    started: Instant,
    finished: Arc<tokio::sync::Notify>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (state, finished) = (state.clone(), finished.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                serve(state.clone(), started, finished.clone(), req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Lambda runtime client in Python: polls for events, answers each with the event it got
    /// (its request id in it), and holds 64 MiB while it handles the second.
    const CLIENT: &str = r#"
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
held = None
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["lambda-runtime-aws-request-id"]
        event = json.load(r)
    if event.get("n") == 2:
        held = bytearray(64 * 1024 * 1024)
        for i in range(0, len(held), 4096):
            held[i] = 1
    if event.get("fail"):
        path, body = "/error", {"errorType": "Boom", "errorMessage": "asked to"}
    else:
        path, body = "/response", {"got": event, "request": rid}
    req = urllib.request.Request(api + rid + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req).read()
"#;

    /// The client as an executable (a `#!` script naming this machine's python3).
    fn client() -> Option<std::path::PathBuf> {
        let python = std::env::var("PATH").ok()?.split(':').find_map(|d| {
            let p = Path::new(d).join("python3");
            p.exists().then_some(p)
        })?;
        let dir = std::env::temp_dir().join(format!("ir-runtime-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let script = dir.join("bootstrap");
        std::fs::write(&script, format!("#!{}\n{CLIENT}", python.display())).ok()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).ok()?;
        Some(script)
    }

    #[tokio::test]
    async fn one_process_gets_the_events_one_at_a_time_in_order_and_its_peak_memory_is_read() {
        let Some(client) = client() else {
            panic!("python3 is needed on PATH for this test");
        };
        let events: Vec<Value> = vec![
            serde_json::json!({"n": 1}),
            serde_json::json!({"n": 2}),
            serde_json::json!({"n": 3, "fail": true}),
        ];
        let w = warm(&client, &[], &events, Duration::from_secs(60))
            .await
            .expect("the client answers");
        assert_eq!(w.answers.len(), 3);
        for (i, (_, answer)) in w.answers.iter().take(2).enumerate() {
            let answer = answer.as_ref().expect("a response");
            assert_eq!(answer["got"], events[i]);
            assert_eq!(answer["request"], request_id(i).as_str());
        }
        let error = w.answers[2].1.as_ref().expect_err("a function error");
        assert!(error.contains("Boom"), "{error}");
        // The 64 MiB held while handling the second event is in the process's peak.
        assert!(w.peak_rss_kib > 64 * 1024, "{} KiB", w.peak_rss_kib);

        let cold = cold_start(&client, &[], &events[0], Duration::from_secs(60))
            .await
            .expect("cold start");
        assert!(cold.first_response >= cold.init);
        assert!(
            cold.peak_rss_kib > 0 && cold.peak_rss_kib < 64 * 1024,
            "{} KiB",
            cold.peak_rss_kib
        );
    }

    #[tokio::test]
    async fn no_event_is_an_error_not_a_wait() {
        let err = warm(Path::new("/bin/true"), &[], &[], Duration::from_secs(60)).await;
        assert!(err.is_err());
    }
}
