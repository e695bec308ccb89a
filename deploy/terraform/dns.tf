# Private zone perf.local: serverb.perf.local, elasticsearch.perf.local and
# kibana.perf.local (and any other *.perf.local) resolve to the internal load balancer.
resource "aws_route53_zone" "perf" {
  name    = "perf.local"
  comment = "shadowtap ${var.env} internal services"

  vpc {
    vpc_id = data.aws_vpc.this.id
  }
}

resource "aws_route53_record" "internal" {
  for_each = toset(["*", "serverb", "elasticsearch", "kibana"])

  zone_id = aws_route53_zone.perf.zone_id
  name    = "${each.key}.perf.local"
  type    = "A"

  alias {
    name                   = aws_lb.internal.dns_name
    zone_id                = aws_lb.internal.zone_id
    evaluate_target_health = false
  }
}
