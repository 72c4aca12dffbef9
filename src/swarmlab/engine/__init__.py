"""Inference: checkpoint loading, reference greedy decoding, the fast decode path, speculative
decoding, the OpenAI-compatible server and the tiny-model builder. Imports nothing else of
swarmlab, and nothing of the hub's dependencies, so it runs on a bare GPU machine.
"""
