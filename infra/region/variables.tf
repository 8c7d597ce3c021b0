variable "aws_region" {
  description = "The Region whose findings are forwarded (one of the administrator's finding_regions)."
  type        = string
}

variable "name_prefix" {
  description = "The administrator deployment's name_prefix (from its region_forwarder output)."
  type        = string
  default     = "ir"
}

variable "home_event_bus_arn" {
  description = "The default event bus of the administrator deployment's Region (region_forwarder output)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/default$", var.home_event_bus_arn))
    error_message = "home_event_bus_arn: the ARN of a default event bus."
  }
}

variable "forward_role_arn" {
  description = "The role EventBridge uses to put the findings on the home bus (region_forwarder output)."
  type        = string
}

variable "event_patterns" {
  description = "The administrator deployment's finding rules, name => event pattern JSON (region_forwarder output)."
  type        = map(string)
  validation {
    condition     = length(var.event_patterns) > 0
    error_message = "event_patterns: at least one rule."
  }
}

variable "regions" {
  description = "The administrator's finding_regions (region_forwarder output): aws_region must be one of them."
  type        = list(string)
}

variable "aws_endpoint" {
  description = "Emulator endpoint for tests; null for real AWS."
  type        = string
  default     = null
}

variable "tags" {
  type    = map(string)
  default = { "project" = "aws-incident-response" }
}
