terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # user_pool_tier (V2_0 pre token generation needs the Essentials or Plus plan).
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
