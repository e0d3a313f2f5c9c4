"""Upload → check → preview → publish, for rules, the catalog and the card file.

An upload is checked exactly as `posterm-central publish` checks it (`central.publishing`: the
rules compiled as a terminal compiles them, each product as a ledger checks it, the card file by
`protocol.cardfile`). A refused upload gets its one-line reason, naming the rule, row and field,
and nothing is stored. An accepted one becomes a draft (`console_db.put_draft`) shown with its
preview — for rules, sample carts priced with the current rules and the new ones — and is
published only from that page, checked again at that moment. Limits: `UPLOAD_BYTES_MAX` per
kind (the server refuses any body above `wire.BATCH_BYTES_MAX`; larger files go through the CLI),
`PREVIEW_ROWS_MAX` rows shown.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

import core
from central import checks, console_db, publishing
from central.console_db import User
from central.server import log_line
from central.store import Store
from central.web import preview
from central.web.auth import Ctx, refusal, run, see_other, store_of
from central.web.render import page
from core.errors import PricingError
from core.rules import parse_rules_text
from protocol import cardfile, wire

ENVELOPE_BYTES = 64 * 1024  # multipart headers and the form's other fields
UPLOAD_BYTES_MAX = {
    "rules": wire.RULES_BYTES_MAX - ENVELOPE_BYTES,
    "catalog": wire.BATCH_BYTES_MAX - ENVELOPE_BYTES,
    "cardfile": wire.BATCH_BYTES_MAX - ENVELOPE_BYTES,
}
PREVIEW_ROWS_MAX = 20
PROBLEMS_SHOWN_MAX = 20
FILE_NAME_CHARS_MAX = 100


class UploadError(Exception):
    """An upload refused; nothing stored."""


@dataclass(frozen=True)
class Kind:
    name: str  # rules | catalog | cardfile (the URL's part)
    cli: str  # what `posterm-central publish` calls it
    title: str
    role: str
    versioned: bool
    check: Callable[[Store, str, bytes], dict[str, Any]]  # the preview's facts; raises UploadError
    publish: Callable[[Store, str, bytes, str, User], str]  # what was published, one line


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadError(f"{name}: not UTF-8 text; nothing stored") from None


def _program(text: str, source: str) -> core.Program:
    try:
        publishing.check_rules(text, source, None)  # what `publish rules` refuses
        return core.compile_rules(parse_rules_text(text, source), source)  # (it compiled there: the preview's)
    except (checks.CheckError, PricingError) as exc:
        raise UploadError(str(exc)) from None


def _current_program(store: Store) -> tuple[str, core.Program | None]:
    found = publishing.current_rules(store)
    if found is None:
        return "none published", None
    body = found[1]
    try:
        return str(body.get("version")), core.compile_rules(parse_rules_text(body["text"], "published"))
    except PricingError as exc:  # published before today's checks: shown, not used
        return f"{body.get('version')} (does not compile now: {exc})", None


def _check_rules(store: Store, name: str, data: bytes) -> dict[str, Any]:
    program = _program(_text(name, data), name)
    version, current = _current_program(store)
    kinds: dict[str, int] = {}
    for rule in program.rules:
        kinds[rule.kind] = kinds.get(rule.kind, 0) + 1
    now = dt.datetime.now(dt.UTC)
    return {"summary": f"{len(program.rules)} rules ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), "
                       f"{len(program.groups) - 2} groups; program version {program.version or '-'}",
            "current": version, "samples": preview.compare(store, current, program, now),
            "default_version": program.version or publishing.content_label(data)}


def _publish_rules(store: Store, name: str, data: bytes, label: str, user: User) -> str:
    text = _text(name, data)
    try:
        version = publishing.check_rules(text, name, label or None)
    except checks.CheckError as exc:
        raise UploadError(str(exc)) from None
    cursor = publishing.publish_rules(store, text, version)
    console_db.log_action(store, user, "publish_rules", version, f"{name}, cursor {cursor}")
    return f"rules {version} published (feed cursor {cursor})"


def _catalog(store: Store, name: str, data: bytes) -> list[publishing.Product]:
    try:
        return publishing.catalog_items(_text(name, data), name, store.published_barcodes())
    except checks.CheckError as exc:
        raise UploadError(str(exc)) from None


def _check_catalog(store: Store, name: str, data: bytes) -> dict[str, Any]:
    items = _catalog(store, name, data)
    stored = store.published_barcodes()
    products = [p for _, p in items]
    new = sum(1 for p in products if p["sku"] not in stored and not p.get("deleted"))
    deleted = sum(1 for p in products if p.get("deleted"))
    return {"summary": f"{len(products)} products: {new} new, {len(products) - new - deleted} replaced, "
                       f"{deleted} deleted", "products": products[:PREVIEW_ROWS_MAX],
            "default_version": publishing.content_label(data)}


def _publish_catalog(store: Store, name: str, data: bytes, label: str, user: User) -> str:
    items = _catalog(store, name, data)
    try:
        version = checks.version(label or publishing.content_label(data), "catalog")
    except checks.CheckError as exc:
        raise UploadError(str(exc)) from None
    cursor = publishing.publish_catalog(store, items, version)
    console_db.log_action(store, user, "publish_catalog", version, f"{name}: {len(items)} products, cursor {cursor}")
    return f"catalog {version} published: {len(items)} products (feed cursor {cursor})"


def _cards(name: str, data: bytes) -> list[cardfile.CardRow]:
    try:
        rows, problems = publishing.read_cards(data, console_db.now_ms(), name)
    except cardfile.CardFileError as exc:
        raise UploadError(str(exc)) from None
    if problems:
        shown = "; ".join(f"row {r}, field {f!r}: {p}" for r, f, p in problems[:PROBLEMS_SHOWN_MAX])
        raise UploadError(f"{name}: {len(problems)} rows refused, nothing stored: {shown}")
    return rows


def _check_cards(store: Store, name: str, data: bytes) -> dict[str, Any]:
    rows = _cards(name, data)
    return {"summary": f"{len(rows)} cards", "cards": rows[:PREVIEW_ROWS_MAX], "default_version": ""}


def _publish_cards(store: Store, name: str, data: bytes, label: str, user: User) -> str:
    rows = _cards(name, data)
    count = publishing.publish_cards(store, rows)
    console_db.log_action(store, user, "publish_cards", name, f"{count} cards")
    return f"card file {name} published: {count} cards"


KINDS = {
    "rules": Kind("rules", "rules", "Rules", "marketing", True, _check_rules, _publish_rules),
    "catalog": Kind("catalog", "catalog", "Catalog", "marketing", True, _check_catalog, _publish_catalog),
    "cardfile": Kind("cardfile", "cards", "Card file", "admin", False, _check_cards, _publish_cards),
}


def _current(store: Store, kind: Kind) -> dict[str, Any]:
    if kind.name == "rules":
        found = publishing.current_rules(store)
        return {"version": found[1].get("version"), "cursor": found[0], "text": found[1].get("text", "")} \
            if found else {}
    if kind.name == "catalog":
        rows = store._query("SELECT cursor, body FROM feed WHERE kind = 'version' AND key = 'catalog'")
        count = store._query("SELECT COUNT(*) FROM feed WHERE kind = 'product'")[0][0]
        version = wire.unpack(bytes(rows[0][1]), 4096).get("version") if rows else None
        return {"version": version, "cursor": int(rows[0][0]) if rows else None, "products": int(count)}
    return {"cards": int(store._query("SELECT COUNT(*) FROM cards")[0][0])}


def _base(ctx: Ctx, kind: Kind, **more: Any) -> dict[str, Any]:
    return {"user": ctx.user, "csrf": ctx.csrf, "title": kind.title, "kind": kind,
            "bytes_max": UPLOAD_BYTES_MAX[kind.name], **more}


def index(kind: Kind) -> Any:
    async def handler(request: web.Request, ctx: Ctx, message: str = "", status: int = 200) -> web.StreamResponse:
        current = await run(request, _current, store_of(request), kind)
        done = request.query.get("done", "")[:300]
        return page("publish.html", status, **_base(ctx, kind, current=current, message=message, done=done))

    return handler


def upload(kind: Kind) -> Any:
    async def handler(request: web.Request, ctx: Ctx) -> web.StreamResponse:
        store = store_of(request)
        field = ctx.form.get("file")
        try:
            if not isinstance(field, web.FileField):
                raise UploadError("choose a file to upload")
            name = (field.filename or "upload")[-FILE_NAME_CHARS_MAX:]
            data = field.file.read(UPLOAD_BYTES_MAX[kind.name] + 1)
            if len(data) > UPLOAD_BYTES_MAX[kind.name]:
                raise UploadError(f"{name}: more than {UPLOAD_BYTES_MAX[kind.name]} bytes; publish larger files "
                                  f"with `posterm-central publish {kind.cli}`; nothing stored")
            if not data:
                raise UploadError(f"{name}: the file is empty; nothing stored")
            await run(request, kind.check, store, name, data)
            draft = await run(request, console_db.put_draft, store, kind.name, name, data, ctx.user)
        except UploadError as exc:
            log_line(logging.WARNING, "console_upload_refused", user=ctx.user.name, kind=kind.name, status=400)
            return await index(kind)(request, ctx, str(exc), 400)
        return see_other(f"/console/{kind.name}/drafts/{draft}")

    return handler


def show_draft(kind: Kind) -> Any:
    async def handler(request: web.Request, ctx: Ctx) -> web.StreamResponse:
        store = store_of(request)
        draft_id = request.match_info["draft"]
        found = await run(request, console_db.draft, store, kind.name, draft_id)
        if found is None:
            return refusal(request, 404, f"no {kind.name} draft {draft_id[:64]} (drafts are kept for the "
                           f"{console_db.DRAFTS_KEPT_MAX} newest uploads); upload it again", ctx.user)
        name, data = found
        try:
            facts = await run(request, kind.check, store, name, data)
        except UploadError as exc:  # valid when uploaded, not any more (the catalog moved on)
            return await index(kind)(request, ctx, str(exc), 409)
        return page("draft.html", **_base(ctx, kind, draft=draft_id, name=name, facts=facts))

    return handler


def publish(kind: Kind) -> Any:
    async def handler(request: web.Request, ctx: Ctx) -> web.StreamResponse:
        store = store_of(request)
        found = await run(request, console_db.draft, store, kind.name, ctx.text("draft", 64))
        if found is None:
            return await index(kind)(request, ctx, "that draft is gone; upload the file again (nothing published)",
                                     404)
        name, data = found
        try:
            done = await run(request, kind.publish, store, name, data, ctx.text("version", 100), ctx.user)
        except UploadError as exc:
            return await index(kind)(request, ctx, str(exc), 400)
        log_line(logging.INFO, "console_published", user=ctx.user.name, kind=kind.name)
        return see_other(f"/console/{kind.name}?done={quote(done)}")

    return handler
