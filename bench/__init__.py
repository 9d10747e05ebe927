"""The benchmarking harness: suites, runner, result records, reports and the ``bench`` CLI."""
