#!/usr/bin/env bash
# Runbook: the quorum scenarios of leaderless replication, walked on a local 3-node cluster.
#
#   n=3, w=2, r=2        a write and a read that overlap in at least one replica (w + r > n)
#   a node down          w=2 still succeeds; w=3 fails at once with exit 3 (UNAVAILABLE)
#   the node returns     a QUORUM read returns the newest value, whichever replicas it asks
#   tombstones           a delete the returning node missed still wins: the row stays deleted
#   stale reads          with r=1 the returning node answers alone, with the old value
#
# It uses only ringctl, its exit codes and --json (JSON is read with python3, no jq), so every
# step is also an example for scripts. Run it with ringctl on PATH:
#
#   docs/runbook-quorum.sh
#
# Environment: RUNBOOK_CLUSTER (cluster name, default "quorum"; it is removed and created
# afresh), RUNBOOK_PORT (default 7400), RUNBOOK_KEEP=1 to leave the cluster running at the end,
# and RINGCTL_HOME as for ringctl itself.
set -euo pipefail

CLUSTER="${RUNBOOK_CLUSTER:-quorum}"
PORT="${RUNBOOK_PORT:-7400}"
ERR="$(mktemp)"

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
die() {
  printf 'runbook: FAILED: %s\n' "$*" >&2
  exit 1
}

finish() {
  rm -f "$ERR"
  if [ "${RUNBOOK_KEEP:-0}" != 1 ]; then
    ringctl cluster stop --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap finish EXIT

# json PATH: print the value at PATH (dot-separated keys and list indexes) of the JSON on stdin.
json() {
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for part in filter(None, sys.argv[1].split(".")):
    value = value[int(part)] if isinstance(value, list) else value[part]
print(value if isinstance(value, str) else json.dumps(value))
' "$1"
}

# expect_exit CODE COMMAND...: run COMMAND, which must exit with CODE.
expect_exit() {
  local want=$1 got=0
  shift
  "$@" >/dev/null 2>"$ERR" || got=$?
  [ "$got" -eq "$want" ] || die "'$*' exited $got, expected $want: $(cat "$ERR")"
}

# name_of KEYSPACE KEY [get options...]: the "name" column of a row.
name_of() {
  local keyspace=$1 key=$2
  shift 2
  ringctl get "$keyspace" "$key" --json "$@" | json columns.name
}

# expect_name WANT KEYSPACE KEY [get options...]
expect_name() {
  local want=$1 got
  shift
  got="$(name_of "$@")"
  [ "$got" = "$want" ] || die "ringctl get $* returned name=$got, expected $want"
  ok "get $* -> $got"
}

step "A fresh 3-node cluster '$CLUSTER' with keyspace demo (replication factor 3)"
ringctl cluster remove "$CLUSTER" >/dev/null 2>&1 || true
ringctl cluster start --name "$CLUSTER" -n 3 --port "$PORT" --rf 3 --keyspace demo
# ringctl commands without --host talk to the current cluster's first live node (node1)
STATUS="$(ringctl cluster status --json)"
ADDRESSES=()
for i in 0 1 2; do
  ADDRESSES+=("$(json "nodes.$i.address" <<<"$STATUS")")
done
NODE3="${ADDRESSES[2]}"

step "n=3, w=2, r=2: every read quorum overlaps every write quorum (w + r > n)"
acks="$(ringctl put demo user:1 '{"name": "Alice"}' -w 2 --json | json acks)"
[ "$acks" -ge 2 ] || die "w=2 write returned $acks acks"
ok "write with w=2: $acks acks"
expect_name Alice demo user:1 -r 2

step "Node 3 goes down: w=2 still succeeds, w=3 cannot be met"
ringctl cluster node 3 stop --wait
ringctl put demo user:1 '{"name": "Bob"}' -w 2 >/dev/null
ok "write with w=2 while node 3 is down"
expect_exit 3 ringctl put demo user:1 '{"name": "Carol"}' -w 3
ok "write with w=3 fails with exit 3: $(cat "$ERR")"

step "Node 3 returns with the old value: a QUORUM read still returns the newest"
ringctl cluster node 3 start >/dev/null
expect_name Bob demo user:1 -c QUORUM
expect_name Bob demo user:1 -c QUORUM --host "$NODE3"

step "Tombstones: a delete that node 3 missed survives its return"
ringctl put demo user:2 '{"name": "Dave"}' -c ALL >/dev/null
ringctl cluster node 3 stop --wait
ringctl delete demo user:2 -w 2 >/dev/null
ok "deleted user:2 with w=2 while node 3 is down"
ringctl cluster node 3 start >/dev/null
for address in "${ADDRESSES[@]}"; do
  expect_exit 1 ringctl get demo user:2 -c QUORUM --host "$address"
  ok "QUORUM read coordinated by $address: user:2 not found"
done

step "Stale reads: with r=1 (w + r <= n) a replica that missed a write answers alone"
# hinted handoff off, so that nothing brings node 3 up to date behind our back
ringctl keyspace create nohints --rf 3 --no-hinted-handoff --if-not-exists >/dev/null
ringctl put nohints user:3 '{"name": "version 4"}' -c ALL >/dev/null
ringctl cluster node 3 stop --wait
ringctl put nohints user:3 '{"name": "version 5"}' -w 2 >/dev/null
ok "wrote version 5 with w=2 while node 3 is down"
ringctl cluster node 3 start >/dev/null
expect_name "version 4" nohints user:3 -r 1 --host "$NODE3"
ok "stale: node 3 alone still has version 4"
expect_name "version 5" nohints user:3 -c QUORUM --host "$NODE3"

step "All scenarios behaved as the quorum arithmetic says"
if [ "${RUNBOOK_KEEP:-0}" = 1 ]; then
  echo "cluster '$CLUSTER' keeps running; 'ringctl cluster remove $CLUSTER' deletes it"
else
  echo "stopping cluster '$CLUSTER'; 'ringctl cluster remove $CLUSTER' deletes it"
fi
