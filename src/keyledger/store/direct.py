"""Hot statements run on the driver's cursor, compiled once per dialect.

Under load a statement of the hotspot start path cost ~0.1 ms in the driver and 0.3-0.6 ms in
SQLAlchemy Core's execution path (execution context, parameter and result processing, events;
issue 14's RADIUS benchmark, benchmarks/README.md). ``Direct`` keeps the Core statement as the
one definition of the SQL, compiles it for a dialect once (the very string SQLAlchemy would
send: same compiler, same ``column_keys``), and runs it on the transaction's own DBAPI
connection. Parameters and result values go through the processors of the statement's own
SQLAlchemy types (``TypeEngine.dialect_impl(dialect).bind_processor`` / ``result_processor``,
what the engine calls itself), so the rows written and the values read are those of
``conn.execute`` (tests/store/test_direct.py compares both paths row by row on both databases).

Only plain statements are taken: named bind parameters (no expanding ``IN``, no
``literal_execute``), no Python-side column defaults to fill in, one parameter set. A driver
error is raised as SQLAlchemy raises it (``DBAPIError.instance``, parameters hidden), and a
disconnect invalidates the connection, so the store's error mapping (``engine.py``) holds.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, bindparam
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from keyledger.store.schema import UtcDateTime

Processor = Callable[[Any], Any]

#: The last ``UtcDateTime`` bound per dialect and what it became: a start binds the same ``now``
#: to most of its statements, converted once (by identity: the very object, so the same result).
_LAST_TIME: dict[str, tuple[Any, Any]] = {}


@dataclass
class _Plan:
    """A statement compiled for one dialect, with its parameter and result processing."""

    sql: str
    names: tuple[str, ...]  # bind names, in order for a positional paramstyle
    positional: bool
    constants: dict[str, Any]  # binds with a value of their own (e.g. ``col == 5``)
    binds: tuple[tuple[str, Processor, bool], ...]  # names with a processor (, a UtcDateTime)
    columns: Sequence[Any]  # the statement's result columns (their types)
    keys: tuple[str, ...]
    results: list[tuple[int, Processor]] | None = None  # set from the first cursor description
    row: Any = field(default=None)


class Direct:
    """A Core statement (``select``, ``insert``, ``update``, ``delete``) run on the driver's
    cursor. ``keys``: for an ``insert`` without ``values()``, the columns given (as
    ``conn.execute(insert(t), {...})`` compiles for the keys of its parameters)."""

    def __init__(self, statement: Executable, *, keys: Iterable[str] | None = None) -> None:
        self.statement = statement
        self._keys = None if keys is None else list(keys)
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = self._compile(dialect)
        return plan

    def _compile(self, dialect: Dialect) -> _Plan:
        compiled = cast(ClauseElement, self.statement).compile(
            dialect=dialect, column_keys=self._keys
        )
        assert isinstance(compiled, SQLCompiler)
        if (
            compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.literal_execute_params
            or compiled.post_compile_params
        ):
            raise TypeError("Direct runs plain statements only (no defaults, no expanding binds)")
        names = tuple(compiled.positiontup or compiled.binds)
        constants: dict[str, Any] = {}
        binds: list[tuple[str, Processor, bool]] = []
        for name in names:
            bind = compiled.binds[name]
            if not bind.required:
                constants[name] = bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds.append((name, processor, isinstance(bind.type, UtcDateTime)))
        columns = list(getattr(self.statement, "exported_columns", ()))
        if compiled.isinsert and not compiled.effective_returning:
            columns = []
        keys = tuple(column.key for column in columns)
        return _Plan(
            sql=compiled.string,
            names=names,
            positional=bool(dialect.positional),
            constants=constants,
            binds=tuple(binds),
            columns=columns,
            keys=keys,
            row=namedtuple("Row", keys) if keys else None,
        )

    @staticmethod
    def _sent(dialect: Dialect, plan: _Plan, parameters: Mapping[str, Any]) -> Any:
        """``parameters`` as the driver takes them: processed by their types, in order."""
        values = {**plan.constants, **parameters} if plan.constants else dict(parameters)
        for name, processor, is_time in plan.binds:
            value = values[name]
            if is_time:
                last = _LAST_TIME.get(dialect.name)
                if last is not None and last[0] is value:
                    values[name] = last[1]
                else:
                    values[name] = converted = processor(value)
                    _LAST_TIME[dialect.name] = (value, converted)
            else:
                values[name] = processor(value)
        return tuple(values[name] for name in plan.names) if plan.positional else values

    def sent(self, conn: Connection, parameters: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and the parameters this statement hands ``conn``'s driver, e.g. to ``EXPLAIN``
        the very statement (tests/domain/hotspot/test_read_plans.py)."""
        plan = self._plan(conn.dialect)
        return plan.sql, self._sent(conn.dialect, plan, parameters)

    def _run(self, conn: Connection, parameters: Any, *, many: bool = False) -> tuple[Any, _Plan]:
        """Run on the driver's cursor: ``parameters`` a mapping, or with ``many`` a sequence of
        them (``executemany``)."""
        dialect = conn.dialect
        plan = self._plan(dialect)
        sent: Any = (
            [self._sent(dialect, plan, one) for one in parameters]
            if many
            else self._sent(dialect, plan, parameters)
        )
        fairy = conn.connection
        raw = fairy.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            if many:
                cursor.executemany(plan.sql, sent)
            else:
                cursor.execute(plan.sql, sent)
        except dialect.loaded_dbapi.Error as error:
            cursor.close()
            disconnect = dialect.is_disconnect(error, fairy.dbapi_connection, cursor)
            if disconnect:
                conn.invalidate(error)
            raise DBAPIError.instance(
                plan.sql,
                None,  # not kept on the error either: they may hold codes of a whole group
                error,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=dialect,
                connection_invalidated=disconnect,
            ) from error
        return cursor, plan

    def execute(self, conn: Connection, parameters: Mapping[str, Any]) -> None:
        """Run the statement (an ``insert``: its rowcount differs between the paths on
        PostgreSQL, where SQLAlchemy adds ``RETURNING``; nobody needs it)."""
        cursor, _ = self._run(conn, parameters)
        cursor.close()

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per parameter set of ``rows``, in one driver call
        (``executemany``; nothing when ``rows`` is empty)."""
        if rows:
            cursor, _ = self._run(conn, rows, many=True)
            cursor.close()

    def rowcount(self, conn: Connection, parameters: Mapping[str, Any]) -> int:
        """Run the statement; the rows it changed."""
        cursor, _ = self._run(conn, parameters)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def all(self, conn: Connection, parameters: Mapping[str, Any]) -> list[Any]:
        """Run the statement; its rows (named tuples), values as SQLAlchemy returns them."""
        cursor, plan = self._run(conn, parameters)
        try:
            rows = cursor.fetchall()
            if plan.results is None:
                plan.results = _result_processors(conn.dialect, plan, cursor.description)
        finally:
            cursor.close()
        make = plan.row
        if not plan.results:
            return [make(*row) for row in rows]
        done = []
        for row in rows:
            values = list(row)
            for index, processor in plan.results:
                values[index] = processor(values[index])
            done.append(make(*values))
        return done

    def first(self, conn: Connection, parameters: Mapping[str, Any]) -> Any:
        """The first row, or None."""
        rows = self.all(conn, parameters)
        return rows[0] if rows else None


def _result_processors(
    dialect: Dialect, plan: _Plan, description: Sequence[Any] | None
) -> list[tuple[int, Processor]]:
    found = []
    for index, column in enumerate(plan.columns):
        coltype = description[index][1] if description else None
        processor = column.type.dialect_impl(dialect).result_processor(dialect, coltype)
        if processor is not None:
            found.append((index, processor))
    return found


class DirectIn:
    """A ``Direct`` statement with one ``IN`` list: ``build(clause)`` gets ``column IN (...)`` of
    bind parameters typed as ``column`` (so values are processed as the column's own), once for
    each length of list it is run with (rounded up to a power of two, the list padded with its
    last value, so a few plans serve every length), compiled once each. Longer lists than
    ``CHUNK`` are read in chunks of it (a database's parameter limit stays far)."""

    CHUNK = 1024

    def __init__(
        self,
        column: ColumnElement[Any],
        build: Callable[[ColumnElement[bool]], Executable],
        *,
        prefix: str = "in",
    ) -> None:
        self._column = column
        self._build = build
        self._prefix = prefix
        self._sized: dict[int, tuple[Direct, list[str]]] = {}

    def sized(
        self, parameters: Mapping[str, Any], values: Sequence[Any]
    ) -> tuple[Direct, dict[str, Any]]:
        """The statement for ``values`` (one to ``CHUNK``) and its parameters, ``values``
        bound."""
        if not 1 <= len(values) <= self.CHUNK:
            raise ValueError(f"an IN list holds 1 to {self.CHUNK} values")
        size = 1 << (len(values) - 1).bit_length()
        sized = self._sized.get(size)
        if sized is None:
            names = [f"{self._prefix}_{i}" for i in range(size)]
            binds = [bindparam(name, type_=self._column.type) for name in names]
            sized = self._sized[size] = (Direct(self._build(self._column.in_(binds))), names)
        statement, names = sized
        padded = [*values, *([values[-1]] * (size - len(values)))]
        return statement, {**parameters, **dict(zip(names, padded, strict=True))}

    def all(
        self, conn: Connection, parameters: Mapping[str, Any], values: Sequence[Any]
    ) -> list[Any]:
        """Rows for ``values`` in the ``IN`` list (at least one), the other binds from
        ``parameters``."""
        if not values:
            raise ValueError("an IN list needs at least one value")
        rows: list[Any] = []
        for start in range(0, len(values), self.CHUNK):
            statement, bound = self.sized(parameters, values[start : start + self.CHUNK])
            rows.extend(statement.all(conn, bound))
        return rows
