"""torchrun worker entry: `torchrun ... -m bench.train [overrides...]` (the contract's name).
The life of a rank is bench.rank.main; this module only keeps the entry's name."""
import sys

from bench.rank.main import exit_now, main

if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
