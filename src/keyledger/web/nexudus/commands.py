"""Commands on access tokens. Nexudus publishes no keys for them, so keyledger defines its own;
``GET …/commands`` tells a client each one's parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keyledger.domain.callers.models import Role, UserCaller
from keyledger.domain.credentials import vouchers
from keyledger.domain.credentials.models import Credential
from keyledger.domain.hotspot.service import end_withdrawn_sessions
from keyledger.domain.properties.models import Property, Scope
from keyledger.kit.clock import format_utc, utc_now
from keyledger.store import Store
from keyledger.web.nexudus.auth import requiring
from keyledger.web.nexudus.errors import NexudusError, invalid, problem
from keyledger.web.nexudus.schemas import NUMBER_LIMIT, CommandParameter, CommandRun
from keyledger.web.nexudus.times import parse_time


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # "int", "datetime" or "string"
    required: bool = True


@dataclass(frozen=True)
class Command:
    key: str
    name: str
    needs_entities: bool
    order: int
    parameters: tuple[Parameter, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "Key": self.key,
            "Name": self.name,
            "AppliesOnlyToMultipleEntities": False,
            "DisplayInDropdown": True,
            "DisplayInDropdownV2": True,
            "AppliesOnlyToOneEntity": False,
            "AppliesOnlyToTwoEntities": False,
            "DisplayInGrid": self.needs_entities,
            "NeedsEntitiesToRun": self.needs_entities,
            "Order": self.order,
            "RequiresParameters": [
                {"Name": p.name, "Type": p.type, "Required": p.required} for p in self.parameters
            ],
        }


COMMANDS = (
    Command("RESET_MINUTES", "Reset minutes left to the minutes included", True, 1),
    Command("ADD_MINUTES", "Add minutes to the budget", True, 2, (Parameter("Minutes", "int"),)),
    Command("EXPIRE_NOW", "Expire now", True, 3),
    Command(
        "EXTEND_VALIDITY", "Extend validity until", True, 4, (Parameter("ValidTo", "datetime"),)
    ),
    Command(
        "BULK_CREATE",
        "Create vouchers with server-made codes",
        False,
        5,
        (
            Parameter("Count", "int"),
            Parameter("Minutes", "int"),
            Parameter("BusinessId", "int", required=False),
            Parameter("Description", "string", required=False),
            Parameter("UserLimit", "int", required=False),
            Parameter("ValidFrom", "datetime", required=False),
            Parameter("ValidTo", "datetime", required=False),
        ),
    ),
)
BY_KEY = {command.key: command for command in COMMANDS}


def _convert(parameter: Parameter, value: Any) -> Any:
    if parameter.type == "int":
        if isinstance(value, bool):
            raise invalid(problem(parameter.name, "is not a valid integer", value))
        try:
            number = int(str(value).strip())
        except ValueError:
            raise invalid(problem(parameter.name, "is not a valid integer", value)) from None
        if abs(number) > NUMBER_LIMIT:
            raise invalid(problem(parameter.name, "is out of range", value))
        return number
    if parameter.type == "datetime":
        try:
            return parse_time(str(value))[0]
        except ValueError:
            raise invalid(problem(parameter.name, "is not a valid date and time", value)) from None
    if not isinstance(value, str | int | float):
        raise invalid(problem(parameter.name, "must be a string", None))
    return str(value)


def resolve(command: Command, given: list[CommandParameter]) -> dict[str, Any]:
    """Parameters by Name (case-insensitive) when named, else by position."""
    named = {p.Name.strip().lower(): p for p in given if p.Name}
    values: dict[str, Any] = {}
    for index, parameter in enumerate(command.parameters):
        if named:
            supplied = named.get(parameter.name.lower())
        else:
            supplied = given[index] if index < len(given) else None
        if supplied is None or supplied.Value in (None, ""):
            if parameter.required:
                raise invalid(problem(parameter.name, "may not be null or empty"))
            continue
        values[parameter.name] = _convert(parameter, supplied.Value)
    return values


def _target_for_bulk(caller: UserCaller, business_id: int | None) -> Property:
    creators = caller.scope_with(Role.CREATE)
    editors = caller.scope_with(Role.EDIT)
    allowed = [p for p in creators.properties if p.id in editors.by_id]
    if business_id is not None:
        for candidate in allowed:
            if candidate.business_id == business_id:
                return candidate
        raise invalid(problem("BusinessId", "names no business where you may create", business_id))
    if len(allowed) != 1:
        raise invalid(problem("BusinessId", "is needed: you may create in several businesses"))
    return allowed[0]


def run(
    store: Store,
    caller: UserCaller,
    request: CommandRun,
    locate: Callable[[int], Credential],
) -> tuple[str, dict[str, Any]]:
    """Run a command: every command needs ``AccessToken-Edit`` somewhere (checked here, after the
    body was read, as before), and on each record it names (``locate``); ``BULK_CREATE`` also
    ``AccessToken-Create`` in its business."""
    requiring(Role.EDIT)(caller)
    command = BY_KEY.get(request.Key.strip().upper())
    if command is None:
        raise invalid(problem("Key", "is not a command; see GET …/commands", request.Key))
    values = resolve(command, request.Parameters)
    actor = caller.actor
    if not command.needs_entities:
        created = vouchers.bulk_create(
            store,
            target=_target_for_bulk(caller, values.get("BusinessId")),
            actor=actor,
            count=values["Count"],
            minutes=values["Minutes"],
            description=values.get("Description"),
            valid_from=values.get("ValidFrom"),
            valid_to=values.get("ValidTo"),
            user_limit=values.get("UserLimit"),
        )
        return f"{len(created)} vouchers created.", {
            "Ids": [c.id for c in created],
            "AccessCodes": [c.value for c in created],
        }
    if not request.Ids:
        raise invalid(problem("Ids", "may not be null or empty"))
    found = [locate(voucher_id) for voucher_id in dict.fromkeys(request.Ids)]
    scope = Scope(tuple({c.property.id: c.property for c in found}.values()))
    ids = [c.id for c in found]
    if command.key == "RESET_MINUTES":
        changed = vouchers.reset_minutes(
            store, scope=scope, actor=actor, voucher_ids=ids, on_withdrawal=end_withdrawn_sessions
        )
    elif command.key == "ADD_MINUTES":
        changed = vouchers.add_minutes(
            store,
            scope=scope,
            actor=actor,
            voucher_ids=ids,
            on_withdrawal=end_withdrawn_sessions,
            minutes=values["Minutes"],
        )
    elif command.key == "EXPIRE_NOW":
        changed = vouchers.expire_now(
            store, scope=scope, actor=actor, voucher_ids=ids, on_withdrawal=end_withdrawn_sessions
        )
    elif command.key == "EXTEND_VALIDITY":
        changed = vouchers.extend_validity(
            store,
            scope=scope,
            actor=actor,
            voucher_ids=ids,
            on_withdrawal=end_withdrawn_sessions,
            valid_to=values["ValidTo"],
        )
    else:  # pragma: no cover - every key is handled above
        raise NexudusError(500, "Unhandled command.")
    return f"{command.name}: {len(changed)} record(s) updated.", {
        "Id": changed[0].id,
        "Ids": [c.id for c in changed],
    }


def envelope(caller: UserCaller, message: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "Errors": None,
        "JavaScript": None,
        "Message": message,
        "OpenInDialog": False,
        "OpenInWindow": False,
        "RedirectURL": None,
        "Status": 200,
        "UpdatedBy": caller.email,
        "UpdatedOn": format_utc(utc_now()),
        "Value": value,
        "WasSuccessful": True,
    }
