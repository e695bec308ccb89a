# The variables of the original gor-demo layout, with the same names and defaults
# that work in a fresh account; the shadowtap_* ones are additions.

variable "access_key" {
  description = "AWS access key; empty uses the default credential chain"
  type        = string
  default     = ""
  sensitive   = true
}

variable "secret_key" {
  description = "AWS secret key; empty uses the default credential chain"
  type        = string
  default     = ""
  sensitive   = true
}

variable "aws_region" {
  description = "AWS region"
  type        = string
  default     = "us-east-1"
}

variable "aws_vpc" {
  description = "VPC id to deploy into; empty means the region's default VPC"
  type        = string
  default     = ""
}

variable "env" {
  description = "Environment name, used as a prefix for resource names"
  type        = string
  default     = "perf"
}

variable "cluster" {
  description = "ECS cluster name"
  type        = string
  default     = "perf-cluster"
}

variable "key_name" {
  description = "EC2 key pair for SSH to the container instances; empty for none"
  type        = string
  default     = ""
}

variable "aws_ami" {
  description = "Container instance AMI; empty means the current ECS-optimised Amazon Linux 2023 AMI"
  type        = string
  default     = ""
}

variable "instance_type" {
  description = "Container instance type (Elasticsearch wants at least 4 GiB)"
  type        = string
  default     = "t3.large"
}

variable "max_size" {
  description = "Autoscaling group maximum size"
  type        = number
  default     = 3
}

variable "min_size" {
  description = "Autoscaling group minimum size"
  type        = number
  default     = 1
}

variable "desired_capacity" {
  description = "Autoscaling group desired capacity"
  type        = number
  default     = 2
}

variable "target_group" {
  description = "Name of the public ALB target group in front of serverA"
  type        = string
  default     = "perf-servera"
}

variable "health_check_path" {
  description = "HTTP path the load balancers probe on serverA and serverB"
  type        = string
  default     = "/"
}

variable "ELASTICSEARCH_URL" {
  description = "Elasticsearch base URL the agent writes to (no port: see ES_PORT)"
  type        = string
  default     = "http://elasticsearch.perf.local"
}

variable "ES_PORT" {
  description = "Elasticsearch port"
  type        = string
  default     = "9200"
}

variable "shadowtap_image" {
  description = "Agent image; empty means the ECR repository created here, tag latest"
  type        = string
  default     = ""
}

variable "admin_cidr" {
  description = "CIDR allowed to SSH to the instances and to reach the internal services through them"
  type        = string
  default     = "10.0.0.0/8"
}
