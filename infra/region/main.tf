# Forwards this Region's findings to the administrator deployment's Region: the rules of the
# administrator module (same patterns), each targeting the home Region's default event bus.
# Applied once per Region of the administrator's finding_regions, in the administrator account.

locals {
  p           = var.name_prefix
  home_region = split(":", var.home_event_bus_arn)[3]
}

resource "aws_cloudwatch_event_rule" "forward" {
  for_each      = var.event_patterns
  name          = "${local.p}-forward-${each.key}"
  description   = "Forward ${each.key} findings to the incident response in ${local.home_region}"
  event_pattern = each.value
  lifecycle {
    precondition {
      condition     = local.home_region != var.aws_region && contains(var.regions, var.aws_region)
      error_message = "aws_region must be one of the administrator's finding_regions (${join(", ", var.regions)}), not its home Region ${local.home_region}: the role trusts only those, and forwarding to itself would loop."
    }
  }
}

resource "aws_cloudwatch_event_target" "forward" {
  for_each = var.event_patterns
  rule     = aws_cloudwatch_event_rule.forward[each.key].name
  arn      = var.home_event_bus_arn
  role_arn = var.forward_role_arn
  # As in the home Region: retried for a day, then kept here (a dead-letter queue is in the
  # rule's Region), never dropped.
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.undelivered.arn
  }
}

resource "aws_sqs_queue" "undelivered" {
  name                      = "${local.p}-undelivered-forwarded-findings"
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
      Condition = { ArnEquals = { "aws:SourceArn" = [for r in aws_cloudwatch_event_rule.forward : r.arn] } }
    }]
  })
}

output "forwarding_rules" {
  value = [for r in aws_cloudwatch_event_rule.forward : r.name]
}

output "undelivered_queue_url" {
  description = "Findings EventBridge could not forward for a day: respond to them by hand."
  value       = aws_sqs_queue.undelivered.url
}
