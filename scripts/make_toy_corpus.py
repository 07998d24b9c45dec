"""Write the toy English -> Chinese corpus (with gold alignments) as plain aligned text files.

The same as ``python -m seq2seq.data.toy`` (which an installed package has without this checkout):

python scripts/make_toy_corpus.py                      # data/toy: 20,000 / 500 / 1,000 pairs
python scripts/make_toy_corpus.py --out DIR --train 200 --valid 20 --test 20 --seed 3
"""

from __future__ import annotations

from seq2seq.data.toy import main

if __name__ == "__main__":
    main()
