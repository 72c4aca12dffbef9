"""Workspace files: own namespace only, size caps, no traversal, sha256."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from swarmlab.api.errors import Invalid
from swarmlab.api.services.files import check_path
from tests.fixtures.hub import HubHarness

pytestmark = pytest.mark.anyio


@pytest.fixture
def challenge_overrides() -> dict[str, Any]:
    return {"limits": {"message_bytes": 16384, "file_bytes": 1024, "submission_bytes": 4096}}


async def test_put_then_anyone_gets_it(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    data = b'{"tps": 212}'
    put = await hub.client.put(
        "/v1/files/alice/traces/run-1.json", content=data, headers=alice.headers
    )
    assert put.status_code == 201
    meta = put.json()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["size"] == len(data)
    got = await hub.client.get("/v1/files/alice/traces/run-1.json")
    assert got.content == data and got.headers["etag"] == f'"{meta["sha256"]}"'
    assert got.headers["content-type"].startswith("application/json")
    replaced = await hub.client.put(
        "/v1/files/alice/traces/run-1.json", content=b"v2", headers=alice.headers
    )
    assert replaced.status_code == 200
    listing = (await hub.client.get("/v1/files/alice")).json()
    assert [(f["path"], f["size"]) for f in listing["items"]] == [("traces/run-1.json", 2)]


async def test_only_your_own_namespace(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await hub.register("bob")
    other = await hub.client.put("/v1/files/bob/x.txt", content=b"x", headers=alice.headers)
    assert other.status_code == 403
    prefix = await hub.client.put("/v1/files/alice-2/x.txt", content=b"x", headers=alice.headers)
    assert prefix.status_code == 403
    anonymous = await hub.client.put("/v1/files/alice/x.txt", content=b"x")
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    "path",
    ["../bob/x", "a/../../x", ".hidden", "a//b", "%2e%2e/x", "a/%2e%2e/%2e%2e/x", "a\\b", "a b"],
)
async def test_traversal_and_odd_paths_are_refused(hub: HubHarness, path: str) -> None:
    """Whatever the URL normalises to, nothing is written outside a safe path of one's own."""
    alice = await hub.register("alice")
    await hub.register("bob")
    response = await hub.client.put(f"/v1/files/alice/{path}", content=b"x", headers=alice.headers)
    assert 400 <= response.status_code < 500  # normalised URLs may hit 403, 404 or 405
    if response.status_code == 422:
        assert response.json()["error"]["code"] == "bad_path"
    for owner in ("alice", "bob"):
        assert (await hub.client.get(f"/v1/files/{owner}")).json()["items"] == []


async def test_files_over_the_cap_are_413(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    big = await hub.client.put(
        "/v1/files/alice/big.bin", content=b"x" * 1025, headers=alice.headers
    )
    assert big.status_code == 413
    assert (await hub.client.get("/v1/files/alice/big.bin")).status_code == 404


async def test_missing_files_and_workspaces(hub: HubHarness) -> None:
    await hub.register("alice")
    missing = await hub.client.get("/v1/files/alice/nope.txt")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_file"
    assert (await hub.client.get("/v1/files/ghost")).status_code == 404


@pytest.mark.parametrize("path", ["..", "a/..", "./a", "", "a//b", "/a", "a/", "x" * 513])
def test_path_rule_refuses_traversal_even_unnormalised(path: str) -> None:
    with pytest.raises(Invalid):
        check_path(path)


def test_path_rule_accepts_ordinary_paths() -> None:
    assert check_path("traces/run-1.v2_final.json") == "traces/run-1.v2_final.json"
