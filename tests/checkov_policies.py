"""Runs checkov on what Terraform would grant each function.

Terraform builds every role policy from infra/permissions.json at plan time, which checkov's
static scan of infra/ cannot evaluate. This renders each function's policy (placeholders
replaced with example ARNs, as infra/main.tf does) into a throw-away .tf file and scans it with
the IAM checks (CKV_AWS_286-290, 355 and the rest), then scans infra/ itself.

Usage: python3 tests/checkov_policies.py [CHECKOV]   (exit 1 when a rendered policy fails)
"""

import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = {
    "{kill_switch_parameter}": "arn:aws:ssm:us-east-1:111122223333:parameter/ir/kill-switch",
    "{incidents_table}": "arn:aws:dynamodb:us-east-1:111122223333:table/ir-incidents",
    "{approvals_table}": "arn:aws:dynamodb:us-east-1:111122223333:table/ir-approvals",
    "{pre_state_table}": "arn:aws:dynamodb:us-east-1:111122223333:table/ir-pre-state",
    "{state_machine}": "arn:aws:states:us-east-1:111122223333:stateMachine:ir-incident-response",
    "{alerts_topic}": "arn:aws:sns:us-east-1:111122223333:ir-alerts",
    "{evidence_key_arn}": "arn:aws:kms:us-east-1:111122223333:key/example",
    "{ssm_secrets}": "arn:aws:ssm:us-east-1:111122223333:parameter/ir/slack",
    "{secretsmanager_secrets}": "arn:aws:secretsmanager:us-east-1:111122223333:secret:ir/jira-AbCdEf",
}
PARTS = {
    "{partition}": "aws",
    "{account}": "111122223333",
    "{region}": "us-east-1",
    "{prefix}": "ir",
    "{evidence_bucket}": "ir-evidence",
}


def rendered_tf() -> str:
    permissions = json.loads((ROOT / "infra/permissions.json").read_text())
    blocks = []
    for function, statements in permissions.items():
        doc = {"Version": "2012-10-17", "Statement": []}
        for st in statements:
            resource = EXAMPLE.get(st["Resource"], st["Resource"])
            for k, v in PARTS.items():
                resource = resource.replace(k, v)
            statement = {"Effect": st["Effect"], "Action": st["Action"], "Resource": resource}
            if "Condition" in st:
                statement["Condition"] = st["Condition"]
            doc["Statement"].append(statement)
        blocks.append(
            f'resource "aws_iam_role_policy" "{function}" {{\n'
            f'  name   = "{function}"\n  role   = "{function}"\n'
            f"  policy = <<POLICY\n{json.dumps(doc, indent=2)}\nPOLICY\n}}\n"
        )
    return "\n".join(blocks)


def scan(checkov: str, directory: pathlib.Path) -> dict:
    out = subprocess.run(
        [checkov, "-d", str(directory), "--framework", "terraform", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(out.stdout)
    return report[0] if isinstance(report, list) else report


def main() -> int:
    checkov = sys.argv[1] if len(sys.argv) > 1 else "checkov"
    with tempfile.TemporaryDirectory() as tmp:
        (pathlib.Path(tmp) / "policies.tf").write_text(rendered_tf())
        policies = scan(checkov, pathlib.Path(tmp))
    failed = policies["results"]["failed_checks"]
    for c in failed:
        print(f"FAILED {c['check_id']} {c['resource']}: {c['check_name']}")
    print(f"rendered function policies: {policies['summary']['passed']} passed, {len(failed)} failed")
    infra = scan(checkov, ROOT / "infra")
    for c in infra["results"]["failed_checks"]:
        print(f"infra/ FAILED {c['check_id']} {c['resource']}: {c['check_name']}")
    print(f"infra/: {infra['summary']['passed']} passed, {infra['summary']['failed']} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
