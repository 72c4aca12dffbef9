"""The Python SDK (httpx) and the participant CLI built on it."""
