# Default VPC and its subnets, as in the original layout (or the VPC named by aws_vpc).
data "aws_vpc" "this" {
  default = var.aws_vpc == ""
  id      = var.aws_vpc == "" ? null : var.aws_vpc
}

data "aws_subnets" "this" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.this.id]
  }
}

locals {
  name    = "${var.env}-shadowtap"
  subnets = data.aws_subnets.this.ids
}

resource "aws_security_group" "public_alb" {
  name        = "${local.name}-public-alb"
  description = "public ALB in front of serverA"
  vpc_id      = data.aws_vpc.this.id

  ingress {
    description = "http from anywhere"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "internal_lb" {
  name        = "${local.name}-internal-lb"
  description = "internal load balancer for serverB, Elasticsearch and Kibana"
  vpc_id      = data.aws_vpc.this.id

  ingress {
    description = "serverB, Elasticsearch and Kibana from inside the VPC"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.this.cidr_block]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "instances" {
  name        = "${local.name}-instances"
  description = "ECS container instances"
  vpc_id      = data.aws_vpc.this.id

  ingress {
    description     = "serverA from the public ALB"
    from_port       = 80
    to_port         = 80
    protocol        = "tcp"
    security_groups = [aws_security_group.public_alb.id]
  }

  ingress {
    description     = "serverB, Elasticsearch and Kibana from the internal load balancer"
    from_port       = 81
    to_port         = 65535
    protocol        = "tcp"
    security_groups = [aws_security_group.internal_lb.id]
  }

  ingress {
    description = "ssh for operators"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.admin_cidr]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
