//! A local Lambda Invoke API that runs the real Rust handlers in-process, so moto's Step
//! Functions can execute the real state machine: `tests/moto_launcher.py` points Step Functions'
//! Lambda tasks at [`InvokeServer::endpoint`] (env `IR_LAMBDA_ENDPOINT`).
//!
//! `POST /2015-03-31/functions/<name or ARN>/invocations` with the payload as body answers like
//! Lambda: 200 with the handler's output, or 200 with `X-Amz-Function-Error: Unhandled` and
//! `{"errorType", "errorMessage"}` when the handler fails (what a `Catch` matches on).
//!
//! Each function runs at most its Lambda timeout (Terraform's `lambda_timeout_seconds`, or
//! [`InvokeServer::set_timeout`]): past it the handler is dropped where it stands, as Lambda stops
//! a sandbox, and the answer is Lambda's `Sandbox.Timedout` function error, which the state
//! machine retries. Without it a handler slowed by a loaded emulator ran on until moto's client
//! gave up, which Step Functions then reported as an unretried `States.Runtime`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use lambda_runtime::Diagnostic;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

pub type Handler =
    Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, Diagnostic>> + Send + Sync>;

/// Wraps a typed handler the way `lambda_runtime` does: the payload is deserialised into `T`
/// (a failure is an error), the output serialised.
pub fn handler<T, O, E, F, Fut>(f: F) -> Handler
where
    T: DeserializeOwned + Send + 'static,
    O: Serialize,
    E: Into<Diagnostic>,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O, E>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |payload: Value| {
        let f = f.clone();
        Box::pin(async move {
            let input: T = serde_json::from_value(payload).map_err(|e| Diagnostic {
                error_type: "Runtime.UnmarshalError".into(),
                error_message: e.to_string(),
            })?;
            let out = f(input).await.map_err(Into::into)?;
            serde_json::to_value(out).map_err(|e| Diagnostic {
                error_type: "Runtime.MarshalError".into(),
                error_message: e.to_string(),
            })
        })
    })
}

/// One invocation, as recorded.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub payload: Value,
    /// The handler's output (`None` when it failed).
    pub output: Option<Value>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Handler time, from the request arriving to the response being ready.
    pub elapsed: std::time::Duration,
}

/// Lambda's largest function timeout, for a function Terraform does not deploy.
const MAX_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Clone, Default)]
struct Shared {
    handlers: Arc<RwLock<HashMap<String, (Handler, Duration)>>>,
    calls: Arc<Mutex<Vec<Invocation>>>,
}

pub struct InvokeServer {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InvokeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `ir-triage` from `…:function:ir-triage`, `…:function:ir-triage:$LATEST` or a plain name.
pub fn function_name(path_segment: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path_segment)
        .decode_utf8_lossy()
        .into_owned();
    match decoded.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_string(),
        None => decoded,
    }
}

impl InvokeServer {
    /// Binds a free loopback port and serves (handlers can be registered afterwards).
    pub async fn start() -> std::io::Result<InvokeServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared::default();
        let state = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| serve(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(InvokeServer { addr, shared, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `name` with `handler`, stopped after the function's Terraform timeout.
    pub fn register(&self, name: &str, handler: Handler) {
        let timeout = crate::fixtures::lambda_timeouts()
            .get(name)
            .map_or(MAX_TIMEOUT, |s| Duration::from_secs(*s));
        if let Ok(mut h) = self.shared.handlers.write() {
            h.insert(name.to_string(), (handler, timeout));
        }
    }

    /// Stops `name`'s handler after `timeout` instead (a registered function).
    pub fn set_timeout(&self, name: &str, timeout: Duration) {
        if let Ok(mut h) = self.shared.handlers.write() {
            if let Some(entry) = h.get_mut(name) {
                entry.1 = timeout;
            }
        }
    }

    /// Every invocation so far, in order.
    pub fn calls(&self) -> Vec<Invocation> {
        self.shared
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }
}

async fn serve(
    state: Shared,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reply = |status: u16, error: Option<&str>, body: Value| {
        let mut b = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(e) = error {
            b = b.header("x-amz-function-error", e);
        }
        Ok(b.body(Full::new(Bytes::from(body.to_string())))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
    };
    let ["2015-03-31", "functions", name, "invocations"] = segments.as_slice() else {
        return reply(404, None, json!({"message": format!("no route {path}")}));
    };
    let function = function_name(name);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(400, None, json!({"message": e.to_string()})),
    };
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let handler = state
        .handlers
        .read()
        .ok()
        .and_then(|h| h.get(&function).cloned());
    let Some((handler, timeout)) = handler else {
        return reply(
            404,
            None,
            json!({"Type": "User", "message": format!("Function not found: {function}")}),
        );
    };
    let started_at = chrono::Utc::now();
    let clock = std::time::Instant::now();
    // A step that records an AWS call its function does not declare (and so its role would not
    // grant) fails the invocation, as AccessDenied would in AWS.
    let result = run_within(timeout, handler(payload.clone()))
        .await
        .and_then(|out| {
            let known = crate::permissions::declared().contains_key(function.as_str());
            let undeclared = crate::permissions::undeclared_calls(&function, &out);
            if known && !undeclared.is_empty() {
                return Err(Diagnostic {
                    error_type: "UndeclaredApiCall".into(),
                    error_message: format!("{function} called {undeclared:?} without declaring it"),
                });
            }
            Ok(out)
        });
    let elapsed = clock.elapsed();
    if let Ok(mut calls) = state.calls.lock() {
        calls.push(Invocation {
            function: function.clone(),
            payload,
            output: result.as_ref().ok().cloned(),
            error_type: result.as_ref().err().map(|d| d.error_type.clone()),
            error_message: result.as_ref().err().map(|d| d.error_message.clone()),
            started_at,
            elapsed,
        });
    }
    match result {
        Ok(out) => reply(200, None, out),
        Err(d) => reply(
            200,
            Some("Unhandled"),
            json!({"errorType": d.error_type, "errorMessage": d.error_message}),
        ),
    }
}

/// A fresh id shaped like Lambda's request ids (a UUID).
fn request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let secs = chrono::Utc::now().timestamp() as u32;
    format!("{secs:08x}-0000-4000-8000-{n:012x}")
}

/// The handler's answer, or Lambda's timeout error once `timeout` has passed (the handler is
/// dropped at its next await, as a stopped sandbox runs no further).
async fn run_within(
    timeout: Duration,
    run: BoxFuture<'static, Result<Value, Diagnostic>>,
) -> Result<Value, Diagnostic> {
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| {
            Err(Diagnostic {
                error_type: "Sandbox.Timedout".into(),
                error_message: format!(
                    "RequestId: {} Error: Task timed out after {:.2} seconds",
                    request_id(),
                    timeout.as_secs_f64()
                ),
            })
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_from_arns() {
        assert_eq!(
            super::function_name(
                "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Air-triage"
            ),
            "ir-triage"
        );
        assert_eq!(
            super::function_name("arn:aws:lambda:us-east-1:1:function:ir-notify:$LATEST"),
            "ir-notify"
        );
        assert_eq!(super::function_name("ir-approve"), "ir-approve");
    }

    /// A handler past its timeout is stopped and answered as Lambda answers a timed-out
    /// sandbox; one within it answers normally.
    #[tokio::test]
    async fn a_handler_past_its_timeout_is_stopped_with_sandbox_timedout() {
        let server = super::InvokeServer::start().await.expect("server");
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = finished.clone();
        server.register(
            "ir-slow",
            super::handler(move |delay_ms: u64| {
                let flag = flag.clone();
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok::<_, lambda_runtime::Error>(serde_json::json!({"done": delay_ms}))
                }
            }),
        );
        server.set_timeout("ir-slow", std::time::Duration::from_millis(200));
        let http = reqwest::Client::new();
        let url = format!(
            "{}/2015-03-31/functions/ir-slow/invocations",
            server.endpoint()
        );
        let invoke = |delay: u64| http.post(&url).body(delay.to_string()).send();

        let late = invoke(2_000).await.expect("answered");
        assert_eq!(late.status(), 200);
        assert_eq!(
            late.headers()
                .get("x-amz-function-error")
                .map(|v| v.as_bytes()),
            Some(&b"Unhandled"[..])
        );
        let body: serde_json::Value = late.json().await.expect("json");
        assert_eq!(body["errorType"], "Sandbox.Timedout");
        let message = body["errorMessage"].as_str().unwrap_or_default();
        let (id, rest) = message
            .strip_prefix("RequestId: ")
            .and_then(|m| m.split_once(' '))
            .unwrap_or_default();
        assert_eq!(id.len(), 36, "{message}");
        assert_eq!(rest, "Error: Task timed out after 0.20 seconds");
        tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
        assert!(
            !finished.load(std::sync::atomic::Ordering::SeqCst),
            "the stopped handler ran on"
        );

        let quick = invoke(10).await.expect("answered");
        assert!(quick.headers().get("x-amz-function-error").is_none());
        let body: serde_json::Value = quick.json().await.expect("json");
        assert_eq!(body["done"], 10);
    }

    /// The deployed functions get their Terraform timeout.
    #[tokio::test]
    async fn registered_functions_get_their_terraform_timeout() {
        let server = super::InvokeServer::start().await.expect("server");
        server.register(
            "ir-triage",
            super::handler(|v: serde_json::Value| async move { Ok::<_, lambda_runtime::Error>(v) }),
        );
        let handlers = server.shared.handlers.read().expect("lock");
        assert_eq!(handlers["ir-triage"].1, std::time::Duration::from_secs(60));
    }
}
