//! Test harness: a real moto server (local AWS emulator) per test, and real aws-sdk clients
//! pointed at it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ir_tests::HarnessError> {
//! let moto = ir_tests::MotoServer::start()?;          // free loopback port, waits until ready
//! let sdk = moto.sdk_config().await;                   // static test credentials, us-east-1
//! let ddb = aws_sdk_dynamodb::Client::new(&sdk);       // any service: same endpoint
//! let s3 = moto.s3_client(&sdk);                       // S3 needs path-style addressing
//! # let _ = (ddb, s3); Ok(()) }
//! // dropping `moto` kills the server
//! ```
//!
//! The server is `python3 tests/moto_launcher.py` (moto's own server plus fixes for moto bugs
//! that misreport AWS state); set `MOTO_SERVER` to use another launch command. Extra environment for
//! the server (e.g. `MOTO_IAM_LOAD_MANAGED_POLICIES=true`) goes through [`MotoServer::start_with_env`].
//! The server's log is written to `target/moto-logs/moto-<port>.log`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

pub mod accounts;
pub mod binaries;
pub mod burst;
pub mod eventbridge;
pub mod faults;
pub mod fixtures;
pub mod invoke;
pub mod notify;
pub mod payloads;
pub mod permissions;
pub mod pipeline;
pub mod replay;
pub mod review_gate;
pub mod runtime_api;
pub mod shared;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "could not start `{launcher}` ({source}); install it with: pip install 'moto[server]'"
    )]
    Launch {
        launcher: String,
        source: std::io::Error,
    },
    #[error("moto server on port {port} did not become ready within {waited:?}; see {log}")]
    NotReady {
        port: u16,
        waited: Duration,
        log: String,
    },
    #[error("moto server exited early with {status}; see {log}")]
    Exited { status: String, log: String },
    #[error("HTTP to moto failed: {0}")]
    Http(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A running moto server. Killed on drop.
pub struct MotoServer {
    child: Child,
    port: u16,
    endpoint: String,
    log: PathBuf,
    /// What [`MotoServer::sdk_config`] signs with: the test credentials, or the harness's
    /// administrator once IAM is enforced.
    credentials: Credentials,
}

/// Requests moto serves without checking IAM when it enforces IAM: the four that create the
/// harness's administrator (user, managed policy, its attachment, access key), in each account.
const UNAUTHENTICATED_SETUP_CALLS: usize = 4;

/// The harness administrators' policy: everything.
pub(crate) const ADMINISTRATOR_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The command that starts moto: `$MOTO_SERVER` (split on spaces), else
/// `python3 tests/moto_launcher.py`, which runs moto's server with fixes for moto bugs that
/// misreport AWS state (see that file).
fn launcher() -> Vec<String> {
    if let Ok(cmd) = std::env::var("MOTO_SERVER") {
        let parts: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        if !parts.is_empty() {
            return parts;
        }
    }
    let script = workspace_root().join("tests").join("moto_launcher.py");
    vec!["python3".into(), script.display().to_string()]
}

fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Result<MotoServer, HarnessError> {
        MotoServer::start_with_env(&[])
    }

    /// As [`MotoServer::start`], with extra environment for the server process.
    pub fn start_with_env(env: &[(&str, &str)]) -> Result<MotoServer, HarnessError> {
        // The port is free when chosen but could be taken before moto binds it: retry.
        let mut last = None;
        for _ in 0..3 {
            match MotoServer::try_start(env) {
                Ok(s) => return Ok(s),
                Err(e @ HarnessError::Launch { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::Http("moto did not start".into())))
    }

    fn try_start(env: &[(&str, &str)]) -> Result<MotoServer, HarnessError> {
        let launcher = launcher();
        let port = free_port()?;
        let log_dir = workspace_root().join("target").join("moto-logs");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(format!("moto-{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&launcher[0]);
        cmd.args(&launcher[1..])
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|source| HarnessError::Launch {
            launcher: launcher.join(" "),
            source,
        })?;
        let mut server = MotoServer {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            credentials: Credentials::new("testing", "testing", None, None, "moto"),
        };
        server.wait_ready(Duration::from_secs(30))?;
        Ok(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Err(HarnessError::Exited {
                    status: status.to_string(),
                    log: self.log.display().to_string(),
                });
            }
            if let Ok((200, _)) = self.http("GET", "/moto-api/data.json", None) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HarnessError::NotReady {
            port: self.port,
            waited: limit,
            log: self.log.display().to_string(),
        })
    }

    /// As [`MotoServer::start_with_env`], with IAM enforced: every request after the harness's
    /// administrator is created is checked against the caller's identity policies, as AWS does
    /// (moto's `INITIAL_NO_AUTH_ACTION_COUNT`). [`MotoServer::sdk_config`] then signs as that
    /// administrator; [`MotoServer::principal`] makes a principal with exactly a given policy.
    pub async fn start_enforcing_iam(env: &[(&str, &str)]) -> Result<MotoServer, HarnessError> {
        MotoServer::start_enforcing_iam_in(env, 1).await
    }

    /// [`MotoServer::start_enforcing_iam`], leaving room for `accounts - 1` more administrators
    /// ([`accounts::member_administrator`]).
    pub(crate) async fn start_enforcing_iam_in(
        env: &[(&str, &str)],
        accounts: usize,
    ) -> Result<MotoServer, HarnessError> {
        let mut env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        env.push((
            "INITIAL_NO_AUTH_ACTION_COUNT",
            (UNAUTHENTICATED_SETUP_CALLS * accounts).to_string(),
        ));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut server = MotoServer::start_with_env(&env)?;
        let admin = server
            .principal("harness-admin", ADMINISTRATOR_POLICY)
            .await?;
        server.credentials = admin;
        Ok(server)
    }

    /// Creates the IAM user `name` whose only permissions are `policy` (a JSON policy document)
    /// and returns an access key of it.
    pub async fn principal(&self, name: &str, policy: &str) -> Result<Credentials, HarnessError> {
        let iam = aws_sdk_iam::Client::new(&self.sdk_config().await);
        create_principal(&iam, name, policy).await
    }

    /// The credentials [`MotoServer::sdk_config`] uses.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration for this server: endpoint, us-east-1, static test credentials, and the
    /// project's retry policy.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_as(self.credentials.clone()).await
    }

    /// [`MotoServer::sdk_config`] signing as `credentials` (e.g. a function's own principal).
    pub async fn sdk_config_as(&self, credentials: Credentials) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials)
            .retry_config(ir_core::aws::retry_config())
            .load()
            .await
    }

    /// An S3 client with path-style addressing (virtual-host style would try `bucket.127.0.0.1`).
    pub fn s3_client(&self, sdk: &SdkConfig) -> aws_sdk_s3::Client {
        ir_core::aws_client!(aws_sdk_s3, sdk, |b| b.force_path_style(true))
    }

    /// Wipes all emulator state.
    pub fn reset(&self) -> Result<(), HarnessError> {
        match self.http("POST", "/moto-api/reset", Some("")) {
            Ok((200, _)) => Ok(()),
            Ok((code, body)) => Err(HarnessError::Http(format!("reset returned {code}: {body}"))),
            Err(e) => Err(e),
        }
    }

    /// Sets moto's runtime configuration (`POST /moto-api/config`), e.g.
    /// `{"stepfunctions":{"execute_state_machine":true}}`.
    pub fn configure(&self, json: &str) -> Result<(), HarnessError> {
        match self.http("POST", "/moto-api/config", Some(json)) {
            Ok((200 | 201, _)) => Ok(()),
            Ok((code, body)) => Err(HarnessError::Http(format!(
                "config returned {code}: {body}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// `GET path` on the server's control APIs (`/moto-api/…`, strict mode's `/strict-api/…`):
    /// status and body.
    pub fn get(&self, path: &str) -> Result<(u16, String), HarnessError> {
        self.http("GET", path, None)
    }

    /// A minimal HTTP/1.1 exchange with the server's control API.
    fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), HarnessError> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(req.as_bytes())?;
        let mut resp = String::new();
        stream.read_to_string(&mut resp)?;
        let code = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                HarnessError::Http(format!(
                    "no status line in `{}`",
                    resp.lines().next().unwrap_or("")
                ))
            })?;
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates, through `iam`, the IAM user `name` whose only permissions are `policy` and returns
/// an access key of it.
pub(crate) async fn create_principal(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: &str,
) -> Result<Credentials, HarnessError> {
    let fail = |e: String| HarnessError::Http(format!("creating principal {name}: {e}"));
    let err = |e| fail(aws_sdk_iam::error::DisplayErrorContext(e).to_string());
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .map_err(err)?;
    // A managed policy (6,144 characters), not an inline one: a user's inline policies share
    // 2,048 characters, which the larger functions' declarations pass (their roles' inline
    // policies in Terraform may hold 10,240).
    let created = iam
        .create_policy()
        .policy_name(format!("{name}-exactly-what-it-declares"))
        .policy_document(policy)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_iam::error::DisplayErrorContext(e).to_string()))?;
    let arn = created
        .policy()
        .and_then(|p| p.arn())
        .ok_or_else(|| fail("no policy ARN returned".into()))?;
    iam.attach_user_policy()
        .user_name(name)
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_iam::error::DisplayErrorContext(e).to_string()))?;
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_iam::error::DisplayErrorContext(e).to_string()))?;
    let key = key
        .access_key()
        .ok_or_else(|| fail("no access key returned".into()))?;
    Ok(Credentials::new(
        key.access_key_id(),
        key.secret_access_key(),
        None,
        None,
        "moto-principal",
    ))
}
