"""Benchmark jobs: state machine with leases and heartbeats, quotas, executors (inline, celery)
and the runner.
"""
