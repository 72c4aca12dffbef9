"""The hub's HTTP API: FastAPI app factory, one router per resource, auth, errors, rate limits,
SSE.
"""
