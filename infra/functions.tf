# --- Lambda functions (one role each, least privilege) ----------------------------------

# The ceiling every incident-response role lives under, whatever a policy attached to it later
# says: only the actions some function declares, and never a change to these roles themselves
# or to their boundary.
resource "aws_iam_policy" "boundary" {
  name        = "${local.p}-boundary"
  description = "Permissions boundary of the incident-response roles"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "OnlyDeclaredActions"
        Effect   = "Allow"
        Action   = sort(distinct(concat(local.logs_statement.Action, flatten([for fn, sts in local.permissions : [for st in sts : st.Action if st.Effect == "Allow"]]))))
        Resource = "*"
      },
      {
        Sid    = "NeverTheResponseRoles"
        Effect = "Deny"
        Action = ["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
          "iam:UpdateAssumeRolePolicy", "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary",
        "iam:TagRole", "iam:UntagRole", "iam:PassRole"]
        Resource = "arn:${local.partition}:iam::${local.account}:role/${local.p}-*"
      },
    ]
  })
}

resource "aws_iam_role" "function" {
  # The names alone (not local.functions): the evidence key's policy names a role, and the
  # functions' settings name the key.
  for_each             = toset(local.function_names)
  name                 = "${local.p}-${trimprefix(each.key, "ir-")}"
  permissions_boundary = aws_iam_policy.boundary.arn
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "exactly-what-${each.key}-calls"
  role     = aws_iam_role.function[each.key].id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat([local.logs_statement], each.value.statements)
  })
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${local.p}-${trimprefix(each.key, "ir-")}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "function" {
  for_each         = local.functions
  function_name    = "${local.p}-${trimprefix(each.key, "ir-")}"
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.lambda_zip_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/${each.key}/bootstrap.zip")
  memory_size      = 256
  timeout          = local.lambda_timeout_seconds[each.key]
  # An auth-NONE URL lets anyone invoke ir-approve (the HMAC is checked inside): capped, so
  # a flood cannot take the account's concurrency from the containment functions, which have
  # theirs reserved.
  reserved_concurrent_executions = lookup(var.reserved_concurrency, each.key, null) == null ? -1 : var.reserved_concurrency[each.key]

  environment {
    variables = each.value.env
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  depends_on = [aws_iam_role_policy.function]
}

# The Jira webhook endpoint. Authentication is the HMAC signature ir-approve verifies.
resource "aws_lambda_function_url" "approve" {
  function_name      = aws_lambda_function.function["ir-approve"].function_name
  authorization_type = "NONE"
}

# An auth-NONE function URL answers 403 to everyone until the function's resource policy lets
# the public invoke it through the URL: lambda:InvokeFunctionUrl (for auth type NONE) and, for
# URLs created since October 2025, lambda:InvokeFunction limited to calls made via the URL
# (Lambda developer guide, "Control access to Lambda function URLs").
resource "aws_lambda_permission" "approve_url" {
  statement_id           = "JiraWebhookViaFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.function["ir-approve"].function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "approve_invoke" {
  statement_id  = "JiraWebhookInvokeViaFunctionUrl"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["ir-approve"].function_name
  principal     = "*"
}

# --- state machine -----------------------------------------------------------------------

resource "aws_iam_role" "state_machine" {
  name = "${local.p}-state-machine"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "states.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "state_machine" {
  name = "invoke-the-response-functions"
  role = aws_iam_role.state_machine.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["lambda:InvokeFunction"]
        Resource = [for k, f in aws_lambda_function.function : f.arn if k != "ir-approve"]
      },
      {
        Effect = "Allow"
        Action = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]
        Resource = "*"
      },
    ]
  })
}

resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${local.p}-incident-response"
  retention_in_days = var.log_retention_days
}

resource "aws_sfn_state_machine" "response" {
  name     = local.state_machine_name
  role_arn = aws_iam_role.state_machine.arn
  definition = templatefile("${path.module}/../statemachine/incident-response.asl.json", {
    triage_function_arn         = aws_lambda_function.function["ir-triage"].arn
    notify_function_arn         = aws_lambda_function.function["ir-notify"].arn
    evidence_function_arn       = aws_lambda_function.function["ir-preserve-evidence"].arn
    isolate_ec2_function_arn    = aws_lambda_function.function["ir-isolate-ec2"].arn
    quarantine_iam_function_arn = aws_lambda_function.function["ir-quarantine-iam"].arn
    lockdown_s3_function_arn    = aws_lambda_function.function["ir-lockdown-s3"].arn
    review_timeout_seconds      = var.review_timeout_seconds
    # The review gate is Jira: without it the flow notifies and closes (ReviewGate? in the ASL).
    review_gate = var.jira_url != ""
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = false
    level                  = "ERROR"
  }

  depends_on = [aws_iam_role_policy.state_machine]

  lifecycle {
    precondition {
      condition     = (var.jira_url == "") == (var.jira_credentials_secret == "") && (var.jira_url == "") == (length(var.approvers) == 0)
      error_message = "The review gate needs jira_url, jira_credentials_secret and approvers together (with jira_project and jira_webhook_secret), or none of them (no review gate)."
    }
    precondition {
      condition     = !var.organization_response || var.member_external_id != ""
      error_message = "organization_response needs member_external_id (the same value as infra/member's external_id)."
    }
  }
}

# --- EventBridge: HIGH/CRITICAL GuardDuty and Security Hub findings, custom actions ----------

locals {
  # The patterns live in event-rules.json.tftpl so the local pipeline (tests, make demo) creates
  # exactly the same rules in the emulator.
  rules = { for name, rule in local.rule_templates : name => rule if !(name == "guardduty-policy-types" && length(var.guardduty_types_any_severity) == 0) }
  rule_templates = jsondecode(templatefile("${path.module}/event-rules.json.tftpl", {
    min_guardduty_severity  = var.min_guardduty_severity
    guardduty_type_prefixes = jsonencode([for t in var.guardduty_types_any_severity : { prefix = t }])
    trusted_product_arns    = jsonencode([for p in local.trusted_products : { suffix = ":product/${p}" }])
    # Only this deployment's own actions (created below; ids are unique in an account and
    # Region, so no one can create another action with these ids once they exist).
    custom_action_arns = jsonencode([for id, _ in local.custom_actions : { suffix = ":action/custom/${id}" }])
  }))

  # Security Hub custom actions: id → name (the name is what the policy's [[custom_actions]]
  # match) and description.
  # Ids are unique per account and Region: each deployment's start with its prefix (IR… for
  # the default "ir"), letters and digits only, at most 20 characters.
  action_id_prefix = substr(upper(replace(local.p, "/[^a-zA-Z0-9]/", "")), 0, 7)
  custom_actions = {
    "${local.action_id_prefix}Contain"     = { name = "IR-Contain", description = "Contain the affected resource now (analyst-initiated)" }
    "${local.action_id_prefix}Investigate" = { name = "IR-Investigate", description = "Open an incident: preserve evidence and notify, change nothing" }
  }
}

resource "aws_securityhub_action_target" "response" {
  for_each    = var.create_securityhub_actions ? local.custom_actions : {}
  identifier  = each.key
  name        = each.value.name
  description = each.value.description
}

resource "aws_iam_role" "events" {
  name = "${local.p}-events"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "events.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "events" {
  name = "start-the-response"
  role = aws_iam_role.events.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["states:StartExecution"], Resource = aws_sfn_state_machine.response.arn }]
  })
}

resource "aws_cloudwatch_event_rule" "finding" {
  for_each      = local.rules
  name          = "${local.p}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "finding" {
  for_each = local.rules
  rule     = aws_cloudwatch_event_rule.finding[each.key].name
  arn      = aws_sfn_state_machine.response.arn
  role_arn = aws_iam_role.events.arn
  # A finding EventBridge cannot deliver (StartExecution throttled or denied) is retried for a
  # day, then kept in the dead-letter queue instead of dropped; both raise an alarm.
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.undelivered.arn
  }
}

resource "aws_sqs_queue" "undelivered" {
  name                      = "${local.p}-undelivered-findings"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue_policy" "undelivered" {
  queue_url = aws_sqs_queue.undelivered.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeDeadLetters"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.undelivered.arn
      Condition = { ArnEquals = { "aws:SourceArn" = [for r in aws_cloudwatch_event_rule.finding : r.arn] } }
    }]
  })
}

# --- alarms: each to the SNS topic on the first occurrence ---------------------------------

locals {
  alarms = merge(
    {
      "incident-response-failed" = {
        description = "An incident response execution failed: contain manually and check the failure notification."
        namespace   = "AWS/States"
        metric      = "ExecutionsFailed"
        dimensions  = tomap({ StateMachineArn = aws_sfn_state_machine.response.arn })
        statistic   = "Sum"
      }
      "findings-undelivered" = {
        description = "A finding could not start the incident response: read it from the dead-letter queue and respond by hand."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = tomap({ QueueName = aws_sqs_queue.undelivered.name })
        statistic   = "Maximum"
      }
    },
    { for name, rule in aws_cloudwatch_event_rule.finding : "${name}-failed-invocations" => {
      description = "EventBridge could not start the incident response for a finding (rule ${name}); it is retried, then dead-lettered."
      namespace   = "AWS/Events"
      metric      = "FailedInvocations"
      dimensions  = tomap({ RuleName = rule.name })
      statistic   = "Sum"
    } },
  )
}

resource "aws_cloudwatch_metric_alarm" "response" {
  for_each            = local.alarms
  alarm_name          = "${local.p}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 60
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}

# The failed-executions alarm of earlier versions, kept (not replaced) on upgrade.
moved {
  from = aws_cloudwatch_metric_alarm.failed_executions
  to   = aws_cloudwatch_metric_alarm.response["incident-response-failed"]
}
