# Helpers shared by docs/runbook-cart.sh, runbook-chat.sh and runbook-iot.sh (sourced, not run).
#
# Everything goes through ringctl and its --json output; JSON is read with python3 (ringctl
# needs it anyway), so the runbooks need no jq. The environment they read:
#
#   RUNBOOK_CLUSTER   cluster name (each runbook has its own default; it is removed and created
#                     afresh)
#   RUNBOOK_PORT      port of every node (default 7400)
#   RUNBOOK_KEEP=1    leave the cluster running at the end
#   RINGCTL_HOME      as for ringctl itself
# shellcheck shell=bash

PORT="${RUNBOOK_PORT:-7400}"

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }
die() {
  printf 'runbook: FAILED: %s\n' "$*" >&2
  exit 1
}

# jpy EXPR: evaluate the Python expression EXPR with d = the JSON document on stdin, print it.
jpy() {
  python3 -c '
import json, sys, time
d = json.load(sys.stdin)
value = eval("(" + sys.argv[1].strip() + ")", {"d": d, "now": time.time()})
print(value if isinstance(value, str) else json.dumps(value))
' "$1"
}

# jtest EXPR: succeed if the Python expression EXPR is true of the JSON document d on stdin.
jtest() { [ "$(jpy "bool($1)")" = true ]; }

# fresh_cluster ARGS...: remove the cluster, start it afresh with ARGS (ringctl cluster start
# options) and set ADDR[N] to node N's address. It is stopped when the runbook exits.
ADDR=()
fresh_cluster() {
  local status
  ringctl cluster remove "$CLUSTER" >/dev/null 2>&1 || true
  ringctl cluster start --name "$CLUSTER" --port "$PORT" "$@" >/dev/null
  status="$(ringctl cluster status --json)"
  for n in $(jpy '" ".join(str(n["number"]) for n in d["nodes"])' <<<"$status"); do
    ADDR[n]="$(jpy "d['nodes'][$n - 1]['address']" <<<"$status")"
  done
  ok "cluster '$CLUSTER' is up: $(jpy '" ".join(
      "%s=%s (%s)" % (n["node"], n["address"], n["dc"]) for n in d["nodes"])' <<<"$status")"
}

WORK="$(mktemp -d)"  # scratch files, removed at exit
BACKGROUND=()        # pids of background commands, stopped at exit if still running

finish() {
  local pid
  for pid in "${BACKGROUND[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
  if [ "${RUNBOOK_KEEP:-0}" = 1 ]; then
    echo "cluster '$CLUSTER' keeps running; 'ringctl cluster remove $CLUSTER' deletes it"
  else
    ringctl cluster stop --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}

trap finish EXIT

# number_of ADDRESS: the node number of the node at ADDRESS.
number_of() {
  local n
  for n in "${!ADDR[@]}"; do
    [ "${ADDR[n]}" != "$1" ] || echo "$n"
  done
}

# wait_until SECONDS WHAT COMMAND...: run COMMAND until it succeeds, at most SECONDS.
wait_until() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -lt "$limit" ] || die "not within ${limit}s: $what"
    sleep 0.2
  done
  ok "$what (after $((SECONDS - start)) s)"
}

# all_up: every node answers and is seen up by every node.
all_up() {
  ringctl cluster status --json |
    jtest 'all(n["status"] == "UP" and len(n["seen_up_by"]) == len(d["nodes"]) for n in d["nodes"])'
}

# hint_bytes: bytes of hints not yet delivered, summed over the nodes that answer.
hint_bytes() {
  local n bytes total=0
  for n in "${!ADDR[@]}"; do
    bytes="$(ringctl netstats --json --host "${ADDR[n]}" 2>/dev/null |
      jpy 'sum(h["bytes"] for h in d["hints"])')" || continue
    total=$((total + bytes))
  done
  echo "$total"
}

# no_hints: no node holds an undelivered hint.
no_hints() { [ "$(hint_bytes)" -eq 0 ]; }

# staleness KS: per node, the staleness metrics as the views show them: hints waiting to be
# delivered (netstats: bytes and the age of the oldest), reads whose replicas disagreed and the
# repair writes they sent (netstats read_repair: attempted / repaired_blocking), and how long
# ago the least recently repaired of the node's ranges of KS was repaired (repair status).
staleness() {
  local n net age
  printf '   %-6s %-26s %-22s %s\n' node "hints pending" "digest mismatch/repair" \
    "repair age of $1"
  for n in "${!ADDR[@]}"; do
    if ! net="$(ringctl netstats --json --host "${ADDR[n]}" 2>/dev/null)"; then
      printf '   %-6s (down)\n' "node$n"
      continue
    fi
    age="$(ringctl repair status --json --host "${ADDR[n]}" | jpy "
        [('%.1f s' % (now - k['oldest_repair']) if k['never_repaired'] == 0 else
          'never (%d of %d ranges)' % (k['never_repaired'], k['ranges']))
         for k in d['keyspaces'] if k['keyspace'] == '$1'][0]")"
    printf '   %-6s %-26s %-22s %s\n' "node$n" "$(jpy '
        "%d B, oldest %.1f s" % (sum(h["bytes"] for h in d["hints"]),
        now - min(h["oldest_ms"] for h in d["hints"]) / 1000) if d["hints"] else "none"' \
      <<<"$net")" "$(jpy '"%d / %d" % (d["read_repair"]["attempted"],
        d["read_repair"]["repaired_blocking"])' <<<"$net")" "$age"
  done
}
