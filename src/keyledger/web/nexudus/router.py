"""Nexudus Spaces API: ``/api/spaces/accesstokens`` and ``POST /api/token``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from keyledger.domain.callers.models import IssuedBearer, Role, UserCaller
from keyledger.domain.callers.users import issue_bearer_for_password, refresh_bearer
from keyledger.domain.credentials import vouchers
from keyledger.domain.credentials.models import Credential, VoucherFields
from keyledger.domain.hotspot.service import end_withdrawn_sessions
from keyledger.domain.properties.models import Property
from keyledger.kit.errors import CredentialNotFound, TooManyFailures, Unauthenticated
from keyledger.kit.inputs import refused_character
from keyledger.store import Store
from keyledger.web.context import ContextDep, StoreDep, client_address
from keyledger.web.nexudus import commands, schemas, translate
from keyledger.web.nexudus.auth import CallerDep, ListScope, read_fields
from keyledger.web.nexudus.errors import (
    NexudusRoute,
    TokenRequestError,
    TokenRoute,
    failure_body,
    invalid,
    problem,
)
from keyledger.web.nexudus.query import parse_list_request
from keyledger.web.routing import error_responses, json_response, read_body, request_body

PREFIX = "/api/spaces/accesstokens"
TAG = "Nexudus"

_FAILURES = error_responses(
    schemas.Failure,
    {
        400: "Invalid input: `Errors` names each invalid property.",
        401: "Missing or bad credentials (`WWW-Authenticate: Basic`).",
        403: "The user lacks the operation's role in the record's business.",
        404: "No such record in the user's businesses.",
        409: "Throttled; see the Retry-After header.",
        413: "The body is larger than the configured limit.",
        500: "Unexpected fault; nothing internal is shown.",
        503: "The credential store is unavailable; nothing was changed (Retry-After).",
    },
)


def _locate(store: Store, caller: UserCaller, voucher_id: int | str, role: Role) -> Credential:
    """The voucher in one of the caller's businesses (else 404), if the role allows (else 403)."""
    try:
        wanted = int(voucher_id)
    except ValueError:
        raise CredentialNotFound([voucher_id]) from None
    if abs(wanted) > schemas.NUMBER_LIMIT:  # no record has such an id
        raise CredentialNotFound([voucher_id])
    found = vouchers.find_voucher(store, scope=caller.visible, voucher_id=wanted)
    caller.require(role, found.property.id)
    return found


def _business(caller: UserCaller, business_id: int, role: Role) -> Property:
    found = caller.visible.by_business.get(business_id)
    if found is None:
        raise invalid(problem("BusinessId", "names no business of this user", business_id))
    caller.require(role, found.id)
    return found


def _fields(body: schemas.VoucherInput) -> VoucherFields:
    return VoucherFields(
        access_code=body.AccessCode,
        minutes_included=body.MinutesIncluded,
        description=body.Description,
        valid_from=body.ValidFrom,
        valid_to=body.ValidTo,
        user_limit=body.UserLimit,
        system_id=body.SystemId,
    )


def _form_body(model: type[schemas.NexudusModel]) -> dict[str, Any]:
    return request_body(model, form=True)


router = APIRouter(prefix=PREFIX, tags=[TAG], route_class=NexudusRoute)


@router.get(
    "",
    operation_id="nexudus_accesstokens_list",
    summary="Find access tokens (paged, searched, ordered; also by ids)",
    response_model=schemas.VoucherList,
    responses=_FAILURES,
)
async def list_vouchers(request: Request, scope: ListScope, store: StoreDep) -> Response:
    wanted = parse_list_request(request.query_params.multi_items())
    page = vouchers.list_vouchers(store, scope=scope, query=wanted.query)
    return json_response(translate.render_list(page, wanted))


@router.get(
    "/commands",
    operation_id="nexudus_accesstokens_commands",
    summary="The commands that can run on access tokens",
    response_model=list[schemas.CommandInfo],
    responses=_FAILURES,
)
async def list_commands(scope: ListScope) -> Response:
    return json_response([command.describe() for command in commands.COMMANDS])


@router.get(
    "/{Id}",
    operation_id="nexudus_accesstokens_get",
    summary="Get one access token",
    response_model=schemas.Voucher,
    responses=_FAILURES,
)
async def get_voucher(Id: str, caller: CallerDep, store: StoreDep) -> Response:  # noqa: N803
    return json_response(translate.render_voucher(_locate(store, caller, Id, Role.READ)))


@router.post(
    "",
    operation_id="nexudus_accesstokens_create",
    summary="Create an access token",
    response_model=schemas.Success,
    responses=_FAILURES,
    openapi_extra=_form_body(schemas.VoucherInput),
)
async def create_voucher(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    body = schemas.VoucherInput.model_validate(
        await read_fields(request, context.settings.max_body_bytes)
    )
    made = vouchers.create_voucher(
        context.store,
        target=_business(caller, body.BusinessId, Role.CREATE),
        actor=caller.actor,
        fields=_fields(body),
    )
    return json_response(translate.created(made))


@router.put(
    "",
    operation_id="nexudus_accesstokens_replace",
    summary="Replace an access token (omitted properties are cleared)",
    response_model=schemas.Success,
    responses=_FAILURES,
    openapi_extra=_form_body(schemas.VoucherReplacement),
)
async def replace_voucher(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    body = schemas.VoucherReplacement.model_validate(
        await read_fields(request, context.settings.max_body_bytes)
    )
    current = _locate(context.store, caller, body.Id, Role.EDIT)
    if body.BusinessId != current.property.business_id:
        raise invalid(
            problem("BusinessId", "cannot change: a voucher stays in its business", body.BusinessId)
        )
    replaced = vouchers.replace_voucher(
        context.store,
        scope=caller.scope_with(Role.EDIT),
        actor=caller.actor,
        voucher_id=current.id,
        fields=_fields(body),
        on_withdrawal=end_withdrawn_sessions,
    )
    return json_response(translate.updated(replaced))


@router.delete(
    "/{Id}",
    operation_id="nexudus_accesstokens_delete",
    summary="Delete an access token",
    response_model=schemas.DeleteResult,
    responses=_FAILURES,
)
async def delete_voucher(Id: str, caller: CallerDep, store: StoreDep) -> Response:  # noqa: N803
    current = _locate(store, caller, Id, Role.DELETE)
    vouchers.delete_voucher(
        store,
        scope=caller.scope_with(Role.DELETE),
        actor=caller.actor,
        voucher_id=current.id,
        on_withdrawal=end_withdrawn_sessions,
    )
    return json_response(translate.DELETED)


@router.post(
    "/runcommand",
    operation_id="nexudus_accesstokens_runcommand",
    summary="Run a command on access tokens",
    response_model=schemas.CommandResult,
    responses=_FAILURES,
    openapi_extra=_form_body(schemas.CommandRun),
)
async def run_command(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    body = schemas.CommandRun.model_validate(
        await read_fields(request, context.settings.max_body_bytes)
    )
    message, value = commands.run(
        context.store,
        caller,
        body,
        lambda voucher_id: _locate(context.store, caller, voucher_id, Role.EDIT),
    )
    return json_response(commands.envelope(caller, message, value))


token_router = APIRouter(tags=[TAG], route_class=TokenRoute)


def _token_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


Issued = TypeVar("Issued")

#: The grant's credentials are checked inside the throttled attempt: a refused character there
#: is a failed authentication. Anywhere else it is an invalid request.
_CREDENTIAL_FIELDS = {"password": {"username", "password"}, "refresh_token": {"refresh_token"}}


def _token_form(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), max_num_fields=20, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise TokenRequestError("The body must be form-encoded UTF-8.") from None
    form = dict(pairs)
    checked_later = _CREDENTIAL_FIELDS.get(form.get("grant_type", ""), set())
    for name, value in pairs:
        if refused_character(name) or (name not in checked_later and refused_character(value)):
            raise TokenRequestError(f"{name!r} contains a NUL or control character.")
    return form


def _clean_credentials(*values: str, then: Callable[[], Issued]) -> Callable[[], Issued]:
    """``then``, run only when no credential holds a refused character (else a failure)."""

    def attempt() -> Issued:
        if any(refused_character(value) for value in values):
            raise Unauthenticated("Invalid credentials.")
        return then()

    return attempt


@token_router.post(
    "/api/token",
    operation_id="nexudus_token",
    summary="Bearer token: password or refresh_token grant (form-encoded)",
    response_model=schemas.TokenGrant,
    responses={
        400: {"model": schemas.TokenError, "description": "RFC 6749 error."},
        409: {
            "model": schemas.TokenError,
            "description": "Too many failed attempts for this user or address (Retry-After).",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
                            "username": {"type": "string"},
                            "password": {"type": "string"},
                            "refresh_token": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def token(request: Request, context: ContextDep) -> Response:
    settings = context.settings
    form = _token_form(await read_body(request, settings.max_body_bytes))
    grant = form.get("grant_type", "")
    lifetimes = {
        "access_seconds": settings.bearer_token_seconds,
        "refresh_seconds": settings.refresh_token_seconds,
    }
    try:
        if grant == "password":
            if not form.get("username") or not form.get("password"):
                return _token_error(400, "invalid_request", "username and password are required.")
            username, password = form["username"], form["password"]

            async def grant_password() -> IssuedBearer:
                if refused_character(username) or refused_character(password):
                    raise Unauthenticated("Invalid credentials.")
                return await issue_bearer_for_password(
                    context.store,
                    context.password_cache,
                    context.password_verifier,
                    email=username,
                    password=password,
                    **lifetimes,
                )

            issued = await context.auth_throttle.password(
                grant_password, email=username, address=client_address(request)
            )
        elif grant == "refresh_token":
            if not form.get("refresh_token"):
                return _token_error(400, "invalid_request", "refresh_token is required.")
            issued = await context.auth_throttle.secret(
                _clean_credentials(
                    form["refresh_token"],
                    then=lambda: refresh_bearer(
                        context.store, refresh_token=form["refresh_token"], **lifetimes
                    ),
                ),
                address=client_address(request),
            )
        else:
            return _token_error(
                400, "unsupported_grant_type", "grant_type is password or refresh_token."
            )
    except Unauthenticated as error:
        return _token_error(400, "invalid_grant", error.message)
    except TooManyFailures as error:
        return _token_error(
            409, "too_many_attempts", error.message, {"Retry-After": str(error.retry_after)}
        )
    return json_response(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "refresh_token": issued.refresh_token,
        },
        headers={"Cache-Control": "no-store"},
    )


#: Every other path or method under /api/spaces/ answers 404 in the Nexudus envelope.
@token_router.api_route(
    "/api/token",
    methods=["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
    operation_id="nexudus_token_other_methods",
)
async def token_other_methods() -> Response:
    """The token endpoint takes POST only: any other method is an RFC 6749 error body."""
    return _token_error(
        405, "invalid_request", "The token endpoint takes POST only.", {"Allow": "POST"}
    )


unknown_router = APIRouter(tags=[TAG], route_class=NexudusRoute)


@unknown_router.api_route(
    "/api/spaces/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
    operation_id="nexudus_unknown",
)
async def unknown(request: Request) -> Response:
    return json_response(
        failure_body(404, f"No operation at {request.url.path} ({request.method}).", []),
        status_code=404,
    )


REQUEST_SCHEMAS: tuple[type[schemas.NexudusModel], ...] = (
    schemas.VoucherInput,
    schemas.VoucherReplacement,
    schemas.CommandRun,
)
