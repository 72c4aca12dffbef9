"""Challenge specs (challenge.yaml validated by pydantic), challenge packs and the onboarding
README. Imports only `swarmlab.domain`.
"""

from swarmlab.challenge.packs import ChallengeError, ChallengePack, available_packs, load_challenge
from swarmlab.challenge.spec import ChallengeSpec

__all__ = ["ChallengeError", "ChallengePack", "ChallengeSpec", "available_packs", "load_challenge"]
