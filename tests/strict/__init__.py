"""Strict mode for the moto emulator: refuse what real AWS refuses, as AWS refuses it.

Installed by tests/strict_aws.py (imported by tests/moto_launcher.py). The pieces:
- model.py: every request of every service with a botocore model is parsed with moto's own
  request parsers and checked against the operation's input shape (required, pattern, length,
  value range, enum).
- rules_*.py: documented limits the models do not carry, each a named rule citing its AWS page.
- api.py: GET /strict-api/rules, /strict-api/models, /strict-api/function-url/<name>.

This module holds what they share: the rule registry and the error type.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

from moto.core.exceptions import ServiceException

# Every active rule, as served by GET /strict-api/rules: {name, service, code, doc, summary}.
RULES: list[dict[str, str]] = []


def rule(name: str, service: str, code: str, doc: str) -> Callable[[Any], Any]:
    """Register a rule: `doc` is the AWS page the limit and the error code come from."""

    def register(fn: Any) -> Any:
        summary = (fn.__doc__ or "").strip().split("\n")[0]
        RULES.append(
            {"name": name, "service": service, "code": code, "doc": doc, "summary": summary}
        )
        return fn

    return register


class StrictError(ServiceException):
    """An AWS error raised by a strict rule, with the HTTP status AWS answers it with.

    moto's serializers take the status from the service model's error shape; for codes the
    model lacks (most S3 and EC2 codes) they would say 400, so `http_status` overrides it
    (see install_status_override).
    """

    def __init__(self, code: str, message: str, http_status: int = 400):
        super().__init__(code, message)
        self.http_status = http_status
        log_refusal(code, message)


def log_refusal(code: str, message: str) -> None:
    """Every refusal goes to the server log (target/moto-logs/ in the Rust harness)."""
    print(f"[strict] refused: {code}: {message[:500]}", file=sys.stderr, flush=True)


_logged: set[str] = set()
_log_lock = threading.Lock()


def log_once(key: str, message: str) -> None:
    """Tell stderr once per key (e.g. once per operation we could not parse)."""
    with _log_lock:
        if key in _logged:
            return
        _logged.add(key)
    print(f"[strict] {message}", file=sys.stderr, flush=True)


def install_status_override() -> None:
    """Make BaseResponse.serialized honour StrictError.http_status (S3 uses it too)."""
    from moto.core.responses import ActionResult, BaseResponse

    original = BaseResponse.serialized
    if getattr(original, "_strict", False):
        return

    def serialized(self: BaseResponse, action_result: ActionResult) -> Any:
        status, headers, body = original(self, action_result)
        status_override = getattr(action_result.result, "http_status", None)
        if isinstance(action_result.result, Exception) and status_override:
            status = status_override
        return status, headers, body

    serialized._strict = True  # type: ignore[attr-defined]
    BaseResponse.serialized = serialized  # type: ignore[method-assign]


def error_response(response: Any, error: Exception) -> Any:
    """Serialize `error` in the protocol of the request `response` is handling."""
    from moto.core.responses import ActionResult

    status, headers, body = response.serialized(ActionResult(error))
    headers, body = response._enrich_response(headers, body)
    return status, headers, body
