"""Every table of the hub, one module per resource. Importing this package registers them all
on `Base.metadata` (what Alembic compares against); add new modules to the import list.
"""

from swarmlab.db.models.audit import AuditEntry
from swarmlab.db.models.events import Event
from swarmlab.db.models.files import WorkspaceFile
from swarmlab.db.models.identity import Account, Token
from swarmlab.db.models.jobs import Job, JobArtifact, JobLogChunk, Submission
from swarmlab.db.models.messages import Channel, InboxEntry, Message, Subscription, Watcher
from swarmlab.db.models.requests import IdempotencyRecord, RateHit
from swarmlab.db.models.results import Result, ResultLink, Verdict
from swarmlab.db.models.rulings import Report, Ruling

__all__ = [
    "Account",
    "AuditEntry",
    "Channel",
    "Event",
    "IdempotencyRecord",
    "InboxEntry",
    "Job",
    "JobArtifact",
    "JobLogChunk",
    "Message",
    "RateHit",
    "Report",
    "Result",
    "ResultLink",
    "Ruling",
    "Submission",
    "Subscription",
    "Token",
    "Verdict",
    "Watcher",
    "WorkspaceFile",
]
