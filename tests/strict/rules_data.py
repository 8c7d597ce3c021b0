"""Data size limits: DynamoDB items, Step Functions state data."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from . import StrictError, rule
from .model import on_request

DYNAMODB_ITEM_MAX = 400 * 1024
SFN_PAYLOAD_MAX = 256 * 1024


def _value_size(value: dict[str, Any]) -> int:
    """Bytes of one AttributeValue, per DynamoDB's item size rules."""
    (kind, inner), = value.items() if len(value) == 1 else (("NULL", True),)
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "B":
        return len(inner) if isinstance(inner, (bytes, bytearray)) else len(str(inner))
    if kind == "N":
        return _number_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + _value_size(v) for k, v in inner.items())
    return 0


def _number_size(number: str) -> int:
    try:
        digits = Decimal(number).normalize().as_tuple().digits
    except (InvalidOperation, TypeError):
        return len(str(number))
    return math.ceil(len(digits) / 2) + 1


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + _value_size(v) for name, v in item.items())


@rule(
    "dynamodb-item-size",
    "dynamodb",
    "ValidationException",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items ; "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html",
)
@on_request("dynamodb", "PutItem", "BatchWriteItem", "TransactWriteItems")
def check_item_size(response: Any, params: dict[str, Any]) -> None:
    """An item is at most 400 KB (409,600 bytes): attribute names plus values, sized as
    DynamoDB documents (UTF-8 strings, numbers ~1 byte per 2 digits + 1, 1 byte for a
    boolean/null, 3 bytes + 1 per element for lists and maps). PutItem, BatchWriteItem puts,
    TransactWriteItems puts; UpdateItem keeps moto's own check. Source: DynamoDB Developer
    Guide, "Service, account, and table quotas" (item size) and "Item sizes and formats"."""
    items = [params.get("Item") or {}]
    for requests in (params.get("RequestItems") or {}).values():
        items += [(r.get("PutRequest") or {}).get("Item") or {} for r in requests]
    items += [(t.get("Put") or {}).get("Item") or {} for t in params.get("TransactItems") or []]
    if any(item_size(item) > DYNAMODB_ITEM_MAX for item in items):
        raise StrictError("ValidationException", "Item size has exceeded the maximum allowed size")


def _duplicate_set(value: Any) -> list[Any] | None:
    """The first SS/NS/BS with a repeated member in an AttributeValue (nested in L/M too)."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (kind, inner), = value.items()
    if kind in ("SS", "BS") and isinstance(inner, list):
        keys = [bytes(v) if isinstance(v, (bytes, bytearray)) else v for v in inner]
        return inner if len(set(keys)) < len(keys) else None
    if kind == "NS" and isinstance(inner, list):
        try:
            numbers = [Decimal(n) for n in inner]
        except (InvalidOperation, TypeError):
            return None
        return inner if len(set(numbers)) < len(numbers) else None
    children = inner if kind == "L" else inner.values() if kind == "M" else []
    return next((d for d in map(_duplicate_set, children) if d is not None), None)


@rule(
    "dynamodb-set-duplicates",
    "dynamodb",
    "ValidationException",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.SetTypes",
)
@on_request("dynamodb", "PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems")
def check_set_duplicates(response: Any, params: dict[str, Any]) -> None:
    """The values of a set (SS, NS, BS) must be unique; DynamoDB refuses a write carrying a
    set with a repeated member (numbers compared by value) in an item or an expression value.
    moto accepts it and keeps the duplicates. Source: DynamoDB Developer Guide, "Supported
    data types" (sets: "the values within a set must be unique")."""
    values: list[Any] = []
    for source in (params, *((t.get("Put") or t.get("Update") or {}) for t in params.get("TransactItems") or [])):
        values += list((source.get("Item") or {}).values())
        values += list((source.get("ExpressionAttributeValues") or {}).values())
    for requests in (params.get("RequestItems") or {}).values():
        values += [v for r in requests for v in ((r.get("PutRequest") or {}).get("Item") or {}).values()]
    duplicate = next((d for d in map(_duplicate_set, values) if d is not None), None)
    if duplicate is not None:
        members = ", ".join(map(str, duplicate))
        raise StrictError(
            "ValidationException",
            f"One or more parameter values were invalid: Input collection [{members}] contains duplicates.",
        )


@rule(
    "sfn-data-limit",
    "stepfunctions",
    "States.DataLimitExceeded (execution fails; States.ALL does not catch it)",
    "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html ; "
    "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html",
)
def within_quota(value: Any) -> bool:
    """State input/output of at most 256 KiB (262,144 bytes as UTF-8 JSON). moto already
    fails Task results (Lambda and service integrations) and every state's output with
    States.DataLimitExceeded; strict mode adds the state input after Parameters/Arguments,
    lets exactly 256 KiB through, and stops States.ALL in Catch/Retry from matching
    States.DataLimitExceeded and States.Runtime. Execution input over the limit is refused by
    StartExecution (model: input max 262144). Source: Step Functions Developer Guide,
    "Handling errors in Step Functions workflows" (States.ALL, States.DataLimitExceeded,
    States.Runtime) and "Step Functions service quotas" (256 KiB input/output)."""
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    text = value if isinstance(value, str) else to_json_str(value)
    return len(text.encode("utf-8")) <= SFN_PAYLOAD_MAX


def _install_sfn() -> None:
    import moto.stepfunctions.parser.quotas as quotas
    from moto.stepfunctions.parser.asl.component.common.error_name import (
        error_equals_decl,
        states_error_name,
    )
    from moto.stepfunctions.parser.asl.component.common.parargs import Parargs
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )

    for module in (quotas, state, state_task_lambda, state_task_service):
        module.is_within_size_quota = within_quota

    ErrorEqualsDecl = error_equals_decl.ErrorEqualsDecl
    StatesErrorName = states_error_name.StatesErrorName
    Type = error_equals_decl.StatesErrorNameType
    uncatchable_by_all = {Type.StatesStatesDataLimitExceeded, Type.StatesRuntime}
    original_equals = ErrorEqualsDecl._eval_body

    def error_equals(self: Any, env: Any) -> None:
        error_name = env.stack[-1] if env.stack else None
        original_equals(self, env)
        if (
            isinstance(error_name, StatesErrorName)
            and error_name.typ in uncatchable_by_all
            and error_name not in self.error_names
        ):
            env.stack[-1] = False

    ErrorEqualsDecl._eval_body = error_equals
    _keep_data_limit_errors(Type.StatesStatesDataLimitExceeded)

    original_parargs = Parargs._eval_body

    def parargs(self: Any, env: Any) -> None:
        original_parargs(self, env)
        if env.stack and not within_quota(env.stack[-1]):
            _fail_data_limit(env, "The state input after Parameters/Arguments")

    Parargs._eval_body = parargs


def _keep_data_limit_errors(data_limit: Any) -> None:
    """moto's service integrations (DynamoDB, SNS, SQS, aws-sdk...) turn every exception of
    their task, its own States.DataLimitExceeded included, into e.g.
    DynamoDB.AmazonDynamoDBException; let that one through as ExecutionState does."""
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: F401
        state_task_service_factory,
    )

    def wrap(cls: Any) -> None:
        original = cls.__dict__["_from_error"]

        def from_error(self: Any, env: Any, ex: Exception) -> Any:
            if isinstance(ex, FailureEventException):
                typ = getattr(ex.failure_event.error_name, "typ", None)
                if typ == data_limit:
                    return ex.failure_event
            return original(self, env, ex)

        cls._from_error = from_error

    pending = [ExecutionState]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not ExecutionState and "_from_error" in cls.__dict__:
            wrap(cls)


def _fail_data_limit(env: Any, what: str) -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error_type = StatesErrorNameType.StatesStatesDataLimitExceeded
    raise FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error_type),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                executionFailedEventDetails=ExecutionFailedEventDetails(
                    error=error_type.to_name(),
                    cause=f"{what} has a size exceeding the maximum number of bytes service limit.",
                )
            ),
        )
    )


def _install_dynamodb() -> None:
    """moto refuses items over 405,000 of its own bytes (on every attribute set, so UpdateItem
    too); AWS's limit is 409,600. Keep moto's check for UpdateItem at AWS's limit."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type

    def setitem(self: Any, key: str, value: Any) -> None:
        def size(item: Any) -> int:
            if isinstance(item, dynamo_type.DynamoType):
                return item.size()
            return dynamo_type.bytesize(str(item))

        current = sum(size(item) for item in list(self.keys()) + list(self.values()))
        if current + dynamo_type.bytesize(key) + size(value) > DYNAMODB_ITEM_MAX:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    dynamo_type.LimitedSizeDict.__setitem__ = setitem


def install() -> None:
    _install_sfn()
    _install_dynamodb()
