"""Clarifai status codes as errors, and their HTTP equivalents.

Services raise `ApiError`; transports turn it into a response `status` (REST and gRPC alike).
"""

from __future__ import annotations

from clarifai_grpc.grpc.api.status import status_code_pb2, status_pb2

SC = status_code_pb2  # short alias: SC.SUCCESS, SC.CONN_DOES_NOT_EXIST, ...

DESCRIPTIONS: dict[int, str] = {
    SC.SUCCESS: "Ok",
    SC.MIXED_STATUS: "Mixed Success",
    SC.FAILURE: "Failure",
    SC.NOT_IMPLEMENTED: "Not implemented",
    SC.CONN_ACCOUNT_ISSUES: "Account or plan issue",
    SC.CONN_EXCEEDS_LIMITS: "Request exceeds limits",
    SC.CONN_INSUFFICIENT_SCOPES: "API key has insufficient scopes",
    SC.CONN_KEY_INVALID: "Invalid API key or Invalid API key/application pair",
    SC.CONN_BAD_REQUEST_FORMAT: "Bad request format",
    SC.CONN_DOES_NOT_EXIST: "Resource does not exist",
    SC.CONN_INVALID_REQUEST: "Invalid request",
    SC.CONN_METHOD_NOT_ALLOWED: "Method not allowed",
    SC.MODEL_DOES_NOT_EXIST: "Model does not exist",
    SC.MODEL_INVALID_ARGUMENT: "Model invalid argument",
    SC.MODEL_INVALID_REQUEST: "Invalid request",
    SC.MODEL_PREDICTION_FAILED: "Model prediction failed",
    SC.WORKFLOW_DOES_NOT_EXIST: "Workflow does not exist",
    SC.WORKFLOW_INVALID_ARGUMENT: "Workflow invalid argument",
    SC.WORKFLOW_INVALID_GRAPH: "Workflow graph is invalid",
    SC.WORKFLOW_INVALID_REQUEST: "Invalid request",
    SC.INPUT_SUCCESS: "Download complete",
    SC.INPUT_DUPLICATE: "Input already exists",
    SC.INPUT_INVALID_ARGUMENT: "Input invalid argument",
    SC.INPUT_INVALID_URL: "Invalid URL",
    SC.INPUT_OVER_LIMIT: "Input over limit",
    SC.INPUT_INVALID_REQUEST: "Invalid request",
    SC.INPUT_CONNECTION_FAILED: "Input connection failed",
    SC.ALL_INPUT_INVALID_BYTES: "Input image decoding failed. Check URLs and bytes sent",
    SC.PREDICT_INVALID_REQUEST: "Invalid request",
    SC.CONCEPTS_INVALID_REQUEST: "Invalid request",
    SC.DATABASE_DUPLICATE_KEY: "Object has a duplicate ID; another object with same ID already exist.",
    SC.RPC_MAX_MESSAGE_SIZE_EXCEEDED: "Request is too large",
    SC.RPC_REQUEST_TIMEOUT: "Request timed out",
    SC.COLLECTOR_MISSING: "Collector does not exist",
    SC.COLLECTOR_ACTIVE: "Collector is active",
    SC.COLLECTOR_INACTIVE: "Collector is inactive",
    SC.COLLECTOR_POST_INPUT_FAILED: "Collector could not post the input",
    SC.MODULE_DOES_NOT_EXIST: "Module does not exist",
    SC.MODULE_INVALID_ARGUMENT: "Module invalid argument",
    SC.INTERNAL_SERVER_ISSUE: "Internal server issue",
}

_HTTP_BY_CODE: dict[int, int] = {
    SC.SUCCESS: 200,
    SC.MIXED_STATUS: 200,
    SC.ACCEPTED: 202,
    SC.CONN_KEY_INVALID: 401,
    SC.CONN_KEY_NOT_FOUND: 401,
    SC.CONN_CREDENTIALS_INVALID: 401,
    SC.CONN_INSUFFICIENT_SCOPES: 403,
    SC.CONN_ACCOUNT_ISSUES: 403,
    SC.CONN_DOES_NOT_EXIST: 404,
    SC.MODEL_DOES_NOT_EXIST: 404,
    SC.WORKFLOW_DOES_NOT_EXIST: 404,
    SC.INPUT_DOES_NOT_EXIST: 404,
    SC.COLLECTOR_MISSING: 404,
    SC.MODULE_DOES_NOT_EXIST: 404,
    SC.CONN_METHOD_NOT_ALLOWED: 405,
    SC.INPUT_DUPLICATE: 409,
    SC.DATABASE_DUPLICATE_KEY: 409,
    SC.WORKFLOW_DUPLICATE: 409,
    SC.RPC_MAX_MESSAGE_SIZE_EXCEEDED: 413,
    SC.CONN_EXCEEDS_LIMITS: 429,
    SC.CONN_THROTTLED: 429,
    SC.MODEL_PREDICTION_FAILED: 424,
    SC.INPUT_CONNECTION_FAILED: 424,
    SC.NOT_IMPLEMENTED: 501,
    SC.RPC_REQUEST_TIMEOUT: 504,
    SC.INTERNAL_SERVER_ISSUE: 500,
}


def http_status_for(code: int) -> int:
    """The HTTP status a REST response with this Clarifai code carries (400 for other errors)."""
    return _HTTP_BY_CODE.get(code, 200 if code == SC.SUCCESS else 400)


def code_name(code: int) -> str:
    try:
        return SC.StatusCode.Name(code)
    except ValueError:
        return str(code)


def make_status(code: int, description: str = "", details: str = "") -> status_pb2.Status:
    return status_pb2.Status(
        code=code,
        description=description or DESCRIPTIONS.get(code, code_name(code)),
        details=details,
    )


class ApiError(Exception):
    """A failure with a Clarifai status code, a short description and user-facing details."""

    def __init__(self, code: int, details: str = "", description: str = "", field: str = ""):
        self.code = code
        self.description = description or DESCRIPTIONS.get(code, code_name(code))
        self.details = details
        # The form field this error belongs to, so the web UI can show it next to the input.
        self.field = field
        super().__init__(f"{code_name(code)}: {details or self.description}")

    def to_status(self) -> status_pb2.Status:
        return make_status(self.code, self.description, self.details)


def not_found(what: str = "Resource", ident: str = "") -> ApiError:
    """11101 for a missing object AND for another tenant's object (never 'forbidden')."""
    details = f"{what} '{ident}' does not exist" if ident else f"{what} does not exist"
    return ApiError(SC.CONN_DOES_NOT_EXIST, details)


def bad_request(details: str, code: int = SC.CONN_INVALID_REQUEST, field: str = "") -> ApiError:
    return ApiError(code, details, field=field)
