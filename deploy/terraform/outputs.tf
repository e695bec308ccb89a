output "servera_url" {
  description = "Public URL of serverA (the traffic the agents capture)"
  value       = "http://${aws_lb.public.dns_name}/"
}

output "internal_lb_dns" {
  description = "Internal load balancer behind *.perf.local"
  value       = aws_lb.internal.dns_name
}

output "ecr_repository_url" {
  description = "Push the agent image here (tag latest) unless shadowtap_image is set"
  value       = aws_ecr_repository.shadowtap.repository_url
}

output "cluster_name" {
  value = aws_ecs_cluster.this.name
}
