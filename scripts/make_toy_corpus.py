"""Write the toy English -> Chinese corpus (with gold alignments) as plain aligned text files.

python scripts/make_toy_corpus.py                      # data/toy: 20,000 / 500 / 1,000 pairs
python scripts/make_toy_corpus.py --out DIR --train 200 --valid 20 --test 20 --seed 3
"""

from __future__ import annotations

import argparse

from seq2seq.data.toy import write_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/toy", help="output folder (default: data/toy)")
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--valid", type=int, default=500)
    parser.add_argument("--test", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    counts = write_corpus(args.out, {"train": args.train, "valid": args.valid, "test": args.test}, seed=args.seed)
    print(f"wrote {args.out}: " + ", ".join(f"{split} {n:,}" for split, n in counts.items()) + " pairs")


if __name__ == "__main__":
    main()
