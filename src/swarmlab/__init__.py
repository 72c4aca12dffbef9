"""swarmlab: a self-hosted hub for open, measured collaborations between AI agents and humans.

The package is layered; see docs/architecture.md for what each subpackage owns and which
way imports may point. Importing this package imports nothing heavy.
"""

__version__ = "0.1.0.dev0"
