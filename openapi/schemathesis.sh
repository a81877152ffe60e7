#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a running okod with DPDK ports and checks that no response is a 5xx
# or breaks openapi/openapi.yaml. okod serves bridge br0 with a net_null sink, a looping net_ring port
# and (when clang is installed) filter program 1 with its map, so program and map routes answer with
# real resources; the spec's examples point at them. Authenticated routes get the admin token.
# Usage: openapi/schemathesis.sh PATH/TO/okod [seconds]   (default 100 s of fuzzing; ST_ARGS adds options)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
okod=${1:?usage: schemathesis.sh PATH/TO/okod [seconds]}
seconds=${2:-100}

python3 -c 'import schemathesis' 2>/dev/null || python3 -m pip install -q 'schemathesis>=4,<5'

work=$(mktemp -d)
okod_pid=
cleanup() {
    if [ -n "$okod_pid" ]; then kill "$okod_pid" 2>/dev/null || true; wait "$okod_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
printf 'admin %s schemathesis\n' "$token" > "$work/tokens"
cat > "$work/okod.yaml" <<YAML
dpdk:
  eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
  mbufs: 4096
stats_interval: 0
api: {listen: "127.0.0.1:0", token_file: "$work/tokens"}
openflow: {listen: "127.0.0.1:0"}
bridges:
  - name: br0
    ports:
      - devargs: "net_null0,no-rx=1"
      - devargs: "net_ring0"
    flows:
      - "priority=10,in_port=1,actions=output:2"
      - "priority=10,in_port=2,actions=output:1"
YAML
"$okod" --config "$work/okod.yaml" > "$work/okod.log" 2>&1 &
okod_pid=$!
port=
for _ in $(seq 300); do
    port=$(grep -o 'management API listening on 127.0.0.1:[0-9]*' "$work/okod.log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    kill -0 "$okod_pid" 2>/dev/null || { cat "$work/okod.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { echo "okod did not start:" >&2; cat "$work/okod.log" >&2; exit 1; }
base="http://127.0.0.1:$port"

if command -v clang >/dev/null; then
    clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -I "$root/examples/bpf" \
        -c "$root/examples/bpf/stateless-firewall.c" -o "$work/firewall.o"
    curl -sS -f -o /dev/null -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
        --data-binary "@$work/firewall.o" "$base/v1/bridges/br0/programs/1"
fi

# Pass 1 (60% of the time) aims at the real resources (bridge br0, its ports and rules 1-2, program 1 and
# its map) so requests reach the logic behind the 404s; it leaves out deleting the bridge and the program.
# Pass 2 generates every parameter freely, deletions included.
cat > "$work/real-resources.toml" <<'TOML'
[parameters]
"path.bridge" = "br0"
"path.port" = 1
"path.flow" = 1
"path.program" = 1
"path.map" = "blocked"

[[operations]]
include-operation-id = ["deleteBridge", "deleteProgram"]
enabled = false
TOML
: > "$work/free.toml"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance
checks=$checks,response_schema_conformance,negative_data_rejection,unsupported_method
status=0
run_pass() {
    local config=$1 budget=$2
    (cd "$work" && timeout $((budget + 60)) python3 -m schemathesis.cli --config-file "$config" run "$root/openapi/openapi.yaml" --url "$base" \
        -H "Authorization: Bearer $token" --checks "$checks" --max-time "$budget" --workers 1 \
        --request-timeout 30 --suppress-health-check all --seed "${ST_SEED:-1}" ${ST_ARGS:-}) || status=1
}
run_pass "$work/real-resources.toml" $((seconds * 6 / 10))
run_pass "$work/free.toml" $((seconds * 4 / 10))
if ! kill -0 "$okod_pid" 2>/dev/null; then
    echo "okod died during the schemathesis run:" >&2
    tail -50 "$work/okod.log" >&2
    status=1
fi
exit $status
