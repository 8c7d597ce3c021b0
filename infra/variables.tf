variable "aws_region" {
  type    = string
  default = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "ir"
}

variable "lambda_zip_dir" {
  description = "Where `cargo lambda build --release --arm64 --output-format zip` put the zips (<dir>/<function>/bootstrap.zip)."
  type        = string
  default     = "../target/lambda"
}

variable "review_timeout_seconds" {
  description = "How long the review gate waits for an analyst before escalating (containment stays)."
  type        = number
  default     = 86400
}

variable "min_guardduty_severity" {
  description = "GuardDuty findings at or above this score start the response (7 = HIGH); below it, only the types in guardduty_types_any_severity do."
  type        = number
  default     = 7
}

variable "guardduty_types_any_severity" {
  description = "GuardDuty finding-type prefixes delivered whatever their severity: the types the policy has rules for that GuardDuty rates LOW or MEDIUM (a public bucket is severity 2, anomalous IAM behaviour 5). Keep in step with the policy's rules (a test checks the default policy)."
  type        = list(string)
  default = [
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.",
    "Policy:S3/BucketBlockPublicAccessDisabled",
    "Policy:S3/BucketAnonymousAccessGranted",
    "Policy:S3/BucketPublicAccessGranted",
    "Policy:S3/AccountBlockPublicAccessDisabled",
    "CredentialAccess:IAMUser/",
    "Stealth:IAMUser/",
    "Persistence:IAMUser/",
    "PrivilegeEscalation:IAMUser/",
    "Exfiltration:S3/",
    "Impact:S3/",
  ]
}

variable "evidence_retention_days" {
  description = "Object Lock COMPLIANCE retention of every evidence object."
  type        = number
  default     = 365
}

variable "dry_run" {
  description = "Deploy with every mutating step planned, not made (IR_DRY_RUN)."
  type        = bool
  default     = false
}

variable "nacl_isolation" {
  description = "Also deny an isolated instance's addresses in every network ACL of its VPC (IR_NACL_ISOLATION): cuts flows that NAT gateways, load balancers and endpoints in other subnets track, which security groups cannot."
  type        = bool
  default     = false
}

variable "forensic_ingress_cidr" {
  description = "Let responders reach isolated instances on TCP 22 from this CIDR (IR_FORENSIC_INGRESS_CIDR); empty for none."
  type        = string
  default     = ""
  validation {
    condition     = var.forensic_ingress_cidr == "" || can(cidrhost(var.forensic_ingress_cidr, 0))
    error_message = "forensic_ingress_cidr must be a CIDR such as 192.0.2.10/32, or empty."
  }
}

variable "securityhub_update" {
  description = "ir-notify moves the finding's Security Hub workflow status (NOTIFIED on open, RESOLVED on approval) and adds notes (IR_SECURITYHUB_UPDATE)."
  type        = bool
  default     = true
}

variable "sns_subscription_emails" {
  type    = list(string)
  default = []
}

variable "slack_webhook_secret" {
  description = "secretsmanager:<id> or ssm:<name> holding the Slack incoming-webhook URL (empty: no Slack)."
  type        = string
  default     = ""
}

variable "pagerduty_routing_key_secret" {
  description = "secretsmanager:<id> or ssm:<name> holding the PagerDuty Events v2 routing key (empty: no paging)."
  type        = string
  default     = ""
}

variable "jira_url" {
  description = "Jira Cloud site, e.g. https://example.atlassian.net (empty: no Jira, and no review gate)."
  type        = string
  default     = ""
}

variable "jira_project" {
  type    = string
  default = "SEC"
}

variable "jira_credentials_secret" {
  description = "secretsmanager:<id> or ssm:<name> holding {\"email\", \"api_token\"}."
  type        = string
  default     = ""
}

variable "jira_webhook_secret" {
  description = "secretsmanager:<id> or ssm:<name> holding the Jira webhook secret."
  type        = string
  default     = "ssm:/incident-response/jira-webhook-secret"
}

variable "approvers" {
  description = "Jira Cloud account ids (e.g. 5b10ac8d82e05b22cc7d4ef5 or 712020:cf20d007-…, the last part of the user's profile URL) allowed to approve or reject. Not emails: Jira Cloud's webhook deliveries carry the user's accountId only."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.approvers : can(regex("^[A-Za-z0-9:_-]{1,128}$", a))])
    error_message = "approvers are Jira account ids (letters, digits, ':', '-', '_'; at most 128 characters), not emails: Jira Cloud's deliveries carry no emailAddress."
  }
}

variable "jira_approve_status" {
  description = "The ticket status whose transition approves the containment (ir-notify names it on the ticket, ir-approve acts on it)."
  type        = string
  default     = "Approved"
}

variable "jira_transition_events" {
  description = "The issue_event_type_names a transition to the approve/reject status fires (its \"Fire event\" post function; Jira's default is the generic event). Add a custom event's name if your workflow fires one."
  type        = list(string)
  default     = ["issue_generic", "issue_resolved", "issue_closed", "issue_reopened", "issue_work_started", "issue_work_stopped"]
  validation {
    condition     = length(var.jira_transition_events) > 0 && !contains(var.jira_transition_events, "issue_moved")
    error_message = "jira_transition_events must name at least one event, and not issue_moved (a move remaps the status; it is not a decision)."
  }
}

variable "jira_webhook_retry_window_seconds" {
  description = "How old a delivery Jira marks as a retry may be (Jira retries for about 30 minutes with the first attempt's body); first deliveries are accepted up to 300 s."
  type        = number
  default     = 2400
  validation {
    condition     = var.jira_webhook_retry_window_seconds >= 300
    error_message = "jira_webhook_retry_window_seconds must be at least 300 (the first-delivery window)."
  }
}

variable "jira_reject_status" {
  description = "The ticket status whose transition rejects the containment and releases it."
  type        = string
  default     = "Rejected"
}

variable "log_retention_days" {
  type    = number
  default = 365
}

variable "trusted_securityhub_products" {
  description = "Security Hub products (company/product from the ProductArn, e.g. aws/inspector, aws/securityhub for CSPM controls) whose findings may start a response, besides aws/guardduty. Findings of other products are not delivered; a trusted product not by AWS gets at most tier approval."
  type        = list(string)
  default     = []
}

variable "create_securityhub_actions" {
  description = "Create the Security Hub custom actions IR-Contain and IR-Investigate (Security Hub must be enabled in the account); the custom-action rule takes only these actions either way."
  type        = bool
  default     = true
}

variable "evidence_reader_arns" {
  description = "IAM principals (role ARNs of the forensics team) allowed to decrypt evidence with the evidence key."
  type        = list(string)
  default     = []
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function (absent: none). A reservation is a ceiling as well as a guarantee: ir-approve, reachable by anyone through its URL, is capped so a flood cannot take the account's concurrency from the containment functions; reserve for the containment functions only with room for a burst (a custom action on many findings runs one containment each). Each reservation comes off the account's unreserved pool, which must keep 100."
  type        = map(number)
  default = {
    "ir-approve" = 10
  }
}

variable "never_touch_principals" {
  description = "Glob patterns (ARNs or role/NAME, user/NAME) of principals never quarantined, not even after an approval: break-glass and administrator roles. The response's own roles are always added."
  type        = list(string)
  default     = []
}

variable "organization_response" {
  description = "Act on resources in member accounts of the organization through their <prefix>-member role (deployed there by infra/member/), with member_external_id."
  type        = bool
  default     = false
}

variable "member_external_id" {
  description = "The ExternalId the functions present to the member roles (the same value goes to infra/member's external_id). Required with organization_response."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.member_external_id == "" || (length(var.member_external_id) >= 2 && length(var.member_external_id) <= 1224 && can(regex("^[\\w+=,.@:/-]+$", var.member_external_id)))
    error_message = "member_external_id: 2 to 1224 characters of letters, digits and +=,.@:/-_ (STS AssumeRole)."
  }
}

variable "forensics_account_id" {
  description = "Account the evidence snapshots are shared with (create-volume permission), wherever they were taken. Empty: snapshots stay in the resource's account."
  type        = string
  default     = ""
  validation {
    condition     = var.forensics_account_id == "" || can(regex("^[0-9]{12}$", var.forensics_account_id))
    error_message = "forensics_account_id must be a 12-digit account id."
  }
}

variable "forensics_kms_key" {
  description = "ARN of a KMS key of the forensics account that encrypted snapshots are copied under before they are shared ({region} stands for the snapshot's Region: a multi-Region key). Its key policy must let the member roles use it through EC2. Empty: encrypted snapshots are not shared (recorded)."
  type        = string
  default     = ""
  validation {
    condition     = var.forensics_kms_key == "" || (can(regex("^arn:aws[a-z-]*:kms:([a-z0-9-]+|\\{region\\}):[0-9]{12}:key/.+$", var.forensics_kms_key)) && (!strcontains(var.forensics_kms_key, "{region}") || strcontains(var.forensics_kms_key, ":key/mrk-")))
    error_message = "forensics_kms_key must be a key ARN (not an alias): arn:<partition>:kms:<region>:<forensics account>:key/<id>, or with {region} a multi-Region key (key/mrk-...)."
  }
}

variable "finding_regions" {
  description = "The other Regions whose findings this deployment answers. Each forwards its findings to this Region's default event bus through rules that infra/region/ creates there (apply it once per Region, with the region_forwarder output)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for r in var.finding_regions : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", r))])
    error_message = "finding_regions: Region names such as eu-west-1."
  }
}

variable "aws_endpoint" {
  description = "Testing only: send every AWS call to this endpoint (a local emulator)."
  type        = string
  default     = null
}

variable "tags" {
  type    = map(string)
  default = { "project" = "aws-incident-response" }
}
