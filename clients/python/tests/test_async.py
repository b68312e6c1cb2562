"""The async client: the same operations as coroutines, against the real hub."""

from __future__ import annotations

import asyncio

import hub as hubs
import pytest

from tidings import AsyncClient, Invalid


async def test_async_publish_paginate_and_errors(hub: hubs.Hub, uid: str) -> None:
    async with AsyncClient(hub.url, hub.api_key) as client:
        users = [f"as-{uid}-{i}" for i in range(3)]
        await asyncio.gather(*(client.put_user(u, "provider") for u in users))
        listed = [u["user_id"] async for u in client.paginate(client.list_users, role="provider", limit=2)]
        assert set(users) <= set(listed)
        answer = await client.publish(user_ids=users, title="Async", message="hello", priority="critical")
        assert sorted(n["user_id"] for n in answer["notifications"]) == users
        token = await client.create_token(users[0], "provider")
        assert token["token"].count(".") == 2
        with pytest.raises(Invalid) as bad:
            await client.send_message(to="not-a-phone", body="x", kind="billing")
        assert (bad.value.code, bad.value.field) == ("invalid", "to")
        stats = await client.message_stats()
        assert "success_rate" in stats
