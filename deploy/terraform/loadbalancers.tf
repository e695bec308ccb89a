# Public ALB -> serverA (port 80 on the instances, where the agent captures).
resource "aws_lb" "public" {
  name               = "${var.env}-servera"
  internal           = false
  load_balancer_type = "application"
  security_groups    = [aws_security_group.public_alb.id]
  subnets            = local.subnets
}

resource "aws_lb_target_group" "servera" {
  name        = var.target_group
  port        = 80
  protocol    = "HTTP"
  target_type = "instance"
  vpc_id      = data.aws_vpc.this.id

  health_check {
    path                = var.health_check_path
    matcher             = "200-399"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "public_http" {
  load_balancer_arn = aws_lb.public.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.servera.arn
  }
}

# Internal ALB: serverB on 81, Elasticsearch on 9200, Kibana on 5601, each reached
# through a perf.local name (dns.tf).
locals {
  internal_services = {
    serverb = {
      port         = 81
      health_path  = var.health_check_path
      health_codes = "200-399"
    }
    elasticsearch = {
      port         = 9200
      health_path  = "/_cluster/health"
      health_codes = "200"
    }
    kibana = {
      port         = 5601
      health_path  = "/api/status"
      health_codes = "200"
    }
  }
}

resource "aws_lb" "internal" {
  name               = "${var.env}-internal"
  internal           = true
  load_balancer_type = "application"
  security_groups    = [aws_security_group.internal_lb.id]
  subnets            = local.subnets
}

resource "aws_lb_target_group" "internal" {
  for_each = local.internal_services

  name        = "${var.env}-${each.key}"
  port        = each.value.port
  protocol    = "HTTP"
  target_type = "instance"
  vpc_id      = data.aws_vpc.this.id

  health_check {
    path                = each.value.health_path
    matcher             = each.value.health_codes
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 5
  }
}

resource "aws_lb_listener" "internal" {
  for_each = local.internal_services

  load_balancer_arn = aws_lb.internal.arn
  port              = each.value.port
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.internal[each.key].arn
  }
}
