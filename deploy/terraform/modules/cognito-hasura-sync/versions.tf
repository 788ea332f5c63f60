terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # pre_token_generation_config (V2_0 triggers) and aws_scheduler_schedule need 5.x.
      version = ">= 5.31, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}
