"""A logged-in console client for the tests: the central app on a loopback test server (aiohttp's
TestServer), real forms with their CSRF tokens read from the pages, cookies kept."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from central import console_db, passwords
from central.limits import Limits, body_deadline
from central.server import make_app
from central.store import Store, open_store

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def add_user(store: Store, name: str, role: str, password: str = PASSWORD) -> None:
    console_db.add_user(store, name, role, passwords.hash_password(password), console_db.User("test", "admin"))


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


class Console:
    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.csrf = ""

    async def login(self, name: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        form = await self.client.get("/console/login")
        token = csrf_of(await form.text())
        reply = await self.client.post("/console/login", data={"name": name, "password": password, "csrf": token},
                                       allow_redirects=False)
        if reply.status == 303:
            self.csrf = csrf_of(await (await self.client.get("/console/terminals")).text())
        return reply

    async def get(self, path: str) -> tuple[int, str]:
        reply = await self.client.get(path, allow_redirects=False)
        return reply.status, await reply.text()

    async def post(self, path: str, data: Any, csrf: str | None = None) -> tuple[int, str, str]:
        """(status, body, Location); the session's CSRF token unless `csrf` is given ("" = none)."""
        if isinstance(data, aiohttp.FormData):
            form = data
            if csrf != "":
                form.add_field("csrf", self.csrf if csrf is None else csrf)
        else:
            form = {**data, **({} if csrf == "" else {"csrf": self.csrf if csrf is None else csrf})}
        reply = await self.client.post(path, data=form, allow_redirects=False)
        return reply.status, await reply.text(), reply.headers.get("Location", "")


def run_console(dsn: str, scenario: Callable[[Callable[[], Awaitable[Console]]], Awaitable[None]]) -> None:
    """Run `scenario(new_console)` against the central app on its own store of `dsn` (the app
    closes it); each `new_console()` is a browser of its own (its own cookie jar)."""

    async def main() -> None:
        app = make_app(open_store(dsn))
        app.middlewares.insert(0, body_deadline(Limits()))  # as `serve` does: every body is read first
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        clients: list[TestClient[Any, Any]] = []

        async def new_console() -> Console:
            client = TestClient(server)
            await client.start_server()
            clients.append(client)
            return Console(client)

        try:
            await scenario(new_console)
        finally:
            for client in clients:
                await client.close()
            await server.close()

    asyncio.run(main())
