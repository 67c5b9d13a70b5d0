#!/usr/bin/env bash
# Runbook: a shopping cart that always takes writes (Dynamo's use case), on a local 4-node
# cluster, with the staleness metrics moving as the replicas fall behind and catch up.
#
#   n=3, w=2, r=2, sloppy quorum   a cart is one row, each item a column (merged per cell)
#   a replica goes down            checkout still succeeds, even at w=3: a live node past the
#                                  replicas stands in for the down one and keeps its writes
#                                  as hints; hints pile up (netstats, listpendinghints)
#   it comes back, handoff paused  it serves the old cart at ONE: stale
#   repair (anti-entropy)          Merkle trees find the differing rows and stream them: it
#                                  reads the whole cart; the repair age of its ranges resets
#   handoff resumed                the stand-in's hints are delivered: pending hints go to 0
#   final check                    the returned node alone (ONE) reads the complete cart
#
# Run it with ringctl on PATH: docs/runbook-cart.sh. Environment: RUNBOOK_CLUSTER (default
# "cart"), RUNBOOK_PORT (default 7400), RUNBOOK_KEEP=1, RINGCTL_HOME (docs/runbook-lib.sh).
set -euo pipefail
CLUSTER="${RUNBOOK_CLUSTER:-cart}"
# shellcheck source=docs/runbook-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/runbook-lib.sh"

cart() { ringctl get shop cart:alice --json "$@" | jpy '" ".join(sorted(d["columns"]))'; }

step "A fresh 4-node cluster; keyspace shop: n=3 with sloppy quorum"
# background anti-entropy off, so that no step happens behind the runbook's back: 'ringctl
# repair' below is the same Merkle-tree repair, on demand (docs/repair.md)
fresh_cluster -n 4 --conf anti_entropy=false
ringctl keyspace create shop --rf 3 --sloppy-quorum >/dev/null
REPLICAS="$(ringctl getendpoints shop cart:alice --json | jpy '" ".join(d["endpoints"])')"
say "replicas of cart:alice: $REPLICAS"
# a replica of the cart goes down: its first, or its second when that is node1, which
# coordinates every request here (ringctl's default node)
DOWN="$(number_of "${REPLICAS%% *}")"
[ "$DOWN" != 1 ] || DOWN="$(number_of "$(cut -d' ' -f2 <<<"$REPLICAS")")"

step "Alice fills her cart with w=2, reads it with r=2"
ringctl put shop cart:alice '{"book": 1}' -w 2 >/dev/null
ringctl put shop cart:alice '{"pen": 3}' -w 2 >/dev/null
ok "cart at r=2: $(cart -r 2)"

step "node$DOWN (a replica of the cart) goes down during checkout"
ringctl cluster node "$DOWN" stop --wait >/dev/null
STANDIN="$(ringctl getendpoints shop cart:alice --json | jpy 'list(d["fallbacks"].values())[0]')"
say "getendpoints: ${ADDR[DOWN]} (down) is stood in for by $STANDIN (node$(number_of "$STANDIN"))"
for item in '{"lamp": 1}' '{"mug": 2}' '{"checkout": "paid"}'; do
  acks="$(ringctl put shop cart:alice "$item" -w 2 --json | jpy 'd["acks"]')"
  ok "put $item with w=2: $acks acks"
done
acks="$(ringctl put shop cart:alice '{"gift_wrap": true}' -w 3 --json | jpy 'd["acks"]')"
ok "even w=3 succeeds ($acks acks): the stand-in's acknowledgement counts"
FULL="book checkout gift_wrap lamp mug pen"
[ "$(cart -r 2)" = "$FULL" ] || die "the cart at r=2 is not $FULL"
ok "cart at r=2 while node$DOWN is down: $FULL"
say "hints pile up for node$DOWN:"
staleness shop

step "node$DOWN comes back with hint delivery paused: it is stale"
for n in "${!ADDR[@]}"; do
  [ "$n" = "$DOWN" ] || ringctl pausehandoff --host "${ADDR[n]}" >/dev/null
done
ringctl cluster node "$DOWN" start >/dev/null
STALE="$(cart -c ONE --host "${ADDR[DOWN]}")"
[ "$STALE" = "book pen" ] || die "node$DOWN read '$STALE' at ONE, expected the old cart"
ok "node$DOWN alone (ONE) still has the old cart: $STALE"

step "Anti-entropy: repair shop on node$DOWN streams the rows it missed"
say "$(ringctl repair shop --host "${ADDR[DOWN]}" --json | jpy '"repair %s: %d of %d ranges, \
%d rows streamed (%d bytes)" % (d["state"], d["ranges_done"], d["ranges_total"],
  d["rows_streamed"], d["bytes_streamed"])')"
[ "$(cart -c ONE --host "${ADDR[DOWN]}")" = "$FULL" ] || die "node$DOWN is still stale after repair"
ok "node$DOWN alone (ONE) now reads the whole cart: $FULL"
staleness shop

step "Hint delivery resumes: the stand-in hands node$DOWN's writes off"
for n in "${!ADDR[@]}"; do
  [ "$n" = "$DOWN" ] || ringctl resumehandoff --host "${ADDR[n]}" >/dev/null
done
wait_until 30 "no hints pending on any node" no_hints
say "$(ringctl listpendinghints --host "$STANDIN" --json | jpy '"hints kept by the \
stand-in: %d, delivered: %d" % (d["totals"]["created"], d["totals"]["delivered"])')"
staleness shop

step "Final check: node$DOWN alone (ONE) reads the complete cart"
FINAL="$(cart -c ONE --host "${ADDR[DOWN]}")"
[ "$FINAL" = "$FULL" ] || die "node$DOWN read '$FINAL' at ONE, expected $FULL"
ok "cart at ONE from node$DOWN: $FINAL"
echo
echo "The cart took every write with a replica down and converged."
