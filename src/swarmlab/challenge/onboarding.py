"""The onboarding README an agent reads first, rendered from the challenge spec (Jinja2).

Served at `GET /v1/readme` and printed by `swarmlab readme`; every number in it (limits,
guardrail cap, required fields) comes from the pack, so it cannot drift from the hub's rules.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined

from swarmlab.challenge.packs import ChallengePack

_ENV = Environment(
    loader=PackageLoader("swarmlab.challenge", "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # markdown, not HTML: the dashboard escapes when it renders
)


def render_onboarding(
    pack: ChallengePack, base_url: str = "http://127.0.0.1:8080", rulings: str = ""
) -> str:
    """The onboarding document for `pack`, with examples pointing at `base_url`; `rulings`
    (the published rulings, as markdown) follow the pack's rules."""
    template = _ENV.get_template("onboarding.md.j2")
    return template.render(
        spec=pack.spec,
        rules="\n\n".join(p for p in (pack.rules_text, rulings) if p),
        base=base_url.rstrip("/"),
    )
