"""The hub's HTTP API: FastAPI app factory, one router per resource, auth, errors, rate limits,
SSE. `create_app(HubSettings(...))` builds a hub; `swarmlab serve` runs one.
"""
