"""Model constraints: check every request against its operation's botocore input shape.

The request is parsed with moto's own botocore-based parsers (moto/core/parse.py
PROTOCOL_PARSERS, as BaseResponse.parse_parameters does when automated_parameter_parsing is
on), then the input shape is walked for `required`, string `pattern` (a Java regex matched
against the whole value), `min`/`max` length of strings, lists, maps and blobs, `min`/`max`
value of numbers, and `enum`. Every violation is reported in one message, as AWS does:
"2 validation errors detected: Value 'x' at 'a.b' failed to satisfy constraint: ...; ...".

Error codes, by protocol (AWS API references, "Common Errors" pages, e.g.
https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html, and observed answers):
- query (IAM, STS, SNS, Auto Scaling): ValidationError, 400
  (IAM's own: https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html).
- json / rest-json (DynamoDB, SSM, Step Functions, Secrets Manager, KMS, Lambda, EventBridge,
  CloudTrail): ValidationException, 400; CloudWatch Logs answers InvalidParameterException
  for the same message, Security Hub InvalidInputException
  (https://docs.aws.amazon.com/securityhub/1.0/APIReference/CommonErrors.html).
- ec2: MissingParameter for a missing required member, InvalidParameterValue otherwise, 400
  (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
- SQS (json, query-compatible): MissingParameter / InvalidParameterValue, 400
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html).
- rest-xml (S3): not checked here; moto dispatches S3 outside call_action (see rules_s3.py).
A request we cannot parse is let through and logged once per operation.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable

import regex
from botocore.model import Shape

from . import StrictError, error_response, log_once, rule

PROJECT_SERVICES = (
    "iam ec2 s3 autoscaling elbv2 dynamodb ssm stepfunctions sns sqs kms secretsmanager "
    "cloudtrail securityhub events lambda sts logs organizations"
).split()

CODE_OVERRIDES = {
    "logs": "InvalidParameterException",
    "securityhub": "InvalidInputException",
    "organizations": "InvalidInputException",
}

_patterns: dict[str, Any] = {}
_pattern_lock = threading.Lock()
UNCOMPILABLE: set[str] = set()
# Java writes code points above U+FFFF as UTF-16 surrogate pairs: \uD800\uDC00 is U+10000.
_SURROGATE_PAIR = re.compile(r"\\u(D[89ABab][0-9A-Fa-f]{2})\\u(D[C-Fc-f][0-9A-Fa-f]{2})")


def java_pattern(pattern: str) -> Any:
    """Compile an AWS (Java) pattern for whole-value matching; None if it does not compile.

    `regex` understands \\p{L}, \\p{Z}, \\p{N}...; \\w, \\d, \\s are narrowed to ASCII as in
    Java's defaults. A pattern that still does not compile is skipped and counted.
    """
    with _pattern_lock:
        if pattern in _patterns:
            return _patterns[pattern]

    def pair(m: re.Match[str]) -> str:
        hi, lo = int(m.group(1), 16), int(m.group(2), 16)
        return "\\U%08X" % (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))

    try:
        compiled = regex.compile(_narrow_classes(_SURROGATE_PAIR.sub(pair, pattern)))
    except Exception:  # noqa: BLE001 - any compile failure means: skip this pattern
        compiled = None
        UNCOMPILABLE.add(pattern)
    with _pattern_lock:
        _patterns[pattern] = compiled
    return compiled


_JAVA_CLASSES = {"w": "a-zA-Z0-9_", "d": "0-9", "s": " \\t\\n\\x0B\\f\\r"}


def _narrow_classes(pattern: str) -> str:
    """Java's \\w \\d \\s (and \\W \\D \\S outside brackets) are ASCII; Python's are Unicode."""
    out, i, depth = [], 0, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            if escaped in _JAVA_CLASSES:
                body = _JAVA_CLASSES[escaped]
                out.append(body if depth else f"[{body}]")
            elif escaped.lower() in _JAVA_CLASSES and not depth:
                out.append(f"[^{_JAVA_CLASSES[escaped.lower()]}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        out.append(char)
        i += 1
    return "".join(out)


def _render(value: Any) -> str:
    """A value as AWS (Java) prints it in validation messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, bytes):
        return "java.nio.HeapByteBuffer[pos=0 lim=%d cap=%d]" % (len(value), len(value))
    return str(value)


def _scalar_violations(shape: Shape, value: Any) -> list[str]:
    """Constraint texts (AWS wording) that `value` breaks."""
    meta = shape.metadata
    out: list[str] = []
    kind = shape.type_name
    if kind in ("string", "blob", "list", "map"):
        size = len(value) if hasattr(value, "__len__") else None
        if size is not None and "max" in meta and size > meta["max"]:
            out.append(f"Member must have length less than or equal to {meta['max']}")
        if size is not None and "min" in meta and size < meta["min"]:
            out.append(f"Member must have length greater than or equal to {meta['min']}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in meta and value > meta["max"]:
            out.append(f"Member must have value less than or equal to {meta['max']}")
        if "min" in meta and value < meta["min"]:
            out.append(f"Member must have value greater than or equal to {meta['min']}")
    if kind == "string" and isinstance(value, str):
        pattern = meta.get("pattern")
        compiled = java_pattern(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            out.append(f"Member must satisfy regular expression pattern: {pattern}")
        enum = shape.enum if hasattr(shape, "enum") else meta.get("enum")
        if enum and value not in enum:
            out.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    return out


def _all_constraints(shape: Shape) -> str:
    meta, items = shape.metadata, []
    if "max" in meta:
        items.append(f"Member must have length less than or equal to {meta['max']}")
    if "min" in meta:
        items.append(f"Member must have length greater than or equal to {meta['min']}")
    if "pattern" in meta:
        items.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    if meta.get("enum"):
        items.append(f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
    return "[" + ", ".join(items) + "]"


class Violation:
    def __init__(self, path: str, wire: str, value: Any, text: str, sensitive: bool):
        self.path, self.wire, self.value, self.text = path, wire, value, text
        self.sensitive = sensitive

    def coral(self) -> str:
        shown = "" if self.sensitive and self.value is not None else f" {self._value()}"
        return f"Value{shown} at '{self.path}' failed to satisfy constraint: {self.text}"

    def _value(self) -> str:
        return "null" if self.value is None else f"'{_render(self.value)}'"


def _name(member: str) -> str:
    return member[:1].lower() + member[1:]


def _ec2_wire(member: str, shape: Shape) -> str:
    # As moto's EC2QueryParser names members on the wire.
    name = shape.serialization.get("queryName") or shape.serialization.get("name") or member
    return name[:1].upper() + name[1:]


def walk(shape: Shape, value: Any, path: str, wire: str, found: list[Violation]) -> None:
    """Append every constraint `value` breaks, at its Coral path (and EC2 wire name)."""
    if value is None:
        return
    sensitive = bool(shape.metadata.get("sensitive"))
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict) or shape.metadata.get("document"):
            return
        for member, mshape in shape.members.items():
            mpath = f"{path}.{_name(member)}" if path else _name(member)
            mwire = f"{wire}.{_ec2_wire(member, mshape)}" if wire else _ec2_wire(member, mshape)
            if member in shape.required_members and value.get(member) is None:
                if not mshape.metadata.get("idempotencyToken"):
                    found.append(Violation(mpath, mwire, None, "Member must not be null", False))
                continue
            walk(mshape, value.get(member), mpath, mwire, found)
        return
    for text in _scalar_violations(shape, value):
        found.append(Violation(path, wire, value, text, sensitive))
    if kind == "list" and isinstance(value, list):
        for i, item in enumerate(value, 1):
            walk(shape.member, item, f"{path}.{i}.member", f"{wire}.{i}", found)
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            if _scalar_violations(shape.key, key):
                text = "Map keys must satisfy constraint: " + _all_constraints(shape.key)
                found.append(Violation(path, wire, value, text, sensitive))
                break
        for key, item in value.items():
            if shape.value.type_name in ("structure", "list", "map"):
                walk(shape.value, item, f"{path}.{key}", f"{wire}.{key}", found)
            elif _scalar_violations(shape.value, item):
                text = "Map value must satisfy constraint: " + _all_constraints(shape.value)
                found.append(Violation(path, wire, value, text, sensitive))
                break


def to_error(service: str, protocol: str, found: list[Violation]) -> StrictError:
    if protocol == "ec2" or service == "sqs":
        first = found[0]
        if first.value is None:
            return StrictError(
                "MissingParameter", f"The request must contain the parameter {first.wire}"
            )
        return StrictError(
            "InvalidParameterValue",
            f"Value ({_render(first.value)}) for parameter {first.wire} is invalid. {first.text}",
        )
    count = len(found)
    message = f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(
        v.coral() for v in found
    )
    default = "ValidationError" if protocol == "query" else "ValidationException"
    return StrictError(CODE_OVERRIDES.get(service, default), message)


def model_constraints() -> None:
    """Every request of every service with a botocore model (all but S3) is checked against
    its operation's input shape: required members, patterns (whole value, Java syntax),
    length of strings/lists/maps/blobs, value range of numbers, enums."""


for _protocol, _code, _doc in (
    ("query", "ValidationError", "https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html"),
    (
        "json/rest-json",
        "ValidationException (logs: InvalidParameterException, securityhub: "
        "InvalidInputException, sqs: MissingParameter/InvalidParameterValue)",
        "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html",
    ),
    (
        "ec2",
        "MissingParameter / InvalidParameterValue",
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html",
    ),
):
    rule(f"model-constraints-{_protocol}", "*", _code, _doc)(model_constraints)


def parse_params(response: Any, request: Any, service_model: Any, operation: Any) -> Any:
    """Parameters of `request` as moto's own botocore-based parser reads them."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import determine_request_protocol, normalize_request

    normalized = normalize_request(request)
    protocol = determine_request_protocol(service_model, normalized.content_type)
    parser = PROTOCOL_PARSERS[protocol](operation, map_type=dict)
    uri_match = getattr(response, "uri_match", None)
    params = parser.parse(
        {
            "method": normalized.method,
            "values": normalized.values,
            "headers": normalized.headers,
            "body": normalized.data,
            "url_path": normalized.path,
            "url_params": uri_match.groupdict() if uri_match else {},
        }
    )
    return protocol, params


# Named rules that need the parsed request: (service, action) -> [fn(response, params)].
REQUEST_RULES: dict[tuple[str, str], list[Callable[[Any, dict[str, Any]], None]]] = {}


def on_request(service: str, *actions: str) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        for action in actions:
            REQUEST_RULES.setdefault((service, action), []).append(fn)
        return fn

    return register


def check(response: Any) -> Any:
    """The error response for this request, or None to let moto handle it."""
    from moto.core.utils import get_service_model

    request = getattr(response, "_strict_request", None)
    service = response.boto3_service_name
    if request is None or not service or service == "s3":
        return None
    operation_key = f"{service} {getattr(response, 'method', '')} {getattr(response, 'path', '')}"
    try:
        action = response._get_action()
        if not action:
            return None
        operation_key = f"{service}.{action}"
        service_model = get_service_model(service)
        operation = service_model.operation_model(action)
        protocol, params = parse_params(response, request, service_model, operation)
        found: list[Violation] = []
        if operation.input_shape is not None:
            walk(operation.input_shape, params, "", "", found)
        if found:
            raise to_error(service, protocol, found)
        for named_rule in REQUEST_RULES.get((service, action), []):
            named_rule(response, params)
    except StrictError as error:
        return error_response(response, error)
    except Exception as exc:  # noqa: BLE001 - never fail a request because of our parser
        log_once(operation_key, f"not checked {operation_key}: {type(exc).__name__}: {exc}")
    return None


def install() -> None:
    """Stash the request in setup_class; check it in call_action before moto runs it."""
    from moto.core.responses import BaseResponse

    if getattr(BaseResponse.call_action, "_strict", False):
        return
    original_setup, original_call = BaseResponse.setup_class, BaseResponse.call_action

    def setup_class(self: Any, request: Any, full_url: str, headers: Any, *args: Any, **kw: Any) -> Any:
        self._strict_request = request
        return original_setup(self, request, full_url, headers, *args, **kw)

    def call_action(self: Any) -> Any:
        refused = check(self)
        return refused if refused is not None else original_call(self)

    call_action._strict = True  # type: ignore[attr-defined]
    BaseResponse.setup_class = setup_class  # type: ignore[method-assign]
    BaseResponse.call_action = call_action  # type: ignore[method-assign]


def model_report() -> dict[str, Any]:
    """Which project services' models load, and how many of their patterns compile."""
    from moto.core.utils import get_service_model

    loaded, failed, patterns, skipped = [], {}, 0, []
    for service in PROJECT_SERVICES:
        try:
            model = get_service_model(service)
        except Exception as exc:  # noqa: BLE001
            failed[service] = str(exc)
            continue
        loaded.append(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern:
                patterns += 1
                if java_pattern(pattern) is None:
                    skipped.append(f"{service}:{name}")
    return {
        "loaded": loaded,
        "failed": failed,
        "patterns": patterns,
        "patterns_skipped": skipped,
        "uncompilable": sorted(UNCOMPILABLE),
    }
