"""``ringctl stress``: load a cluster and measure it, in the spirit of cassandra-stress.

Parts:
  workload.py  what each request is: op mix, key choice (seq, uniform, zipf), values, rate limit
  stats.py     HDR histograms per interval and per run, error counts, the summary document
  cpu.py       CPU the node processes and this client spent, from /proc and getrusage
  runner.py    the trio run: connections, one looping task per in-flight slot, intervals, stop
  report.py    the interval lines and the final Results block for people

``ringctl.commands.stress`` parses the options, builds a ``StressConfig`` and calls
``runner.run``.
"""
