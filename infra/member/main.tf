# The role the administrator account's incident-response functions assume in this member
# account: trusted only by those roles, only with the ExternalId (and, when set, only from the
# organization), allowed exactly what their code declares for acting on a resource
# (../permissions.json), under a permissions boundary.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  p         = var.name_prefix
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition

  # The functions that act where the resource lives (ir_core::member).
  acting      = ["ir-isolate-ec2", "ir-quarantine-iam", "ir-lockdown-s3", "ir-preserve-evidence"]
  permissions = jsondecode(file("${path.module}/../permissions.json"))

  # Their declared statements on resources: not those on the administrator's own resources
  # (kill switch, tables, evidence bucket and key: named placeholders), not the assumption
  # itself. Resources in any Region of this account.
  statements = { for fn in local.acting : fn => [
    for st in local.permissions[fn] : merge({
      Effect = st.Effect
      Action = st.Action
      Resource = replace(replace(replace(replace(st.Resource,
        "{partition}", local.partition), "{account}", local.account), "{region}", "*"),
      "{prefix}", local.p)
    }, { for k, v in { Condition = lookup(st, "Condition", null) } : k => v if v != null })
    if !startswith(st.Resource, "{") && !contains(st.Action, "sts:AssumeRole")
  ] }

  trusted = [for fn in local.acting :
  "arn:${local.partition}:iam::${var.administrator_account_id}:role/${local.p}-${trimprefix(fn, "ir-")}"]
}

resource "aws_iam_policy" "boundary" {
  name        = "${local.p}-member-boundary"
  description = "Ceiling of the incident-response member role: the declared actions, never on the response's own roles."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = sort(distinct(flatten([for fn, sts in local.statements : [for st in sts : st.Action if st.Effect == "Allow"]])))
        Resource = "*"
      },
      {
        Effect   = "Deny"
        Action   = ["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:PassRole"]
        Resource = "arn:${local.partition}:iam::${local.account}:role/${local.p}-*"
      },
    ]
  })
}

resource "aws_iam_role" "member" {
  name                 = "${local.p}-member"
  description          = "Assumed by the incident-response functions of account ${var.administrator_account_id}."
  permissions_boundary = aws_iam_policy.boundary.arn
  max_session_duration = 3600
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { AWS = local.trusted }
      Condition = {
        StringEquals = merge(
          { "sts:ExternalId" = var.external_id },
          var.organization_id == "" ? {} : { "aws:PrincipalOrgID" = var.organization_id },
        )
      }
    }]
  })
}

resource "aws_iam_role_policy" "declared" {
  for_each = local.statements
  name     = each.key
  role     = aws_iam_role.member.id
  policy   = jsonencode({ Version = "2012-10-17", Statement = each.value })
}

output "member_role_arn" {
  value = aws_iam_role.member.arn
}
