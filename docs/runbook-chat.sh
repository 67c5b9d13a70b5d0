#!/usr/bin/env bash
# Runbook: a chat app on two datacenters, on a local cluster of 2 + 2 nodes, through a
# datacenter partition and its heal, with the staleness metrics moving.
#
#   LOCAL_QUORUM            each datacenter writes and reads at a quorum of its own replicas
#                           (a room is one row, each message a column): no wait on the WAN
#   datacenter partition    both sides keep chatting; each sees only its own side's messages;
#                           writes to the other side are dropped (tpstats) and kept as hints
#   heal, then read repair  a read at ALL finds the replicas' digests differ, merges the
#                           versions and writes the missing messages back (netstats)
#   repair                  a room nobody read is brought together by Merkle-tree repair
#   hints delivered         the hint backlog drains to 0
#   final check             every node alone (LOCAL_ONE) shows every message of both rooms
#
# Run it with ringctl on PATH: docs/runbook-chat.sh. Environment: RUNBOOK_CLUSTER (default
# "chat"), RUNBOOK_PORT (default 7400), RUNBOOK_KEEP=1, RINGCTL_HOME (docs/runbook-lib.sh).
set -euo pipefail
CLUSTER="${RUNBOOK_CLUSTER:-chat}"
# shellcheck source=docs/runbook-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/runbook-lib.sh"

# post NODE ROOM ID TEXT: post a message through node NODE at LOCAL_QUORUM.
post() {
  ringctl put chat "room:$2" "{\"$3\": \"$4\"}" -c LOCAL_QUORUM --host "${ADDR[$1]}" >/dev/null
  ok "node$1 posts $3 to room:$2 (LOCAL_QUORUM): $4"
}
# both_sides_keep_hints: node1 and node3 each keep hints for both nodes of the other side.
both_sides_keep_hints() {
  ringctl netstats --json --host "${ADDR[1]}" | jtest 'len(d["hints"]) == 2' &&
    ringctl netstats --json --host "${ADDR[3]}" | jtest 'len(d["hints"]) == 2'
}
# messages NODE ROOM LEVEL: the message ids of a room, read through node NODE at LEVEL.
messages() {
  ringctl get chat "room:$2" -c "$3" --host "${ADDR[$1]}" --json |
    jpy '" ".join(sorted(d["columns"]))'
}
# expect NODE ROOM LEVEL WANT: the room read through NODE at LEVEL holds exactly WANT.
expect() {
  local got
  got="$(messages "$1" "$2" "$3")"
  [ "$got" = "$4" ] || die "node$1 read room:$2 at $3: '$got', expected '$4'"
  ok "node$1 reads room:$2 at $3: $got"
}

step "Two datacenters: dc1 = node1, node2; dc2 = node3, node4; keyspace chat with 2 replicas in each"
# background anti-entropy off, so that no step happens behind the runbook's back
fresh_cluster -n 2:2 --conf anti_entropy=false
ringctl keyspace create chat --replication dc1:2,dc2:2 >/dev/null

step "Normal operation: writes at LOCAL_QUORUM reach the other datacenter soon after"
post 1 general m01 "alice: hello from dc1"
wait_until 10 "node3 (dc2) reads m01 at LOCAL_QUORUM" expect 3 general LOCAL_QUORUM m01

step "The datacenters lose each other (every message between them is dropped)"
# hint delivery paused everywhere, so that read repair and repair can be seen doing their work
for n in 1 2 3 4; do ringctl pausehandoff --host "${ADDR[n]}" >/dev/null; done
for pair in "1 3" "1 4" "2 3" "2 4"; do
  # shellcheck disable=SC2086  # two node numbers
  ringctl cluster partition $pair >/dev/null
done
post 1 general m02 "alice: anyone there?"
post 3 general m03 "bob: hello from dc2"
post 1 random m04 "alice: lunch?"
post 3 random m05 "bob: pizza"
expect 2 general LOCAL_QUORUM "m01 m02"
expect 4 general LOCAL_QUORUM "m01 m03"
wait_until 30 "node1 keeps hints for dc2, node3 for dc1" both_sides_keep_hints
say "$(ringctl tpstats --json | jpy '"node1 tpstats: %d mutate messages dropped" %
  [m["dropped"] for m in d["messages"] if m["type"] == "mutate"][0]')"
staleness chat

step "The partition heals"
ringctl cluster heal >/dev/null
wait_until 30 "every node sees every node up" all_up

step "Read repair: a read at ALL finds the replicas disagree and repairs them"
expect 3 general LOCAL_QUORUM "m01 m03"
expect 3 general ALL "m01 m02 m03"
say "$(ringctl netstats --json --host "${ADDR[3]}" | jpy '"node3 netstats read repair: \
%(attempted)d mismatch, %(reconcile)d reconciled, %(repaired_blocking)d repair writes" %
  d["read_repair"]')"
expect 4 general LOCAL_ONE "m01 m02 m03"
expect 1 general LOCAL_ONE "m01 m02 m03"

step "Repair: room:random, which nobody read, is brought together by Merkle trees"
expect 3 random LOCAL_QUORUM "m05"
say "$(ringctl repair chat --host "${ADDR[3]}" --json | jpy '"repair %s: %d of %d ranges, \
%d rows streamed (%d bytes)" % (d["state"], d["ranges_done"], d["ranges_total"],
  d["rows_streamed"], d["bytes_streamed"])')"
expect 3 random LOCAL_QUORUM "m04 m05"

step "Hint delivery resumes: the hint backlog drains"
for n in 1 2 3 4; do ringctl resumehandoff --host "${ADDR[n]}" >/dev/null; done
wait_until 30 "no hints pending on any node" no_hints
staleness chat

step "Final check: every node alone (LOCAL_ONE) has every message"
for n in 1 2 3 4; do
  expect "$n" general LOCAL_ONE "m01 m02 m03"
  expect "$n" random LOCAL_ONE "m04 m05"
done
echo
echo "Both datacenters chatted through the partition; after heal and repair all agree."
