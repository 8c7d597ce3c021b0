//! Starting an execution of the response's own state machine exactly once per name.

use aws_sdk_sfn::error::ProvideErrorMetadata;

use crate::audit::Outcome;
use crate::permissions::Permission;

/// [`start_once`]: executions of the response's own state machine only.
pub const START_EXECUTION: Permission = Permission::new(
    "states:StartExecution",
    crate::permissions::resource::STATE_MACHINE,
);

/// Starts execution `name` of `state_machine_arn` with `input`. An execution of that name that
/// already exists (a redelivery, a retried invocation: Step Functions keeps names for 90 days)
/// is left to do the work: its ARN, `AlreadyDone`. Otherwise the new execution's ARN,
/// `Succeeded`; or the error, `code: message`.
pub async fn start_once(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: String,
) -> Result<(String, Outcome), String> {
    match sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input)
        .send()
        .await
    {
        Ok(out) => Ok((out.execution_arn, Outcome::Succeeded)),
        Err(e) if e.code() == Some("ExecutionAlreadyExists") => Ok((
            format!(
                "{}:{name}",
                state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
            ),
            Outcome::AlreadyDone,
        )),
        Err(e) => Err(match e.message() {
            Some(m) => format!("{}: {m}", e.code().unwrap_or("error")),
            None => aws_sdk_sfn::error::DisplayErrorContext(e).to_string(),
        }),
    }
}
