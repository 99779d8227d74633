"""Several closure detectors as one file, with the threshold chosen for their average.

    python -m engine.closure.ensemble --member a.npz --member b.npz --member c.npz \\
        --choose-on data/corpus_v2@unseen-flite --no-more-spurious-than a.npz --out fold.npz
    python -m engine.closure.ensemble --member ... --threshold-of fold.npz --out shipped.npz

Averaging lowers the probability peaks, so a one-network threshold would find fewer p/b/m. The
threshold is chosen, not typed: the lowest one whose spurious closures per p/b/m on a view (a TTS
engine the members never heard) stay within those of a reference detector at its own threshold on
the same clips. The shipped file takes the threshold its fold twin chose (`--threshold-of`), since
the shipped members heard every engine and have none left to choose on.
"""

from __future__ import annotations

import argparse
import sys

from engine.closure.detector import ClosureDetector, ClosureDetectorError, read_detector, save_detector


def combine(members: list[ClosureDetector], threshold: float, choice: dict) -> ClosureDetector:
    """One detector averaging `members` (all reading the same input kind), closing at `threshold`."""
    kinds = {member.info.get("input", "normalised") for member in members}
    if len(kinds) != 1:
        raise ClosureDetectorError(
            f"members read different inputs ({', '.join(sorted(kinds))}); retrain them alike"
        )
    networks = [network.weights for member in members for network in member.members]
    info = {
        "input": kinds.pop(),
        "threshold": threshold,
        "threshold_choice": choice,
        "members": [member.info for member in members],
    }
    return ClosureDetector(networks, info)


def choose_threshold(
    candidate: ClosureDetector, reference: ClosureDetector, data: str, view: str, max_clips: int
):
    """(threshold, record): the lowest threshold of `candidate` on `view` within the spurious closures
    per p/b/m of `reference` at its own threshold, both measured on the same clips."""
    from engine.closure.measure import hear_view

    budget = hear_view(reference, data, view, max_clips).counts(reference.threshold)
    heard = hear_view(candidate, data, view, max_clips)
    threshold = heard.lowest_threshold_within(budget["spurious_per_bilabial"])
    record = {
        "data": data,
        "view": view,
        "clips": heard.clips,
        "reference": {"threshold": reference.threshold, **budget},
        "chosen": {"threshold": threshold, **heard.counts(threshold)},
    }
    return threshold, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.closure.ensemble", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--member", action="append", required=True, help="detector .npz; repeatable")
    parser.add_argument("--out", required=True, help="the .npz to write")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--choose-on", metavar="DATA@VIEW", help="choose the threshold on this corpus view")
    how.add_argument("--threshold-of", metavar="FILE", help="take the threshold another ensemble chose")
    parser.add_argument(
        "--no-more-spurious-than", metavar="FILE", help="with --choose-on: the reference detector"
    )
    parser.add_argument("--max-clips", type=int, default=200)
    args = parser.parse_args(argv)
    try:
        if len(args.member) < 2:
            raise ValueError("an ensemble needs two or more --member files")
        members = [read_detector(path) for path in args.member]
        if args.choose_on:
            data, _, view = args.choose_on.rpartition("@")
            if not data or not view:
                raise ValueError(f"--choose-on {args.choose_on!r}: use DATA@VIEW")
            if not args.no_more_spurious_than:
                raise ValueError("--choose-on needs --no-more-spurious-than REFERENCE.npz")
            reference = read_detector(args.no_more_spurious_than)
            draft = combine(members, reference.threshold, {})
            threshold, record = choose_threshold(draft, reference, data, view, args.max_clips)
            record["reference"]["detector"] = args.no_more_spurious_than
        else:
            source = read_detector(args.threshold_of)
            if "threshold_choice" not in source.info:
                raise ValueError(f"{args.threshold_of} is not an ensemble with a chosen threshold")
            threshold = source.threshold
            record = {"from": args.threshold_of, **source.info["threshold_choice"]}
        detector = combine(members, threshold, record)
        save_detector(detector, args.out)
    except (ValueError, ClosureDetectorError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(detector.members)} networks, threshold {threshold}")
    if "chosen" in record:
        chosen, reference = record["chosen"], record["reference"]
        print(
            f"on {record['view']}: {chosen['recall']:.3f} of p/b/m found, {chosen['spurious_per_bilabial']:.3f} "
            f"spurious per p/b/m (reference {reference['recall']:.3f}, {reference['spurious_per_bilabial']:.3f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
