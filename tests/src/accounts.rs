//! Several AWS accounts on one emulator, as in an AWS Organization: moto keeps one backend per
//! account id, and a request acts in the account its access key belongs to (what is created
//! with one account's credentials is invisible to another's).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ir_tests::HarnessError> {
//! let (moto, members) = ir_tests::accounts::start(&["111111111111"]).await?;
//! let in_member = moto.sdk_config_as(members[0].clone()).await; // acts in 111111111111
//! # let _ = in_member; Ok(()) }
//! ```

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::{HarnessError, MotoServer, ADMINISTRATOR_POLICY};

/// The account moto acts in by default (the harness's administrator lives there).
pub const ADMINISTRATOR_ACCOUNT: &str = "123456789012";

/// Sends every request to one account's backend (`x-moto-account-id`): used only for the
/// unauthenticated setup calls that create a member account's administrator.
#[derive(Debug)]
struct InAccount(String);

impl Intercept for InAccount {
    fn name(&self) -> &'static str {
        "InAccount"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// An emulator enforcing IAM (as [`MotoServer::start_enforcing_iam`]) with an administrator in
/// each of `members` too; returns its credentials per member, in order.
pub async fn start(members: &[&str]) -> Result<(MotoServer, Vec<Credentials>), HarnessError> {
    start_with_env(&[], members).await
}

/// [`start`] with extra environment for the server.
pub async fn start_with_env(
    env: &[(&str, &str)],
    members: &[&str],
) -> Result<(MotoServer, Vec<Credentials>), HarnessError> {
    let moto = MotoServer::start_enforcing_iam_in(env, members.len() + 1).await?;
    let mut credentials = Vec::new();
    for account in members {
        credentials.push(member_administrator(&moto, account).await?);
    }
    Ok((moto, credentials))
}

/// Creates `harness-admin` (allowed everything) in `account` with the setup calls left
/// unauthenticated, and returns its access key.
async fn member_administrator(
    moto: &MotoServer,
    account: &str,
) -> Result<Credentials, HarnessError> {
    let sdk = moto.sdk_config().await;
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk)
            .interceptor(InAccount(account.to_string()))
            .build(),
    );
    crate::create_principal(&iam, "harness-admin", ADMINISTRATOR_POLICY).await
}
