terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The same range as examples/complete; the aws_cognito_user_pool data source needs 5.56+.
      version = ">= 5.80, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}

provider "aws" {
  default_tags {
    tags = { "managed-by" = "terraform" }
  }
}
