# --- findings from other Regions --------------------------------------------------------------
#
# GuardDuty and Security Hub publish a finding to EventBridge in the Region where it was raised
# (for a delegated administrator: its own account, that Region). Each Region in
# var.finding_regions gets, from infra/region/, rules with the same patterns as this Region's
# whose target is this Region's default event bus: the findings arrive here with their
# `region` (the one they came from), and the rules above start the one state machine. Why
# forwarding and not a copy of the whole deployment per Region: one kill switch, one incident
# table (so one resource is answered once wherever its findings come from), one evidence
# bucket, one review gate. Why not only Security Hub's cross-Region aggregation: GuardDuty's
# own events do not take that path, and the aggregated copy arrives later.

locals {
  # Analyst-initiated custom actions stay in this Region (their ARNs are this Region's).
  forwarded_rules = { for name, rule in local.rules : name => rule if name != "custom-action" }
  home_event_bus  = "arn:${local.partition}:events:${local.region}:${local.account}:event-bus/default"
}

resource "aws_iam_role" "forward" {
  count                = length(var.finding_regions) > 0 ? 1 : 0
  name                 = "${local.p}-forward-findings"
  description          = "EventBridge in ${join(", ", var.finding_regions)} forwards findings to ${local.region}."
  permissions_boundary = aws_iam_policy.forward_boundary[0].arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account }
        ArnLike = { "aws:SourceArn" = [for r in var.finding_regions :
        "arn:${local.partition}:events:${r}:${local.account}:rule/${local.p}-forward-*"] }
      }
    }]
  })
  lifecycle {
    precondition {
      condition     = !contains(var.finding_regions, var.aws_region)
      error_message = "finding_regions lists the other Regions: ${var.aws_region} is this deployment's own (forwarding it to itself would loop)."
    }
  }
}

# The role can only put events on this Region's default bus, whatever is attached to it later.
resource "aws_iam_policy" "forward_boundary" {
  count       = length(var.finding_regions) > 0 ? 1 : 0
  name        = "${local.p}-forward-boundary"
  description = "Permissions boundary of the finding-forwarding role"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "events:PutEvents", Resource = local.home_event_bus }]
  })
}

resource "aws_iam_role_policy" "forward" {
  count = length(var.finding_regions) > 0 ? 1 : 0
  name  = "put-findings-on-the-home-bus"
  role  = aws_iam_role.forward[0].id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "events:PutEvents", Resource = local.home_event_bus }]
  })
}

output "region_forwarder" {
  description = "The variables of infra/region/ (apply it once per Region of finding_regions): `terraform output -json region_forwarder > ../region/forwarder.auto.tfvars.json`."
  value = length(var.finding_regions) == 0 ? null : {
    name_prefix        = local.p
    home_event_bus_arn = local.home_event_bus
    forward_role_arn   = aws_iam_role.forward[0].arn
    event_patterns     = { for name, rule in local.forwarded_rules : name => jsonencode(rule.pattern) }
    regions            = var.finding_regions
  }
}
