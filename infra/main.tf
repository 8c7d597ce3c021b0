data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = var.aws_region
  p         = var.name_prefix

  # Per deployment: two deployments (staging, production) in one account and Region must not
  # share, or collide on, one kill switch.
  kill_switch_parameter = "/${var.name_prefix}/incident-response/kill-switch"

  # Built from its name, not read from the resource: the state machine refers to ir-triage, and
  # ir-triage starts executions of it (one per further finding of a multi-finding event).
  # Evidence and containment make many AWS calls, each retried with backoff when throttled
  # (EC2 and IAM throttle under load, exactly when an incident is busy): 300 s leaves room. The
  # state machine's TimeoutSeconds for each task is above its function's timeout, so the Lambda
  # timeout (Sandbox.Timedout, retried: every handler is idempotent) fires first.
  lambda_timeout_seconds = {
    "ir-triage" = 60
    "ir-notify" = 60
    # Below ir-approve's delivery lease (DELIVERY_LEASE_SECONDS, 90 s): a live attempt is never
    # taken over by Jira's retry of the same delivery.
    "ir-approve"           = 60
    "ir-preserve-evidence" = 300
    # The containment functions stay below their resource lease (ir_core::lease::LEASE_SECONDS,
    # 330 s): a live run is never taken over by another incident's.
    "ir-isolate-ec2"    = 300
    "ir-quarantine-iam" = 300
    "ir-lockdown-s3"    = 300
  }

  state_machine_name = "${local.p}-incident-response"
  state_machine_arn  = "arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${local.state_machine_name}"

  # secretsmanager:<id> / ssm:<name> references → ARNs the functions may read.
  secret_refs = compact([var.slack_webhook_secret, var.pagerduty_routing_key_secret, var.jira_credentials_secret])
  ssm_arns = [for r in concat(local.secret_refs, [var.jira_webhook_secret]) :
    "arn:${local.partition}:ssm:${local.region}:${local.account}:parameter/${trimprefix(trimprefix(r, "ssm:"), "/")}"
  if startswith(r, "ssm:")]
  secret_arns = [for r in concat(local.secret_refs, [var.jira_webhook_secret]) :
    (startswith(trimprefix(r, "secretsmanager:"), "arn:") ? "${trimprefix(r, "secretsmanager:")}*" :
    "arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:${trimprefix(r, "secretsmanager:")}*")
  if startswith(r, "secretsmanager:")]

  # Security Hub products whose findings may start a response: GuardDuty, and those opted in.
  trusted_products = distinct(concat(["aws/guardduty"], var.trusted_securityhub_products))

  common_env = {
    RUST_LOG                 = "info"
    IR_KILL_SWITCH_PARAMETER = local.kill_switch_parameter
    IR_DRY_RUN               = tostring(var.dry_run)
    # The response's own roles, and the break-glass/admin roles named in never_touch_principals:
    # never quarantined, not even after an approval.
    IR_TRUSTED_PRODUCTS = join(",", local.trusted_products)
    IR_NEVER_TOUCH = join(",", concat(
      ["arn:${local.partition}:iam::${local.account}:role/${local.p}-*"],
      var.never_touch_principals
    ))
  }
  # Where the resource lives: the functions compare the finding's account with this one, and
  # assume <prefix>-member (infra/member/) in any other.
  reach_env = merge(
    { IR_ACCOUNT_ID = local.account, IR_PARTITION = local.partition },
    var.organization_response ? { IR_MEMBER_ROLE_NAME = "${local.p}-member", IR_MEMBER_EXTERNAL_ID = var.member_external_id } : {},
  )
  containment_env = merge(local.common_env, local.reach_env, { IR_PRE_STATE_TABLE = aws_dynamodb_table.pre_state.name })
  notify_env = merge(
    {
      IR_SNS_TOPIC_ARN      = aws_sns_topic.alerts.arn
      IR_APPROVALS_TABLE    = aws_dynamodb_table.approvals.name
      IR_SECURITYHUB_UPDATE = tostring(var.securityhub_update)
    },
    var.slack_webhook_secret == "" ? {} : { IR_SLACK_WEBHOOK_SECRET = var.slack_webhook_secret },
    var.pagerduty_routing_key_secret == "" ? {} : { IR_PAGERDUTY_ROUTING_KEY_SECRET = var.pagerduty_routing_key_secret },
    var.jira_url == "" ? {} : {
      IR_JIRA_URL                = var.jira_url
      IR_JIRA_PROJECT            = var.jira_project
      IR_JIRA_CREDENTIALS_SECRET = var.jira_credentials_secret
      IR_JIRA_APPROVE_STATUS     = var.jira_approve_status
      IR_JIRA_REJECT_STATUS      = var.jira_reject_status
    },
  )

  logs_statement = {
    Effect   = "Allow"
    Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    Resource = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/lambda/${local.p}-*:*"
  }
  # Each function's role policy is what its code declares (crates/*: a Permission beside every
  # AWS call), rendered into permissions.json by `cargo run -p ir-tests --bin permissions`; a
  # test fails while the file and the code differ. Placeholders become this deployment's ARNs.
  permissions = jsondecode(file("${path.module}/permissions.json"))
  permission_lists = {
    "{ssm_secrets}"            = local.ssm_arns
    "{secretsmanager_secrets}" = local.secret_arns
  }
  permission_arns = {
    "{kill_switch_parameter}" = aws_ssm_parameter.kill_switch.arn
    "{incidents_table}"       = aws_dynamodb_table.incidents.arn
    "{approvals_table}"       = aws_dynamodb_table.approvals.arn
    "{pre_state_table}"       = aws_dynamodb_table.pre_state.arn
    "{state_machine}"         = local.state_machine_arn
    "{alerts_topic}"          = aws_sns_topic.alerts.arn
    "{evidence_key_arn}"      = aws_kms_key.evidence.arn
  }
  # Resources of this account in this Region, or in any Region when findings come from others
  # too (a finding forwarded from finding_regions about this account's own resource is answered
  # with the function's own role there).
  acting_regions = length(var.finding_regions) > 0 ? "*" : local.region
  declared_statements = {
    for fn, statements in local.permissions : fn => [
      for st in statements : merge({
        Effect = st.Effect
        Action = st.Action
        Resource = lookup(local.permission_lists, st.Resource, [
          replace(replace(replace(replace(replace(
            lookup(local.permission_arns, st.Resource, st.Resource),
            "{evidence_bucket}", aws_s3_bucket.evidence.bucket),
          "{partition}", local.partition), "{account}", local.account), "{region}", local.acting_regions), "{prefix}", local.p)
        ])
        # A declared condition (e.g. iam:PassedToService, ec2:CreateAction) goes with it.
      }, { for k, v in { Condition = lookup(st, "Condition", null) } : k => v if v != null })
      if length(lookup(local.permission_lists, st.Resource, ["one"])) > 0
    ]
  }

  function_names = ["ir-triage", "ir-isolate-ec2", "ir-quarantine-iam", "ir-lockdown-s3", "ir-preserve-evidence", "ir-notify", "ir-approve"]

  # One entry per Lambda (the keys are function_names): its environment and exactly the actions
  # its code declares.
  functions = {
    "ir-triage" = {
      env = merge(local.common_env, {
        IR_INCIDENTS_TABLE   = aws_dynamodb_table.incidents.name
        IR_STATE_MACHINE_ARN = local.state_machine_arn
      })
      statements = local.declared_statements["ir-triage"]
    }
    "ir-isolate-ec2" = {
      env = merge(local.containment_env, {
        IR_NACL_ISOLATION = tostring(var.nacl_isolation)
        }, var.forensic_ingress_cidr == "" ? {} : {
        IR_FORENSIC_INGRESS_CIDR = var.forensic_ingress_cidr
      })
      statements = local.declared_statements["ir-isolate-ec2"]
    }
    "ir-quarantine-iam" = {
      env        = merge(local.containment_env, { IR_DEACTIVATE_ALL_KEYS = "true" })
      statements = local.declared_statements["ir-quarantine-iam"]
    }
    "ir-lockdown-s3" = {
      env        = merge(local.containment_env, { IR_EVIDENCE_BUCKET = aws_s3_bucket.evidence.bucket, IR_S3_OBJECT_LOCK = "false" })
      statements = local.declared_statements["ir-lockdown-s3"]
    }
    "ir-preserve-evidence" = {
      env = merge(local.reach_env, {
        RUST_LOG                   = "info"
        IR_EVIDENCE_BUCKET         = aws_s3_bucket.evidence.bucket
        IR_EVIDENCE_KMS_KEY_ID     = aws_kms_key.evidence.arn
        IR_EVIDENCE_RETENTION_DAYS = tostring(var.evidence_retention_days)
        IR_STATE_MACHINE_ARN       = local.state_machine_arn
        }, var.forensics_account_id == "" ? {} : {
        IR_FORENSICS_ACCOUNT_ID = var.forensics_account_id
        IR_FORENSICS_KMS_KEY    = var.forensics_kms_key
      })
      statements = local.declared_statements["ir-preserve-evidence"]
    }
    "ir-notify" = {
      env        = local.notify_env
      statements = local.declared_statements["ir-notify"]
    }
    "ir-approve" = {
      env = {
        RUST_LOG                        = "info"
        IR_APPROVALS_TABLE              = aws_dynamodb_table.approvals.name
        IR_JIRA_WEBHOOK_SECRET          = var.jira_webhook_secret
        IR_APPROVERS                    = join(",", var.approvers)
        IR_JIRA_APPROVE_STATUS          = var.jira_approve_status
        IR_JIRA_REJECT_STATUS           = var.jira_reject_status
        IR_JIRA_TRANSITION_EVENTS       = join(",", var.jira_transition_events)
        IR_WEBHOOK_RETRY_WINDOW_SECONDS = tostring(var.jira_webhook_retry_window_seconds)
      }
      statements = local.declared_statements["ir-approve"]
    }
  }
}

# --- state -------------------------------------------------------------------------------

resource "aws_dynamodb_table" "incidents" {
  name         = "${local.p}-incidents"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "incident_id"
  attribute {
    name = "incident_id"
    type = "S"
  }
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  point_in_time_recovery {
    enabled = true
  }
}

# What each containment found before changing anything (one item per resource; only the IR
# functions write it). Release restores from here, never from a tag on the resource.
resource "aws_dynamodb_table" "pre_state" {
  name         = "${local.p}-pre-state"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "resource"
  attribute {
    name = "resource"
    type = "S"
  }
  point_in_time_recovery {
    enabled = true
  }
}

resource "aws_dynamodb_table" "approvals" {
  name         = "${local.p}-approvals"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "incident_id"
  attribute {
    name = "incident_id"
    type = "S"
  }
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
}

resource "aws_ssm_parameter" "kill_switch" {
  name        = local.kill_switch_parameter
  description = "on = every automated response only plans (dry-run); off = act"
  type        = "String"
  value       = "off"
  lifecycle {
    ignore_changes = [value] # operators flip it; Terraform must not flip it back
  }
}

# --- evidence ----------------------------------------------------------------------------

resource "aws_kms_key" "evidence" {
  description             = "${local.p} incident evidence"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  # Who may read evidence is named here, not left to every IAM policy of the account: the
  # account's administrators manage the key (without decrypting through it by default), the
  # evidence function encrypts, S3 uses it for the bucket, and evidence_reader_arns decrypt.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
        Action = ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
          "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
        "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]
        Resource = "*"
      },
      {
        Sid       = "EvidenceFunctionEncrypts"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.function["ir-preserve-evidence"].arn }
        Action    = ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
        Resource  = "*"
      }],
      length(var.evidence_reader_arns) == 0 ? [] : [{
        Sid       = "EvidenceReadersDecrypt"
        Effect    = "Allow"
        Principal = { AWS = var.evidence_reader_arns }
        Action    = ["kms:Decrypt", "kms:DescribeKey"]
        Resource  = "*"
    }])
  })
  # Evidence under COMPLIANCE retention can never be deleted: a destroyed key would leave it
  # unreadable for good. `terraform state rm` first, deliberately, to tear a deployment down.
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket" "evidence" {
  bucket              = "${local.p}-evidence-${local.account}-${local.region}"
  object_lock_enabled = true
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "evidence" {
  bucket                  = aws_s3_bucket.evidence.id
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

# Per-object COMPLIANCE retention and SSE-KMS are set by ir-preserve-evidence on every object.
# The bucket keeps no default retention and SSE-S3 as default encryption, because it is also the
# target of S3 server access logs (ir-lockdown-s3), which AWS delivers only to such buckets.
resource "aws_s3_bucket_policy" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.evidence.arn, "${aws_s3_bucket.evidence.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.evidence.arn}/access-logs/*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
      },
    ]
  })
  depends_on = [aws_s3_bucket_public_access_block.evidence]
}

# --- notification ------------------------------------------------------------------------

resource "aws_sns_topic" "alerts" {
  name = "${local.p}-alerts"
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.sns_subscription_emails)
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}
