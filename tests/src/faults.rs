//! Faults injected between a function and the emulator, below the SDK (an HTTP client wrapper on
//! the `SdkConfig`, so every client built from it is covered: EC2, IAM, DynamoDB, SSM, S3…).
//!
//! - [`Crash`]: the function dies right after its n-th mutating AWS call has been applied, as a
//!   Lambda killed by its timeout or by running out of memory would: the emulator has applied
//!   the call, and nothing the function would send after it ever arrives.
//! - [`Storm`]: every call to one service is answered with that service's throttling error or a
//!   503, before it reaches the emulator, for the first `failures` attempts of each call (or all
//!   of them): the SDK's retries absorb a short storm; a long one reaches the function.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// One AWS call as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The SigV4 signing name (`ec2`, `iam`, `dynamodb`, `s3`…).
    pub service: String,
    /// The operation (`ModifyNetworkInterfaceAttribute`); for S3's REST calls the method and the
    /// sub-resource (`PUT ?policy`).
    pub operation: String,
}

/// Operations whose name says they only read.
const READ_PREFIXES: &[&str] = &[
    "Describe",
    "Get",
    "List",
    "Head",
    "Query",
    "Scan",
    "BatchGet",
    "AssumeRole",
    "Lookup",
];

impl Call {
    pub fn of(request: &HttpRequest) -> Call {
        let service = request
            .headers()
            .get("authorization")
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|scope| scope.split('/').nth(3))
            .unwrap_or("unknown")
            .to_string();
        let operation = if let Some(target) = request.headers().get("x-amz-target") {
            target.rsplit('.').next().unwrap_or(target).to_string()
        } else if let Some(action) = query_action(request) {
            action
        } else {
            let sub = request
                .uri()
                .split_once('?')
                .map(|(_, q)| q.split(['=', '&']).next().unwrap_or_default())
                .unwrap_or_default();
            format!("{} ?{sub}", request.method())
        };
        Call { service, operation }
    }

    /// Whether the call can change state.
    pub fn mutating(&self) -> bool {
        if self.service == "s3" {
            return !(self.operation.starts_with("GET") || self.operation.starts_with("HEAD"));
        }
        !READ_PREFIXES.iter().any(|p| self.operation.starts_with(p))
    }

    pub fn name(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }
}

/// `Action=` of a query-protocol body (EC2, IAM, STS, Auto Scaling, ELB).
fn query_action(request: &HttpRequest) -> Option<String> {
    let body = std::str::from_utf8(request.body().bytes()?).ok()?;
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
struct Tally {
    applied: Vec<String>,
    services: std::collections::BTreeSet<String>,
    crashed: bool,
}

/// Kills the function right after its `after`-th applied mutating call (`None`: never, only
/// counts). Wrap an `SdkConfig` with [`Crash::config`].
#[derive(Debug, Clone)]
pub struct Crash {
    after: Option<usize>,
    tally: Arc<Mutex<Tally>>,
    inner: SharedHttpClient,
}

impl Crash {
    pub fn new(sdk: &aws_config::SdkConfig, after: Option<usize>) -> Crash {
        Crash {
            after,
            tally: Arc::default(),
            inner: base_client(sdk),
        }
    }

    /// `sdk` with its HTTP client behind this fault.
    pub fn config(&self, sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        sdk.to_builder()
            .http_client(SharedHttpClient::new(self.clone()))
            .build()
    }

    /// The mutating calls the emulator applied (answered 2xx), in order.
    pub fn applied(&self) -> Vec<String> {
        lock(&self.tally).applied.clone()
    }

    /// The services the function called (any call, answered or not).
    pub fn services(&self) -> Vec<String> {
        lock(&self.tally).services.iter().cloned().collect()
    }

    /// Whether the function was killed.
    pub fn crashed(&self) -> bool {
        lock(&self.tally).crashed
    }
}

fn base_client(sdk: &aws_config::SdkConfig) -> SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    // The SDK's own default (the one its clients build when the config names none).
    sdk.http_client().unwrap_or_else(|| {
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build_https()
    })
}

impl HttpClient for Crash {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CrashConnector {
            fault: self.clone(),
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct CrashConnector {
    fault: Crash,
    inner: SharedHttpConnector,
}

impl HttpConnector for CrashConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = Call::of(&request);
        let mut tally = lock(&self.fault.tally);
        tally.services.insert(call.service.clone());
        if tally.crashed {
            let killed = format!("injected crash: the function died before {}", call.name());
            // `other` without a kind: the SDK does not retry it (a dead function sends nothing).
            return HttpConnectorFuture::ready(Err(ConnectorError::other(killed.into(), None)));
        }
        drop(tally);
        let pending = self.inner.call(request);
        let fault = self.fault.clone();
        HttpConnectorFuture::new(async move {
            let response = pending.await?;
            if call.mutating() && response.status().is_success() {
                let mut tally = lock(&fault.tally);
                tally.applied.push(call.name());
                if Some(tally.applied.len()) == fault.after {
                    tally.crashed = true;
                }
            }
            Ok(response)
        })
    }
}

/// What a storm answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weather {
    /// The service's own throttling error (EC2 `RequestLimitExceeded`, IAM/STS `Throttling`,
    /// DynamoDB/SSM `ThrottlingException`, S3 `SlowDown`).
    Throttling,
    /// A bare 503 Service Unavailable.
    Unavailable,
}

/// Answers calls to `service` with `weather` before they reach the emulator: the first
/// `failures` attempts of every call (`usize::MAX`: all of them).
#[derive(Debug, Clone)]
pub struct Storm {
    service: String,
    weather: Weather,
    failures: usize,
    refused: Arc<AtomicUsize>,
    attempts: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    inner: SharedHttpClient,
}

impl Storm {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        service: &str,
        weather: Weather,
        failures: usize,
    ) -> Storm {
        Storm {
            service: service.into(),
            weather,
            failures,
            refused: Arc::default(),
            attempts: Arc::default(),
            inner: base_client(sdk),
        }
    }

    pub fn config(&self, sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        sdk.to_builder()
            .http_client(SharedHttpClient::new(self.clone()))
            .build()
    }

    /// How many attempts the storm answered.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The error response `service` gives for `weather`.
    fn answer(&self) -> HttpResponse {
        let (status, body) = match (self.weather, self.service.as_str()) {
            (Weather::Unavailable, _) => (503, String::new()),
            (Weather::Throttling, "ec2") => (
                503,
                "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit \
                 exceeded.</Message></Error></Errors><RequestID>storm</RequestID></Response>"
                    .to_string(),
            ),
            (Weather::Throttling, "s3") => (
                503,
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>\
                 </Error>"
                    .to_string(),
            ),
            (Weather::Throttling, "dynamodb" | "ssm") => (
                400,
                r#"{"__type":"com.amazonaws.coral.availability#ThrottlingException","message":"Rate exceeded"}"#
                    .to_string(),
            ),
            (Weather::Throttling, "iam" | "sts" | "elasticloadbalancing" | "autoscaling") => (
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate \
                 exceeded</Message></Error><RequestId>storm</RequestId></ErrorResponse>"
                    .to_string(),
            ),
            (Weather::Throttling, other) => {
                panic!("no throttling answer for {other}: add its protocol's error shape")
            }
        };
        let status = StatusCode::try_from(status).expect("a valid HTTP status");
        let mut response = HttpResponse::new(status, SdkBody::from(body));
        let content_type = match self.service.as_str() {
            "dynamodb" => "application/x-amz-json-1.0",
            "ssm" => "application/x-amz-json-1.1",
            _ => "text/xml",
        };
        response.headers_mut().insert("content-type", content_type);
        response
    }
}

impl HttpClient for Storm {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(StormConnector {
            storm: self.clone(),
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct StormConnector {
    storm: Storm,
    inner: SharedHttpConnector,
}

impl HttpConnector for StormConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = Call::of(&request);
        if call.service == self.storm.service {
            // Attempts of one call carry the same invocation id.
            let id = request
                .headers()
                .get("amz-sdk-invocation-id")
                .unwrap_or_default()
                .to_string();
            let mut attempts = lock(&self.storm.attempts);
            let n = attempts.entry(id).or_default();
            *n += 1;
            if *n <= self.storm.failures {
                self.storm.refused.fetch_add(1, Ordering::SeqCst);
                return HttpConnectorFuture::ready(Ok(self.storm.answer()));
            }
        }
        self.inner.call(request)
    }
}
