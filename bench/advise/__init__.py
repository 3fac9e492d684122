"""`hetbench advise`: what to change about a cluster, ranked, with the evidence. The predictor
searches every strategy and split with their knobs; each candidate's loss cost comes from a
measurement or is said not to exist; the best are checked by short emulated runs where the
cluster fits this machine.

  search.py     the candidates, their predictions (bench.predict.fast) and the ranking
  losscost.py   measured loss costs (loss_costs.json, benchmarks/loss_costs.py) and their lookup
  verify.py     the emulated checks (`hetbench run` of exactly the predicted configs)
  report.py     the paragraph, the tables, advice.md
  plot.py       the candidates' tokens/s with their loss costs
  main.py       the command: search, check, write
"""
