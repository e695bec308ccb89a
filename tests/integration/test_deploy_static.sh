#!/bin/bash
# Static checks of deploy/: the compose file, the ECS JSON, the Kibana saved objects,
# the Dockerfile, the nginx configs, terraform (fmt, validate) and the systemd unit.
# Nothing is deployed; image names are looked up in their registries when those are
# reachable (SKIP otherwise). Run from the repository root.

TMP=$(mktemp -d /tmp/shadowtap-deploy.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1 ($2)"; }
skip() { echo "SKIP: $1 ($2)"; }

PY=python3
if ! $PY -c 'import yaml' 2>/dev/null; then
	PY=/usr/bin/python3
fi

# Python checks print their own PASS/FAIL/SKIP lines.
$PY - <<'EOF'
import json, os, re, sys

def out(kind, name, why=None):
    print("%s: %s%s" % (kind, name, " (%s)" % why if why else ""))

def check(name, fn):
    try:
        why = fn()
    except Exception as e:  # a crash in a check is that check's failure
        why = "%s: %s" % (type(e).__name__, e)
    if why is None:
        out("PASS", name)
    elif isinstance(why, tuple):
        out("SKIP", name, why[1])
    else:
        out("FAIL", name, why)

IMAGES = {}   # image reference -> where it is named

# ---- docker-compose.yml -------------------------------------------------------------
compose = {}
def compose_parses():
    global compose
    try:
        import yaml
    except ImportError:
        return ("skip", "python3-yaml missing (apt-get install python3-yaml)")
    compose = yaml.safe_load(open("deploy/docker/docker-compose.yml"))
    if not isinstance(compose, dict) or "services" not in compose:
        return "no services"
check("compose file parses", compose_parses)

def compose_services():
    if not compose:
        return ("skip", "compose not parsed")
    s = compose["services"]
    need = {"servera", "serverb", "shadowtap", "elasticsearch", "kibana", "kibana-setup"}
    if need - set(s):
        return "missing services %s" % sorted(need - set(s))
    a = s["shadowtap"]
    if a.get("network_mode") != "host":
        return "agent not on the host network"
    if [c.upper() for c in a.get("cap_drop", [])] != ["ALL"]:
        return "agent does not drop all capabilities"
    caps = {c.upper().replace("CAP_", "") for c in a.get("cap_add", [])}
    if not {"BPF", "PERFMON", "NET_RAW"} <= caps or caps - {"BPF", "PERFMON", "NET_RAW", "NET_ADMIN"}:
        return "agent capabilities %s" % sorted(caps)
    if a.get("privileged"):
        return "agent is privileged"
    mounts = [v.split(":")[1] for v in a.get("volumes", []) if isinstance(v, str)]
    for m in ("/sys/fs/bpf", "/sys/kernel/btf"):
        if m not in mounts:
            return "agent lacks mount %s" % m
    env = a.get("environment", {})
    if not {"ELASTICSEARCH_URL", "ES_PORT"} <= set(env):
        return "agent lacks ELASTICSEARCH_URL/ES_PORT"
    if s["servera"].get("network_mode") != "host" or s["serverb"].get("network_mode") != "host":
        return "serverA/serverB must share the host network with the agent"
    for dep, cond in s["kibana-setup"].get("depends_on", {}).items():
        if dep == "kibana" and cond.get("condition") == "service_healthy":
            break
    else:
        return "kibana-setup does not wait for a healthy kibana"
    if not any("kbn-xsrf" in str(c) for c in s["kibana-setup"].get("command", [])):
        return "kibana-setup import lacks the kbn-xsrf header"
check("compose services, agent capabilities and mounts", compose_services)

def compose_paths():
    if not compose:
        return ("skip", "compose not parsed")
    base = "deploy/docker"
    missing = []
    for name, svc in compose["services"].items():
        if "image" in svc and "build" not in svc:
            IMAGES.setdefault(svc["image"], "compose:" + name)
        b = svc.get("build")
        if b:
            ctx = os.path.normpath(os.path.join(base, b.get("context", ".")))
            df = os.path.join(ctx, b.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(df):
                missing.append(df)
        for v in svc.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith("."):
                p = os.path.normpath(os.path.join(base, src))
                if not os.path.exists(p):
                    missing.append(p)
            elif not src.startswith("/") and src not in (compose.get("volumes") or {}):
                missing.append("volume " + src)
    if missing:
        return "missing: " + ", ".join(missing)
check("compose names only paths in the repo", compose_paths)

# ---- ECS ------------------------------------------------------------------------------
# The capability names ECS accepts (API reference, KernelCapabilities): no BPF/PERFMON.
ECS_CAPS = set("""ALL AUDIT_CONTROL AUDIT_WRITE BLOCK_SUSPEND CHOWN DAC_OVERRIDE DAC_READ_SEARCH
FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD
NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW SETFCAP SETGID SETPCAP SETUID SYS_ADMIN
SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME
SYS_TTY_CONFIG SYSLOG WAKE_ALARM""".split())

def ecs_task():
    td = json.load(open("deploy/ecs/shadowtap-task-definition.json"))
    if td.get("networkMode") != "host":
        return "networkMode is not host"
    if "EC2" not in td.get("requiresCompatibilities", []):
        return "not an EC2 task"
    vols = {v["name"]: v.get("host", {}).get("sourcePath") for v in td.get("volumes", [])}
    (c,) = td["containerDefinitions"]
    IMAGES.setdefault(c["image"], "ecs task definition")
    caps = c.get("linuxParameters", {}).get("capabilities", {})
    if not c.get("privileged"):
        add = set(caps.get("add", []))
        if add - ECS_CAPS:
            return "capabilities ECS rejects: %s" % sorted(add - ECS_CAPS)
        if not ({"SYS_ADMIN"} <= add or {"BPF", "PERFMON"} <= add) or "NET_RAW" not in add:
            return "capabilities %s cannot load and attach the filter" % sorted(add)
    mounts = {m["containerPath"]: vols.get(m["sourceVolume"]) for m in c.get("mountPoints", [])}
    for p in ("/sys/fs/bpf", "/sys/kernel/btf"):
        if mounts.get(p) != p:
            return "%s not mounted from the host" % p
    if c.get("logConfiguration", {}).get("logDriver") != "awslogs":
        return "log driver is not awslogs"
    env = {e["name"] for e in c.get("environment", [])}
    if not {"ELASTICSEARCH_URL", "ES_PORT"} <= env:
        return "ELASTICSEARCH_URL/ES_PORT missing from the environment"
    svc = json.load(open("deploy/ecs/shadowtap-service.json"))
    if svc.get("schedulingStrategy") != "DAEMON":
        return "service is not a DAEMON"
    if svc.get("taskDefinition", "").split(":")[0] != td["family"]:
        return "service names task definition %s, file has %s" % (svc.get("taskDefinition"), td["family"])
check("ECS task and service definitions", ecs_task)

# ---- Kibana saved objects -------------------------------------------------------------
def kibana_file(path):
    objs = [json.loads(l) for l in open(path) if l.strip()]
    byid = {}
    for o in objs:
        if (o["type"], o["id"]) in byid:
            return "duplicate %s %s" % (o["type"], o["id"])
        byid[(o["type"], o["id"])] = o
    ids = {i for _, i in byid}
    for o in objs:
        a = o["attributes"]
        names = {r["name"] for r in o.get("references", [])}
        for r in o.get("references", []):
            if r["id"] not in ids:
                return "%s references missing id %s" % (o["id"], r["id"])
            if (r["type"], r["id"]) not in byid:
                return "%s references %s as type %s" % (o["id"], r["id"], r["type"])
        ss = a.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if ss:
            ref = json.loads(ss).get("indexRefName")
            if ref and ref not in names:
                return "%s: indexRefName %s has no reference" % (o["id"], ref)
        if o["type"] == "visualization":
            json.loads(a["visState"])
        if o["type"] == "dashboard":
            for p in json.loads(a["panelsJSON"]):
                if p["panelRefName"] not in names:
                    return "dashboard panel %s has no reference" % p["panelRefName"]
    dash = [o for o in objs if o["type"] == "dashboard"]
    if len(dash) != 1:
        return "%s: %d dashboards" % (path, len(dash))
    want = {o["id"] for o in objs if o["type"] in ("visualization", "search")}
    got = {r["id"] for r in dash[0]["references"]}
    if want - got:
        return "%s: dashboard lacks %s" % (path, sorted(want - got))
    if any("lens" == o["type"] for o in objs):
        return "lens objects do not import into OpenSearch Dashboards"
    return objs

def kibana():
    objs = kibana_file("deploy/kibana/shadowtap.ndjson")
    if isinstance(objs, str):
        return objs
    ip = [o for o in objs if o["type"] == "index-pattern"]
    if not ip or ip[0]["attributes"].get("title") != "shadowtap-*" or \
            ip[0]["attributes"].get("timeFieldName") != "@timestamp":
        return "no index pattern shadowtap-* on @timestamp"
    text = "\n".join(json.dumps(o) for o in objs)
    for f in ("diff.match", "url.path", "event.duration", "replay.duration"):
        if f not in text:
            return "no object uses %s" % f
check("Kibana NDJSON parses and every reference resolves", kibana)

# The differences dashboard: its own file (one dashboard per file), on shadowtap-diff-*;
# its Vega panels query diff_summary.fields as nested (the template maps it so).
def kibana_diff():
    objs = kibana_file("deploy/kibana/shadowtap-diff.ndjson")
    if isinstance(objs, str):
        return objs
    ip = [o for o in objs if o["type"] == "index-pattern"]
    if len(ip) != 1 or ip[0]["attributes"].get("title") != "shadowtap-diff-*":
        return "no index pattern shadowtap-diff-*"
    vega = [o for o in objs if o["type"] == "visualization" and json.loads(o["attributes"]["visState"])["type"] == "vega"]
    if len(vega) < 2:
        return "%d Vega panels, want the real and the noise ones" % len(vega)
    for o in vega:
        spec = json.loads(json.loads(o["attributes"]["visState"])["params"]["spec"])
        url = spec["data"]["url"]
        if url.get("index") != "shadowtap-diff-*" or not url.get("%context%"):
            return "%s: Vega data is not the dashboard's context on shadowtap-diff-*" % o["id"]
        if '"nested": {"path": "diff_summary.fields"}' not in json.dumps(url["body"]):
            return "%s: no nested aggregation on diff_summary.fields" % o["id"]
    text = "\n".join(json.dumps(o) for o in objs)
    for f in ("diff_summary.endpoint", "diff_summary.requests", "diff_summary.fields.verdict"):
        if f not in text:
            return "no object uses %s" % f
    # the compose file's one-shot import loads every saved-objects file
    compose = open("deploy/docker/docker-compose.yml").read()
    for n in os.listdir("deploy/kibana"):
        if n.endswith(".ndjson") and "file=@/%s" % n not in compose:
            return "docker-compose kibana-setup does not import %s" % n
check("Kibana differences dashboard (shadowtap-diff.ndjson): Vega panels with a nested query", kibana_diff)

# ---- Dockerfile and terraform image names ----------------------------------------------
def dockerfile():
    text = open("deploy/docker/Dockerfile").read()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for ref in re.findall(r"^FROM (\S+)", text, re.M):
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), ref)
        IMAGES.setdefault(ref, "Dockerfile")
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for p in src.split():
            if not os.path.exists(p):
                return "COPY source %s not in the repo" % p
    for k in ("ENTRYPOINT", "HEALTHCHECK", "STOPSIGNAL SIGTERM"):
        if not re.search(r"^" + k, text, re.M):
            return "no " + k
    if "--privileged" in text:
        return "mentions --privileged"
check("Dockerfile instructions and COPY sources", dockerfile)

for ref in re.findall(r'image\s*=\s*"([^"$]+)"', "".join(
        open(os.path.join("deploy/terraform", f)).read()
        for f in sorted(os.listdir("deploy/terraform")) if f.endswith(".tf"))):
    IMAGES.setdefault(ref, "terraform")

def own_image(ref):
    return ref.rsplit("/", 1)[-1].split(":")[0] == "shadowtap"

def image_refs():
    bad = []
    for ref, where in sorted(IMAGES.items()):
        if own_image(ref):
            continue
        if not re.fullmatch(r"([a-z0-9.-]+\.[a-z]{2,}/)?[a-z0-9._/-]+:[A-Za-z0-9._-]+", ref):
            bad.append("%s (%s)" % (ref, where))
        elif ref.endswith(":latest"):
            bad.append("%s (%s): unpinned" % (ref, where))
    if bad:
        return "; ".join(bad)
check("image references are well-formed and pinned (%d)" % len(IMAGES), image_refs)

def registry_lookup():
    import urllib.request, urllib.error
    def split(ref):
        name, tag = ref.rsplit(":", 1)
        host = name.split("/")[0]
        if "." not in host:
            host, name = "registry-1.docker.io", ("library/" + name if "/" not in name else name)
        else:
            name = name.split("/", 1)[1]
        return host, name, tag
    def head(url, token=None):
        req = urllib.request.Request(url, method="HEAD", headers={"Accept": ",".join([
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json"])})
        if token:
            req.add_header("Authorization", "Bearer " + token)
        return urllib.request.urlopen(req, timeout=8)
    missing, checked = [], 0
    for ref in sorted(IMAGES):
        if own_image(ref):
            continue
        host, name, tag = split(ref)
        url = "https://%s/v2/%s/manifests/%s" % (host, name, tag)
        try:
            head(url)
        except urllib.error.HTTPError as e:
            if e.code == 401:
                m = dict(re.findall(r'(\w+)="([^"]*)"', e.headers.get("WWW-Authenticate", "")))
                turl = "%s?service=%s&scope=repository:%s:pull" % (m.get("realm"), m.get("service", ""), name)
                tok = json.load(urllib.request.urlopen(turl, timeout=8))
                try:
                    head(url, tok.get("token") or tok.get("access_token"))
                except urllib.error.HTTPError as e2:
                    missing.append("%s (HTTP %d)" % (ref, e2.code))
            else:
                missing.append("%s (HTTP %d)" % (ref, e.code))
        except (urllib.error.URLError, OSError) as e:
            return ("skip", "%s unreachable: %s" % (host, getattr(e, "reason", e)))
        checked += 1
    if missing:
        return "not found: " + ", ".join(missing)
check("images exist in their public registries", registry_lookup)
EOF

# ---- Debian packages the Dockerfile installs exist in the configured archive -------------
pkgs=$(sed -n '/apt-get install/,/rm -rf/p' deploy/docker/Dockerfile |
	tr ' \\&' '\n\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
	grep -vxE 'apt-get|install|rm|update|y|qq|no-install-recommends' | sort -u)
# One apt-cache call: it reads the whole package cache each time it starts.
known=$(apt-cache show --no-all-versions $pkgs 2>/dev/null | sed -n 's/^Package: //p' | sort -u)
missing=""
for p in $pkgs; do
	echo "$known" | grep -qx "$p" || missing="$missing $p"
done
if [ -z "$pkgs" ]; then
	fail "Dockerfile packages exist in Debian" "no packages found in the Dockerfile"
elif [ -n "$missing" ]; then
	fail "Dockerfile packages exist in Debian" "unknown:$missing"
else
	pass "Dockerfile packages exist in Debian ($(echo $pkgs | wc -w))"
fi

# ---- nginx configs of serverA/serverB ---------------------------------------------------
if command -v nginx >/dev/null; then
	ok=1
	for s in serverA serverB; do
		printf 'pid %s/%s.pid;\nerror_log stderr;\nevents {}\nhttp {\n include %s/deploy/docker/nginx/%s.conf;\n}\n' \
			"$TMP" "$s" "$PWD" "$s" > "$TMP/$s.nginx.conf"
		if ! nginx -t -q -c "$TMP/$s.nginx.conf" > "$TMP/$s.nginx.log" 2>&1; then
			fail "nginx configs of serverA and serverB" "$s: $(grep -m 1 emerg "$TMP/$s.nginx.log")"
			ok=0
			break
		fi
	done
	[ "$ok" = 1 ] && pass "nginx configs of serverA and serverB"
else
	skip "nginx configs of serverA and serverB" "nginx not installed"
fi

# ---- terraform --------------------------------------------------------------------------
TF=$(command -v terraform || true)
[ -z "$TF" ] && [ -x "$HOME/go/bin/terraform" ] && TF=$HOME/go/bin/terraform
GO=/usr/local/go/bin/go
[ -x "$GO" ] || GO=$(command -v go || true)
if [ -z "$TF" ] && [ -n "$GO" ]; then
	GOFLAGS=-buildvcs=false timeout 900 "$GO" install github.com/hashicorp/terraform@v1.11.4 \
		> "$TMP/go.log" 2>&1 && TF=$HOME/go/bin/terraform
fi
# A CLI config that never points at the unreachable public registry by accident.
export TF_CLI_CONFIG_FILE=$TMP/terraformrc
: > "$TF_CLI_CONFIG_FILE"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

$PY - <<'EOF'
import os, re
want = """access_key secret_key aws_region aws_vpc env cluster key_name aws_ami instance_type
max_size min_size desired_capacity target_group health_check_path ELASTICSEARCH_URL ES_PORT""".split()
text = "".join(open(os.path.join("deploy/terraform", f)).read()
               for f in os.listdir("deploy/terraform") if f.endswith(".tf"))
blocks = dict(re.findall(r'variable\s+"(\w+)"\s*\{(.*?)\n\}', text, re.S))
bad = [v for v in want if v not in blocks or not re.search(r"^\s*default\s*=", blocks[v], re.M)]
ex = open("deploy/terraform/terraform.tfvars.example").read()
unknown = [k for k in re.findall(r"^(\w+)\s*=", ex, re.M) if k not in blocks]
if bad:
    print("FAIL: terraform keeps the original variables with defaults (missing: %s)" % " ".join(bad))
elif unknown:
    print("FAIL: terraform keeps the original variables with defaults (tfvars.example sets unknown %s)" % unknown)
else:
    print("PASS: terraform keeps the original variables with defaults")
EOF

if [ -z "$TF" ] && [ -z "$GO" ]; then
	skip "terraform fmt -check" "no terraform binary and no Go toolchain to build it"
	skip "terraform validate" "no terraform binary"
elif [ -z "$TF" ]; then
	# Go is here (setup.sh sees to it): a failed build is a failure, not a skip
	fail "terraform fmt -check" "go install of terraform failed: $(tail -n 1 "$TMP/go.log" 2>/dev/null)"
	skip "terraform validate" "no terraform binary"
else
	if out=$("$TF" -chdir=deploy/terraform fmt -check -recursive 2>&1); then
		pass "terraform fmt -check"
	else
		fail "terraform fmt -check" "unformatted: $(echo "$out" | tr '\n' ' ')"
	fi
	# validate needs the AWS provider schema. registry.terraform.io is not always
	# reachable; a provider built from the Go module proxy and cached next to the
	# terraform binary is used through dev_overrides instead.
	# services.tf reads ../docker/nginx: copy both, keeping the layout.
	mkdir -p "$TMP/deploy"
	cp -r deploy/terraform "$TMP/deploy/terraform"
	cp -r deploy/docker "$TMP/deploy/docker"
	ln -s deploy/terraform "$TMP/tf"
	rm -rf "$TMP/tf/.terraform" "$TMP/tf/.terraform.lock.hcl"
	prov=""
	for p in "${SHADOWTAP_TF_PROVIDER_AWS:-}" "$HOME/go/bin/terraform-provider-aws"; do
		[ -n "$p" ] && [ -x "$p" ] && { prov=$p; break; }
	done
	how=""
	if [ -n "$prov" ]; then
		cat > "$TF_CLI_CONFIG_FILE" <<EOF
provider_installation {
  dev_overrides {
    "hashicorp/aws" = "$(dirname "$prov")"
  }
  direct {}
}
EOF
		how="provider from $prov"
	elif timeout 60 "$TF" -chdir="$TMP/tf" init -backend=false -input=false > "$TMP/init.log" 2>&1; then
		how="provider from the registry"
	fi
	if [ -z "$how" ]; then
		skip "terraform validate" "AWS provider unavailable: registry.terraform.io unreachable and no provider cached at ~/go/bin/terraform-provider-aws"
	elif out=$("$TF" -chdir="$TMP/tf" validate -no-color 2>&1); then
		pass "terraform validate ($how)"
	else
		fail "terraform validate" "$(echo "$out" | grep -E 'Error|on ' | head -n 3 | tr '\n' ' ')"
	fi
fi

# ---- systemd unit -----------------------------------------------------------------------
unit=deploy/systemd/shadowtap.service
why=""
grep -q '^User=' "$unit" && ! grep -q '^User=root' "$unit" || why="runs as root"
for k in '^AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_RAW' '^CapabilityBoundingSet=' \
	'^Restart=on-failure' '^StateDirectory=shadowtap' '^EnvironmentFile=-/etc/default/shadowtap' \
	'--spool-dir /var/lib/shadowtap/spool' '^NoNewPrivileges=yes'; do
	grep -qe "$k" "$unit" || why="${why:+$why; }no $k"
done
if grep -qE '^CapabilityBoundingSet=.*CAP_SYS_ADMIN' "$unit"; then
	why="${why:+$why; }keeps CAP_SYS_ADMIN"
fi
if [ -z "$why" ]; then
	pass "systemd unit: non-root with ambient capabilities"
else
	fail "systemd unit: non-root with ambient capabilities" "$why"
fi
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze verify" "systemd-analyze not installed"
else
	# verify insists that ExecStart exists: point it at the built agent (or /bin/true).
	exe=/bin/true
	[ -x build/shadowtap ] && exe=$PWD/build/shadowtap
	sed "s|^ExecStart=/usr/local/bin/shadowtap|ExecStart=$exe|" "$unit" > "$TMP/shadowtap.service"
	if out=$(cd "$TMP" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$TMP/shadowtap.service" 2>&1) &&
		[ -z "$out" ]; then
		pass "systemd-analyze verify"
	else
		fail "systemd-analyze verify" "$(echo "$out" | head -n 2 | tr '\n' ' ')"
	fi
fi

# ---- README names files that exist --------------------------------------------------------
if [ -f deploy/README.md ]; then
	miss=""
	for p in $(grep -oE '(deploy|scripts|tests)/[A-Za-z0-9_./-]+[A-Za-z0-9_]' deploy/README.md | sort -u); do
		[ -e "$p" ] || miss="$miss $p"
	done
	if [ -z "$miss" ]; then
		pass "deploy/README.md names only files that exist"
	else
		fail "deploy/README.md names only files that exist" "missing:$miss"
	fi
else
	fail "deploy/README.md names only files that exist" "no deploy/README.md"
fi
exit 0
