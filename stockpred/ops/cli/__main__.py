"""`python -m stockpred.ops.cli`: the same command as the `stockpred` console script."""

from stockpred.ops.cli import main

main()
