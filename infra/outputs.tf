output "state_machine_arn" {
  value = aws_sfn_state_machine.response.arn
}

output "approval_webhook_url" {
  description = "Register as a Jira admin webhook (with the secret in var.jira_webhook_secret) on issue updates."
  value       = aws_lambda_function_url.approve.function_url
}

output "evidence_bucket" {
  value = aws_s3_bucket.evidence.bucket
}

output "incidents_table" {
  value = aws_dynamodb_table.incidents.name
}

output "approvals_table" {
  value = aws_dynamodb_table.approvals.name
}

output "kill_switch_parameter" {
  value = aws_ssm_parameter.kill_switch.name
}

output "alerts_topic_arn" {
  value = aws_sns_topic.alerts.arn
}

output "function_arns" {
  value = { for k, f in aws_lambda_function.function : k => f.arn }
}
