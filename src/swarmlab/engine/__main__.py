"""`python -m swarmlab.engine ...`: the engine's commands without the rest of swarmlab's CLI."""

from swarmlab.engine.cli import app

app(prog_name="python -m swarmlab.engine")
