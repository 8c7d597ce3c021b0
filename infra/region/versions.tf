terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }
}

provider "aws" {
  # One apply per Region of the administrator's finding_regions, in the administrator account.
  region = var.aws_region

  # Only for local testing against an emulator (var.aws_endpoint); empty in real deployments.
  access_key                  = var.aws_endpoint == null ? null : "test"
  secret_key                  = var.aws_endpoint == null ? null : "test"
  skip_credentials_validation = var.aws_endpoint != null
  skip_metadata_api_check     = var.aws_endpoint != null
  skip_region_validation      = var.aws_endpoint != null
  max_retries                 = var.aws_endpoint == null ? null : 1
  skip_requesting_account_id  = var.aws_endpoint != null

  dynamic "endpoints" {
    for_each = var.aws_endpoint == null ? [] : [var.aws_endpoint]
    content {
      events = endpoints.value
      sqs    = endpoints.value
      sts    = endpoints.value
    }
  }

  default_tags {
    tags = var.tags
  }
}
