//! Step Functions: resume the execution paused at the review gate.

/// Why a resume call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeError {
    /// Step Functions no longer knows the token (the gate timed out, or it was answered).
    pub gone: bool,
    pub message: String,
}

fn resume_error<E, R>(e: aws_sdk_sfn::error::SdkError<E, R>, gone: fn(&E) -> bool) -> ResumeError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ResumeError {
        gone: e.as_service_error().is_some_and(gone),
        message: aws_sdk_sfn::error::DisplayErrorContext(e).to_string(),
    }
}

/// The IAM action the resume makes.
pub fn action(approved: bool) -> &'static str {
    if approved {
        "states:SendTaskSuccess"
    } else {
        "states:SendTaskFailure"
    }
}

/// `SendTaskSuccess` with the review as output (approved), or `SendTaskFailure` with error
/// [`crate::REJECTED_ERROR`] and the review as cause (rejected: the release path).
pub async fn resume(
    sfn: &aws_sdk_sfn::Client,
    token: &str,
    approved: bool,
    review_json: &str,
) -> Result<(), ResumeError> {
    if approved {
        sfn.send_task_success()
            .task_token(token)
            .output(review_json)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                resume_error(e, |se| {
                    se.is_task_timed_out() || se.is_invalid_token() || se.is_task_does_not_exist()
                })
            })
    } else {
        sfn.send_task_failure()
            .task_token(token)
            .error(crate::REJECTED_ERROR)
            .cause(review_json)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                resume_error(e, |se| {
                    se.is_task_timed_out() || se.is_invalid_token() || se.is_task_does_not_exist()
                })
            })
    }
}
