"""``python -m tests.sim --seed N --steps S``: run (or replay) simulated seeds."""

from __future__ import annotations

import argparse
import logging
import sys

from .runner import Options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed")
    parser.add_argument("--steps", type=int, default=2000, help="client operations and faults")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument(
        "--early-clients",
        action="store_true",
        help="send client requests to a restarted node at once (Options.early_clients)",
    )
    parser.add_argument(
        "--handoff",
        action="store_true",
        help="writes mostly at ONE; after the heal wait for hinted handoff and check every "
        "acknowledged write is on every replica (Options.handoff)",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="hints off; after the heal repair every node (-pr) and compare every range's "
        "Merkle roots on its replicas (Options.repair)",
    )
    parser.add_argument("--log", action="store_true", help="print the operation log")
    parser.add_argument("-v", "--verbose", action="store_true", help="ringd's INFO logs too")
    ns = parser.parse_args(argv)
    if ns.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    failed = 0
    total_ops = 0
    total_wall = 0.0
    for seed in range(ns.seed, ns.seed + ns.seeds):
        result = run(
            Options(
                seed=seed,
                steps=ns.steps,
                nodes=ns.nodes,
                early_clients=ns.early_clients,
                handoff=ns.handoff,
                repair=ns.repair,
            )
        )
        total_ops += result.ops
        total_wall += result.wall_seconds
        if ns.log:
            print("\n".join(result.log))
        status = "ok" if result.ok else f"FAILED ({len(result.failures)})"
        print(
            f"seed {seed}: {status}: {result.ops} ops, {result.virtual_seconds:.1f}s virtual, "
            f"{result.wall_seconds:.2f}s wall, {result.events} events, digest {result.digest[:16]}"
        )
        print("  " + ", ".join(f"{k}: {v}" for k, v in result.outcomes.items()))
        if result.stats:
            print("  " + ", ".join(f"{k}: {v}" for k, v in result.stats.items()))
        for failure in result.failures[:20]:
            print(f"  - {failure}")
        failed += not result.ok
    if ns.seeds > 1:
        print(f"{ns.seeds} seeds, {failed} failed: {total_ops} ops in {total_wall:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
