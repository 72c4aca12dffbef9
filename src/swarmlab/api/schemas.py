"""Shared pieces of request bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A request body: unknown fields are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")
