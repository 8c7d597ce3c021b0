"""Control endpoints of strict mode, on the moto server's own port:

GET /strict-api/rules                     -> [{name, service, code, doc, summary}, ...]
GET /strict-api/models                    -> which project service models loaded, patterns
GET /strict-api/function-url/<function>   -> what an anonymous request to the function's URL
    gets: 200 {"allowed": true} or 403 {"Message": "Forbidden"} (404 if no URL).
    Optional ?region=...&account=... narrow the search (default: every account and region).

moto's own /moto-api/ routes are chosen by path in DomainDispatcherApplication.get_application;
these are served the same way, by wrapping DomainDispatcherApplication.__call__.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from werkzeug.wrappers import Request, Response

from . import RULES, rule
from .model import model_report

PREFIX = "/strict-api/"


def _statement_allows(statement: dict[str, Any], action: str, auth_type_condition: bool) -> bool:
    if statement.get("Effect", "Allow") != "Allow":
        return False
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        principal = principal.get("AWS")
    principals = principal if isinstance(principal, list) else [principal]
    if "*" not in principals:
        return False
    actions = statement.get("Action")
    actions = actions if isinstance(actions, list) else [actions]
    if not any(isinstance(a, str) and fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
        return False
    if not auth_type_condition:
        return True
    # moto keeps AddPermission's FunctionUrlAuthType as a field; AWS renders it as a condition.
    if statement.get("FunctionUrlAuthType") == "NONE":
        return True
    for pairs in (statement.get("Condition") or {}).values():
        for key, value in (pairs or {}).items():
            if key.lower() == "lambda:functionurlauthtype" and value in ("NONE", ["NONE"]):
                return True
    return False


@rule(
    "lambda-function-url-public-access",
    "lambda",
    "403 {\"Message\":\"Forbidden\"}",
    "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html",
)
def function_url_access(function: Any) -> tuple[int, dict[str, Any]]:
    """An anonymous request to a function URL is answered 403 Forbidden unless the URL's
    AuthType is NONE and the function's resource policy grants lambda:InvokeFunctionUrl to
    principal * with condition lambda:FunctionUrlAuthType = NONE and (for URLs created since
    October 2025, i.e. every URL created here) lambda:InvokeFunction to principal *. An
    AWS_IAM URL refuses unsigned requests. Served by GET /strict-api/function-url/<name>.
    Source: Lambda Developer Guide, "Control access to Lambda function URLs"."""
    url_config = getattr(function, "url_config", None)
    if url_config is None:
        return 404, {"Message": "The function has no function URL"}
    if url_config.config.get("AuthType") != "NONE":
        return 403, {"Message": "Forbidden"}
    statements = list(getattr(function.policy, "statements", []))
    url_granted = any(_statement_allows(s, "lambda:InvokeFunctionUrl", True) for s in statements)
    invoke_granted = any(_statement_allows(s, "lambda:InvokeFunction", False) for s in statements)
    if url_granted and invoke_granted:
        return 200, {"allowed": True, "functionUrl": url_config.url}
    return 403, {"Message": "Forbidden"}


def _find_function(name: str, account: str | None, region: str | None) -> Any:
    from moto.awslambda.models import lambda_backends

    for account_id in list(lambda_backends.keys()):
        if account and account_id != account:
            continue
        regions = lambda_backends[account_id]
        for region_name in list(regions.keys()):
            if region and region_name != region:
                continue
            try:
                return regions[region_name].get_function(name)
            except Exception:  # noqa: BLE001 - not in this account/region
                continue
    return None


def handle(environ: dict[str, Any]) -> Response:
    request = Request(environ)
    path = request.path[len(PREFIX):].strip("/")
    if path == "rules":
        return _json(200, RULES)
    if path == "models":
        return _json(200, model_report())
    if path.startswith("function-url/"):
        name = path[len("function-url/"):]
        function = _find_function(name, request.args.get("account"), request.args.get("region"))
        if function is None:
            return _json(404, {"Message": f"Function not found: {name}"})
        status, body = function_url_access(function)
        return _json(status, body)
    return _json(404, {"Message": f"Unknown strict-api route: {request.path}"})


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def install() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith(PREFIX):
            return handle(environ)(environ, start_response)
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = dispatch
