variable "administrator_account_id" {
  description = "The account where the incident-response functions run (GuardDuty / Security Hub delegated administrator)."
  type        = string
  validation {
    condition     = can(regex("^[0-9]{12}$", var.administrator_account_id))
    error_message = "administrator_account_id must be a 12-digit account id."
  }
}

variable "name_prefix" {
  description = "The administrator deployment's name_prefix: the role is <prefix>-member and trusts <prefix>-<function> roles."
  type        = string
  default     = "ir"
}

variable "external_id" {
  description = "The ExternalId the functions present (the administrator's member_external_id)."
  type        = string
  sensitive   = true
  validation {
    condition     = length(var.external_id) >= 2 && length(var.external_id) <= 1224 && can(regex("^[\\w+=,.@:/-]+$", var.external_id))
    error_message = "external_id: 2 to 1224 characters of letters, digits and +=,.@:/-_ (STS AssumeRole)."
  }
}

variable "organization_id" {
  description = "The AWS Organization id (o-...): the trust also requires aws:PrincipalOrgID. Empty: not required."
  type        = string
  default     = ""
}

variable "aws_region" {
  description = "Region of the provider (IAM is global)."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint" {
  description = "Emulator endpoint for tests; null for real AWS."
  type        = string
  default     = null
}
