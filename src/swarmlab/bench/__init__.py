"""The benchmark harness: manifest validation, server launch and teardown, speed, decode capture,
PPL, greedy identity, summary and significance. Talks to any OpenAI-compatible server; knows
nothing of the hub.
"""
