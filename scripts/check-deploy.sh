#!/usr/bin/env bash
# Checks the deployment files: Prometheus config and alert rules (promtool), Kubernetes manifests and
# the Grafana dashboard (syntax, and every metric they use is one okod exports), the example okod.yaml
# (okod's own parser). Run by `scripts/oko test`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
okod=${1:?usage: check-deploy.sh PATH/TO/okod}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The scrape config names a token file that exists only on a real Prometheus host.
cp "$root/deploy/prometheus/oko-alerts.yml" "$work/"
: > "$work/token"
sed "s#/etc/prometheus/oko-read.token#$work/token#" "$root/deploy/prometheus/prometheus.yml" > "$work/prometheus.yml"
promtool check config "$work/prometheus.yml"
promtool check rules "$root/deploy/prometheus/oko-alerts.yml"

"$okod" --config "$root/deploy/okod.yaml" --check-config
"$okod" --config "$root/deploy/demo.yaml" --check-config

python3 - "$root" "$okod" <<'PY'
import json, re, subprocess, sys, tempfile, yaml
root, okod = sys.argv[1], sys.argv[2]
docs = list(yaml.safe_load_all(open(f"{root}/deploy/kubernetes/okod-daemonset.yaml")))
kinds = [d["kind"] for d in docs]
assert kinds == ["Namespace", "ConfigMap", "DaemonSet"], kinds
config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["okod.yaml"]
with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
    f.write(config); f.flush()
    subprocess.run([okod, "--config", f.name, "--check-config"], check=True)
dashboard = json.load(open(f"{root}/deploy/grafana/oko-dashboard.json"))
exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
rules = open(f"{root}/deploy/prometheus/oko-alerts.yml").read()
used = set(re.findall(r"\boko_[a-z_]+", " ".join(exprs) + rules))
documented = set(re.findall(r"`(oko_[a-z_]+)`", open(f"{root}/README.md").read()))
missing = sorted(used - documented)
assert not missing, f"metrics used by deploy/ but not documented in README.md: {missing}"
print(f"deploy: {len(docs)} manifests, {len(exprs)} dashboard queries, {len(used)} metrics checked")
PY

# deploy/okod.yaml documents every option: each key okod's parser accepts appears in it.
python3 - "$root" <<'PY'
import re, sys
root = sys.argv[1]
source = open(f"{root}/Sources/okod/Configuration.swift").read()
keys = set()
for allowed in re.findall(r"finish\(allowed: \[(.*?)\]\)", source, re.S):
    keys |= set(re.findall(r'"([a-z_]+)"', allowed))
example = open(f"{root}/deploy/okod.yaml").read()
missing = sorted(k for k in keys if not re.search(rf"(^|[\s{{,-]){k}:", example, re.M))
assert not missing, f"deploy/okod.yaml does not show these options: {missing}"
print(f"deploy/okod.yaml shows all {len(keys)} configuration keys")
PY
