"""How the API reports a failure: always the JSON body `{"error": {"code", "message"}}`, never a traceback.

The handlers map the errors of the layers below (and FastAPI's own) to that shape and a status code.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from efimis_etl.api.models import ErrorBody
from efimis_etl.errors import EtlError
from efimis_etl.identity import AuthError
from efimis_etl.service import Conflict, Gone, NotFound, TooManyImports
from efimis_etl.source.connstr import ConnectionStringError
from efimis_etl.source.policy import SourceRefused

# The error statuses a route documents in OpenAPI, beside its success response.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}
# Any other EtlError is the caller's input at fault: 400.
STATUS_OF: dict[type[EtlError], int] = {NotFound: 404, Conflict: 409, Gone: 410, TooManyImports: 429}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The one error body of the API."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default body echoes the input, which would put a password in the response.
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
        for err in exc.errors()
    )
    return error_response(422, "invalid-request", f"The request is not valid: {problems}.")


async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, "http-error", str(exc.detail))


async def bad_connection_string(_request: Request, exc: ConnectionStringError) -> JSONResponse:
    return error_response(422, "invalid-connection-string", str(exc))


async def refused_source(_request: Request, exc: SourceRefused) -> JSONResponse:
    return error_response(422, "source-refused", str(exc))


async def unauthenticated(_request: Request, exc: AuthError) -> JSONResponse:
    response = error_response(401, "unauthenticated", str(exc))
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


async def etl_error(_request: Request, exc: EtlError) -> JSONResponse:
    return error_response(STATUS_OF.get(type(exc), 400), exc.code, exc.message)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error the routes can raise in the API's error shape."""
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ConnectionStringError, bad_connection_string)  # type: ignore[arg-type]
    app.add_exception_handler(SourceRefused, refused_source)  # type: ignore[arg-type]
    app.add_exception_handler(AuthError, unauthenticated)  # type: ignore[arg-type]
    app.add_exception_handler(EtlError, etl_error)  # type: ignore[arg-type]
