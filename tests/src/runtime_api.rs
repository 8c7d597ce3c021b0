//! A one-shot Lambda Runtime API, to measure a function binary's cold start the way Lambda runs
//! it: the process is started with `AWS_LAMBDA_RUNTIME_API` pointing here, `lambda_runtime`
//! initialises (config, SDK clients) and asks for the next event (`GET …/invocation/next`), the
//! handler runs and posts its response. [`cold_start`] times both from the process launch.

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
}

#[derive(Default)]
struct State {
    event: Vec<u8>,
    served: bool,
    init: Option<Duration>,
    done: Option<(Duration, Result<Value, String>)>,
}

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

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
            if s.served {
                None
            } else {
                s.served = true;
                s.init = Some(started.elapsed());
                Some(s.event.clone())
            }
        };
        let Some(event) = event else {
            // One event per process: the second poll waits until the process is killed.
            std::future::pending::<()>().await;
            return Ok(accepted());
        };
        let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", REQUEST_ID)
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
    let outcome = if path.ends_with("/response") {
        Some(serde_json::from_slice(&body).map_err(|e| e.to_string()))
    } else if path.ends_with("/error") {
        Some(Err(String::from_utf8_lossy(&body).into_owned()))
    } else {
        None
    };
    if let (Some(outcome), Ok(mut s)) = (outcome, state.lock()) {
        if s.done.is_none() {
            s.done = Some((started.elapsed(), outcome));
            finished.notify_one();
        }
    }
    Ok(accepted())
}

/// Launches `binary` with exactly `env` (plus the Runtime API variables), hands it `event`,
/// and returns the timings once it has answered. The process is killed afterwards.
pub async fn cold_start(
    binary: &Path,
    env: &[(String, String)],
    event: &Value,
    timeout: Duration,
) -> std::io::Result<ColdStart> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Mutex::new(State {
        event: serde_json::to_vec(event)?,
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
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let server = {
        let state = state.clone();
        let finished = finished.clone();
        tokio::spawn(async move {
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
        })
    };
    let waited = tokio::time::timeout(timeout, async {
        tokio::select! {
            _ = finished.notified() => Ok(()),
            status = child.wait() => Err(status),
        }
    })
    .await;
    let _ = child.kill().await;
    server.abort();
    let result = match waited {
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{} did not answer within {timeout:?}", binary.display()),
        )),
        Ok(Err(status)) => Err(std::io::Error::other(format!(
            "{} exited before answering: {status:?}",
            binary.display()
        ))),
        Ok(Ok(())) => {
            let s = state
                .lock()
                .map_err(|_| std::io::Error::other("state poisoned"))?;
            match (&s.init, &s.done) {
                (Some(init), Some((at, outcome))) => Ok(ColdStart {
                    init: *init,
                    first_response: *at,
                    outcome: outcome.clone(),
                }),
                _ => Err(std::io::Error::other("no event was served")),
            }
        }
    };
    result
}
