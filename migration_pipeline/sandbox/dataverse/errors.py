"""Dataverse's error shape, `{"error": {"code": "0x8004....", "message": "..."}}`, as an exception.

Handlers raise `DataverseError`; the request wrapper in `app.py` turns it into the JSON body
and status the real service sends. The hex codes are the service's own (see the
"Web service error codes" reference); the one code the docs leave open is noted below.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

OBJECT_DOES_NOT_EXIST = "0x80040217"
RESOURCE_NOT_FOUND = "0x8006088a"  # unknown entity set or path segment
QUERY_ERROR = "0x80060888"  # unknown property, malformed option, unsupported segment
PRIVILEGE_DENIED = "0x80040220"
EXPIRED_AUTH_TICKET = "0x8004A101"
# The docs name BadAuthTicket/InvalidAuthTicket without a hex value; this simulator answers a
# missing or forged bearer token with the same code as an expired one, since clients react to
# the 401 status (get a new token), not to the code.
INVALID_AUTH_TICKET = EXPIRED_AUTH_TICKET
THROTTLED_REQUESTS = "0x80072322"
EXPIRED_VERSION_STAMP = "0x80044352"  # ExpiredVersionStamp: delta token too old
CHANGE_TRACKING_NOT_ENABLED = "0x80072491"  # ChangeTrackingNotEnabledForEntity
SERVICE_UNAVAILABLE = "0x80040216"  # injected 5xx faults


class DataverseError(Exception):
    """An error the simulator answers with, in the service's JSON error shape."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = orjson.dumps({"error": {"code": self.code, "message": self.message}})
        headers = {"OData-Version": "4.0", **self.headers}
        return Response(body, status_code=self.status, media_type="application/json; odata.metadata=minimal", headers=headers)


def query_error(message: str) -> DataverseError:
    """The 400 the service returns for any malformed or unsupported query."""
    return DataverseError(400, QUERY_ERROR, message)


def not_found(message: str) -> DataverseError:
    """A record that does not exist (0x80040217)."""
    return DataverseError(404, OBJECT_DOES_NOT_EXIST, message)


def no_resource(segment: str) -> DataverseError:
    """A path segment that names nothing: an unknown entity set, property or cast."""
    return DataverseError(404, RESOURCE_NOT_FOUND, f"Resource not found for the segment '{segment}'.")
