# Task definitions and services: serverA (host network, port 80, behind the public
# ALB), serverB (port 81 behind the internal ALB), Elasticsearch and Kibana, and the
# shadowtap agent as a DAEMON on every instance.
locals {
  shadowtap_image = var.shadowtap_image != "" ? var.shadowtap_image : "${aws_ecr_repository.shadowtap.repository_url}:latest"

  log_options = {
    "awslogs-group"         = aws_cloudwatch_log_group.ecs.name
    "awslogs-region"        = var.aws_region
    "awslogs-stream-prefix" = var.env
  }

  # nginx reads its site from the environment, so one public image serves both sides;
  # the configs are the ones docker-compose mounts.
  nginx_command = ["sh", "-c", "printf '%s\\n' \"$NGINX_CONF\" > /etc/nginx/conf.d/default.conf && exec nginx -g 'daemon off;'"]
}

resource "aws_ecs_task_definition" "servera" {
  family                   = "${var.env}-servera"
  network_mode             = "host"
  requires_compatibilities = ["EC2"]

  container_definitions = jsonencode([{
    name              = "servera"
    image             = "nginx:stable-alpine"
    essential         = true
    memoryReservation = 64
    command           = local.nginx_command
    environment       = [{ name = "NGINX_CONF", value = file("${path.module}/../docker/nginx/serverA.conf") }]
    portMappings      = [{ containerPort = 80, hostPort = 80, protocol = "tcp" }]
    logConfiguration  = { logDriver = "awslogs", options = local.log_options }
  }])
}

resource "aws_ecs_service" "servera" {
  name            = "servera"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.servera.arn
  desired_count   = var.desired_capacity
  launch_type     = "EC2"

  # Host port 80: one serverA per instance, next to that instance's agent.
  placement_constraints {
    type = "distinctInstance"
  }

  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 100

  load_balancer {
    target_group_arn = aws_lb_target_group.servera.arn
    container_name   = "servera"
    container_port   = 80
  }

  depends_on = [aws_lb_listener.public_http]
}

resource "aws_ecs_task_definition" "serverb" {
  family                   = "${var.env}-serverb"
  network_mode             = "bridge"
  requires_compatibilities = ["EC2"]

  container_definitions = jsonencode([{
    name              = "serverb"
    image             = "nginx:stable-alpine"
    essential         = true
    memoryReservation = 64
    command           = local.nginx_command
    environment       = [{ name = "NGINX_CONF", value = file("${path.module}/../docker/nginx/serverB.conf") }]
    portMappings      = [{ containerPort = 81, hostPort = 0, protocol = "tcp" }]
    logConfiguration  = { logDriver = "awslogs", options = local.log_options }
  }])
}

resource "aws_ecs_service" "serverb" {
  name            = "serverb"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.serverb.arn
  desired_count   = 1
  launch_type     = "EC2"

  load_balancer {
    target_group_arn = aws_lb_target_group.internal["serverb"].arn
    container_name   = "serverb"
    container_port   = 81
  }

  depends_on = [aws_lb_listener.internal]
}

resource "aws_ecs_task_definition" "elasticsearch" {
  family                   = "${var.env}-elasticsearch"
  network_mode             = "bridge"
  requires_compatibilities = ["EC2"]

  container_definitions = jsonencode([{
    name      = "elasticsearch"
    image     = "docker.elastic.co/elasticsearch/elasticsearch:8.15.3"
    essential = true
    memory    = 3072
    environment = [
      { name = "discovery.type", value = "single-node" },
      { name = "xpack.security.enabled", value = "false" },
      { name = "ES_JAVA_OPTS", value = "-Xms1536m -Xmx1536m" },
    ]
    ulimits          = [{ name = "nofile", softLimit = 65535, hardLimit = 65535 }]
    portMappings     = [{ containerPort = 9200, hostPort = 0, protocol = "tcp" }]
    logConfiguration = { logDriver = "awslogs", options = local.log_options }
  }])
}

resource "aws_ecs_service" "elasticsearch" {
  name            = "elasticsearch"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.elasticsearch.arn
  desired_count   = 1
  launch_type     = "EC2"

  # A single node keeps its data only as long as its task: this is a demo cluster.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  load_balancer {
    target_group_arn = aws_lb_target_group.internal["elasticsearch"].arn
    container_name   = "elasticsearch"
    container_port   = 9200
  }

  depends_on = [aws_lb_listener.internal]
}

resource "aws_ecs_task_definition" "kibana" {
  family                   = "${var.env}-kibana"
  network_mode             = "bridge"
  requires_compatibilities = ["EC2"]

  container_definitions = jsonencode([{
    name              = "kibana"
    image             = "docker.elastic.co/kibana/kibana:8.15.3"
    essential         = true
    memoryReservation = 1024
    environment       = [{ name = "ELASTICSEARCH_HOSTS", value = "[\"${var.ELASTICSEARCH_URL}:${var.ES_PORT}\"]" }]
    portMappings      = [{ containerPort = 5601, hostPort = 0, protocol = "tcp" }]
    logConfiguration  = { logDriver = "awslogs", options = local.log_options }
  }])
}

resource "aws_ecs_service" "kibana" {
  name            = "kibana"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.kibana.arn
  desired_count   = 1
  launch_type     = "EC2"

  load_balancer {
    target_group_arn = aws_lb_target_group.internal["kibana"].arn
    container_name   = "kibana"
    container_port   = 5601
  }

  depends_on = [aws_lb_listener.internal]
}

# The agent: host network to see serverA's port 80, the host's bpffs and BTF, and
# the capabilities ECS can grant. ECS's capability list has no BPF or PERFMON, so
# SYS_ADMIN stands in for both (the kernel accepts it wherever it checks CAP_BPF or
# CAP_PERFMON, and Docker's seccomp profile lets bpf() through with it); add NET_ADMIN
# for the TC/XDP attach modes. See deploy/README.md.
resource "aws_ecs_task_definition" "shadowtap" {
  family                   = "${var.env}-shadowtap"
  network_mode             = "host"
  requires_compatibilities = ["EC2"]

  volume {
    name      = "bpffs"
    host_path = "/sys/fs/bpf"
  }

  volume {
    name      = "btf"
    host_path = "/sys/kernel/btf"
  }

  volume {
    name      = "spool"
    host_path = "/var/lib/shadowtap"
  }

  container_definitions = jsonencode([{
    name              = "shadowtap"
    image             = local.shadowtap_image
    essential         = true
    cpu               = 256
    memoryReservation = 256
    memory            = 1024
    stopTimeout       = 30
    environment = [
      { name = "SHADOWTAP_PORT", value = "80" },
      { name = "SHADOWTAP_REPLAY", value = "http://serverb.perf.local:81" },
      { name = "ELASTICSEARCH_URL", value = var.ELASTICSEARCH_URL },
      { name = "ES_PORT", value = var.ES_PORT },
      { name = "SHADOWTAP_SPOOL_DIR", value = "/var/lib/shadowtap/spool" },
      { name = "SHADOWTAP_STATS", value = "60" },
    ]
    linuxParameters = {
      capabilities = {
        add  = ["SYS_ADMIN", "NET_RAW"]
        drop = ["ALL"]
      }
    }
    mountPoints = [
      { sourceVolume = "bpffs", containerPath = "/sys/fs/bpf", readOnly = false },
      { sourceVolume = "btf", containerPath = "/sys/kernel/btf", readOnly = true },
      { sourceVolume = "spool", containerPath = "/var/lib/shadowtap", readOnly = false },
    ]
    healthCheck = {
      command     = ["CMD-SHELL", "[ \"$(cat /proc/1/comm)\" = shadowtap ] && [ -e /sys/fs/bpf/shadowtap/stats ]"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 20
    }
    logConfiguration = { logDriver = "awslogs", options = local.log_options }
  }])
}

resource "aws_ecs_service" "shadowtap" {
  name                = "shadowtap"
  cluster             = aws_ecs_cluster.this.id
  task_definition     = aws_ecs_task_definition.shadowtap.arn
  launch_type         = "EC2"
  scheduling_strategy = "DAEMON"

  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
}
