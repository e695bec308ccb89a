terraform {
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

# Static keys stay optional: left empty, the provider uses the usual credential chain
# (environment, shared config, instance profile).
provider "aws" {
  region     = var.aws_region
  access_key = var.access_key != "" ? var.access_key : null
  secret_key = var.secret_key != "" ? var.secret_key : null

  default_tags {
    tags = {
      Project     = "shadowtap"
      Environment = var.env
    }
  }
}
