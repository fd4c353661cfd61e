"""Migration 0009 on a store that already holds look-alike voucher codes: it backfills the keys,
keeps the oldest of each colliding group reachable, and keeps every row."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from keyledger.domain.credentials import vouchers
from keyledger.domain.credentials.models import VoucherFields
from keyledger.domain.events.models import Actor
from keyledger.domain.hotspot.service import end_withdrawn_sessions
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import downgrade, upgrade
from tests.support import DatabaseFactory

NFC = unicodedata.normalize("NFC", "Café-1")
NFD = unicodedata.normalize("NFD", "Café-1")


def test_0009_keeps_the_oldest_of_look_alike_codes(databases: DatabaseFactory) -> None:
    store = Store(Settings(database_url=databases.new_url()))
    try:
        prop = add_property(store, name="Before 0009")  # by today's code, then step back
        downgrade(store.engine, "0007")
        now = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
        rows = [  # (code, deleted): the live ones collide three ways, the deleted one not counted
            ("ABC-1", None),
            ("abc-1", None),
            ("ＡＢＣ-1", None),  # noqa: RUF001 - fullwidth, on purpose
            (NFC, None),
            (NFD, None),
            ("abc-1", now),
            ("Other", None),
        ]
        with store.write() as conn:
            for code, deleted in rows:
                conn.execute(
                    text(
                        "INSERT INTO credentials (uid, property_id, kind, value, perm_bed, "
                        "perm_room, perm_floor, perm_building, minutes_included, minutes_left, "
                        "usage_seconds, description, created_utc, updated_utc, created_by, "
                        "updated_by, deleted_utc) VALUES (:uid, :property_id, 'voucher', :value, "
                        "false, false, false, false, 60, 60, 0, :description, :now, :now, 't', "
                        "'t', :deleted)"
                    ),
                    {
                        "uid": uuid.uuid4().hex if store.dialect == "sqlite" else uuid.uuid4(),
                        "property_id": prop.id,
                        "value": code,
                        "description": "Le CAFÉ",
                        "now": now,
                        "deleted": deleted,
                    },
                )
        upgrade(store.engine)
        with store.read() as conn:
            keys = conn.execute(
                text(
                    "SELECT value, code_key, description_key, deleted_utc IS NULL FROM credentials "
                    "WHERE property_id = :p ORDER BY id"
                ),
                {"p": prop.id},
            ).all()
            ids = [
                row[0]
                for row in conn.execute(
                    text("SELECT id FROM credentials WHERE property_id = :p ORDER BY id"),
                    {"p": prop.id},
                )
            ]
        assert [row[0] for row in keys] == [code for code, _ in rows]  # every row, as written
        assert keys[0][1] == "abc-1"
        assert keys[1][1] == f"abc-1\x1f#{ids[1]}"
        assert keys[2][1] == f"abc-1\x1f#{ids[2]}"
        assert keys[3][1] == unicodedata.normalize("NFC", "café-1")
        assert keys[4][1] == f"{keys[3][1]}\x1f#{ids[4]}"
        assert keys[5][1] == "abc-1"  # deleted: no live collision
        assert keys[6][1] == "other"
        assert {row[2] for row in keys} == {unicodedata.normalize("NFC", "le café")}
        # A voucher set apart stays editable: its key is kept as long as its code is.
        scope, actor = Scope(properties=(prop,)), Actor.system()
        topped = vouchers.add_minutes(
            store,
            scope=scope,
            actor=actor,
            voucher_ids=[ids[1], ids[2]],
            minutes=5,
            on_withdrawal=end_withdrawn_sessions,
        )
        assert [v.minutes_left for v in topped] == [65, 65]
        vouchers.expire_now(
            store,
            scope=scope,
            actor=actor,
            voucher_ids=[ids[1]],
            on_withdrawal=end_withdrawn_sessions,
        )
        with store.read() as conn:
            kept = conn.execute(
                text("SELECT code_key FROM credentials WHERE id = :id"), {"id": ids[1]}
            ).scalar_one()
        assert kept == f"abc-1\x1f#{ids[1]}"
        # … and renaming it to a free code gives it that code's key.
        vouchers.replace_voucher(
            store,
            scope=scope,
            actor=actor,
            voucher_id=ids[2],
            fields=VoucherFields(access_code="ABC-2", minutes_included=60),
            on_withdrawal=end_withdrawn_sessions,
        )
        with store.read() as conn:
            renamed = conn.execute(
                text("SELECT code_key FROM credentials WHERE id = :id"), {"id": ids[2]}
            ).scalar_one()
        assert renamed == "abc-2"
    finally:
        store.dispose()
