"""`HubSettings`: the hub's settings as a pydantic-settings class (environment `SWARMLAB_*`).

Defaults and help come from `swarmlab.api.options`, the one declaration. When the data dir is
set but the database or blob URL is not, those follow the data dir.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from swarmlab.api import options as o


class HubSettings(BaseSettings):
    """Where the hub keeps its data, which challenge it runs and where it listens."""

    model_config = SettingsConfigDict(env_prefix=o.ENV_PREFIX, extra="ignore")

    challenge: str = Field(o.CHALLENGE.default, description=o.CHALLENGE.help)
    db: str = Field(o.DB.default, description=o.DB.help)
    blobs: str = Field(o.BLOBS.default, description=o.BLOBS.help)
    host: str = Field(o.HOST.default, description=o.HOST.help)
    port: int = Field(o.PORT.default, ge=1, le=65535, description=o.PORT.help)
    data_dir: Path = Field(Path(o.DATA_DIR.default), description=o.DATA_DIR.help)
    long_poll_max_s: float = Field(
        o.LONG_POLL_MAX_S.default, gt=0, description=o.LONG_POLL_MAX_S.help
    )
    recheck_s: float = Field(o.RECHECK_S.default, gt=0, description=o.RECHECK_S.help)
    executor: str = Field(
        o.EXECUTOR.default, pattern="^(inline|celery|none)$", description=o.EXECUTOR.help
    )
    workers: int = Field(o.WORKERS.default, ge=0, description=o.WORKERS.help)
    broker: str = Field(o.BROKER.default, description=o.BROKER.help)
    queue_prefix: str = Field(o.QUEUE_PREFIX.default, description=o.QUEUE_PREFIX.help)
    reap_every_s: float = Field(o.REAP_EVERY_S.default, gt=0, description=o.REAP_EVERY_S.help)

    @model_validator(mode="after")
    def _follow_data_dir(self) -> HubSettings:
        if "data_dir" in self.model_fields_set:
            if "db" not in self.model_fields_set:
                self.db = f"sqlite:///{self.data_dir.absolute() / 'hub.db'}"
            if "blobs" not in self.model_fields_set:
                self.blobs = f"file://{self.data_dir.absolute() / 'blobs'}"
        return self

    @property
    def organizer_token_file(self) -> Path:
        """Where the first start writes the organizer's token (mode 0600)."""
        return self.data_dir / "organizer.token"
