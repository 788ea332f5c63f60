variable "name" {
  description = "Name prefix for the example's resources."
  type        = string
  default     = "cognito-hasura-sync"
}

variable "container_image" {
  description = "Worker image built from deploy/Dockerfile and pushed to ecr_repository_arn, pinned by tag or digest."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository holding container_image."
  type        = string
}

variable "hasura_graphql_endpoint" {
  description = "Hasura's GraphQL endpoint as the worker reaches it, for example https://hasura.internal.example.com/v1/graphql."
  type        = string
}

variable "user_pool_domain" {
  description = "Domain prefix of the pool's hosted domain (unique in the region), where the worker's machine client gets its tokens."
  type        = string
}

variable "vpc_id" {
  description = "VPC for the worker tasks."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (with NAT or VPC endpoints) for the worker tasks."
  type        = list(string)
}

variable "app_client_callback_urls" {
  description = "OAuth callback URLs of the example app client."
  type        = list(string)
  default     = ["https://app.example.com/callback"]
}

variable "desired_count" {
  description = "Daemon tasks: 0 for the first apply (backfill runs alone), then 2."
  type        = number
  default     = 2
}
