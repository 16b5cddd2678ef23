"""The pieces of bench/run: acme-edge against nginx and HAProxy.

  common     paths, the challenge every server answers, the run's log
  proc       processes pinned to a CPU, bounded in time; CPU and RSS from /proc
  prepare    packages, builds, certificates and the files served
  peers/     the servers under test and their generated configurations
  clients    the load generators, and what one run of one of them measured
  scenarios/ one file per scenario, found by the runner
  accounting per-core ratios, targets, verdicts, the openssl ceilings
  report     the results file and the README's table; chart: its png
  runner     the alternated runs; cli: flags and the exit status
"""
