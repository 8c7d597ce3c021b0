"""Tests of the emulator's strict mode (tests/strict_aws.py, tests/strict/).

For every rule: a call AWS refuses is refused with AWS's code, and a valid one is accepted.
Runs a moto server from tests/moto_launcher.py on a free port (one for the module, reset
between tests) and boto3 clients that skip client-side validation.

    python3 tests/strict_test.py   # this file and strict_smoke_test.py; ends "N passed, N failed"
    python3 -m unittest discover -s tests -p 'strict*_test.py' -v   # the same, plain unittest
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import unittest
import zipfile

import boto3

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from strict.model import PROJECT_SERVICES, java_pattern  # noqa: E402
from strict.testkit import Server, error_of, shared  # noqa: E402

IAM_TAG_VALUE = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
ROLE_ARN = "arn:aws:iam::123456789012:role/sfn"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
    "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def zip_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "#!/bin/sh\n")
    return buffer.getvalue()


def policy(sid_length: int, effect: str = "Deny") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "x" * sid_length, "Effect": effect, "Action": "*", "Resource": "*"}]})


class JavaPatternTest(unittest.TestCase):
    def test_unicode_classes_like_java(self):
        pattern = java_pattern(IAM_TAG_VALUE)
        for good in ("abc 1_.:/=+-@", "Ünïcødé", ""):
            self.assertIsNotNone(pattern.fullmatch(good), good)
        for bad in ("{", '"', ",", '{"k":1}'):
            self.assertIsNone(pattern.fullmatch(bad), bad)

    def test_whole_value_and_ascii_word(self):
        user_name = java_pattern(r"[\w+=,.@-]+")
        self.assertIsNotNone(user_name.fullmatch("alice@example.com"))
        self.assertIsNone(user_name.fullmatch("bob smith"))  # a partial match is not enough
        self.assertIsNone(user_name.fullmatch("é"))  # Java's \w is ASCII

    def test_surrogate_pairs_and_bad_patterns(self):
        text = java_pattern(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\r\n\t]*")
        self.assertIsNotNone(text.fullmatch("tab\tand emoji \U0001F600"))
        self.assertIsNone(text.fullmatch("\x00"))
        self.assertIsNone(java_pattern("[unclosed"))  # skipped and counted, no crash


class StrictCase(unittest.TestCase):
    server: Server

    @classmethod
    def setUpClass(cls):
        cls.server = shared()

    def setUp(self):
        self.server.reset()

    def c(self, service):
        return self.server.client(service)

    def assertRefused(self, call, code, status=400, contains=""):
        got_code, got_status, message = error_of(call)
        self.assertEqual((got_code, got_status), (code, status), message)
        self.assertIn(contains, message)
        return message


class ModelConstraintTest(StrictCase):
    def test_iam_tag_value_pattern(self):
        iam = self.c("iam")
        iam.create_user(UserName="alice")
        message = self.assertRefused(
            lambda: iam.tag_user(UserName="alice", Tags=[{"Key": "k", "Value": '{"k":1}'}]),
            "ValidationError",
            contains="at 'tags.1.member.value' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: " + IAM_TAG_VALUE,
        )
        self.assertTrue(message.startswith("1 validation error detected: Value '{\"k\":1}'"))
        iam.tag_user(UserName="alice", Tags=[{"Key": "ir:state", "Value": "abc 1_.:/=+-@ Ünïcødé"}])
        self.assertEqual(len(iam.list_user_tags(UserName="alice")["Tags"]), 1)

    def test_required_and_length(self):
        iam = self.c("iam")
        self.assertRefused(lambda: iam.tag_user(UserName="alice"), "ValidationError",
                           contains="Value null at 'tags' failed to satisfy constraint: Member must not be null")
        self.assertRefused(lambda: iam.create_user(UserName="u" * 65), "ValidationError",
                           contains="Member must have length less than or equal to 64")
        iam.create_user(UserName="u" * 64)

    def test_get_role_policy_names(self):
        # ir-isolate-ec2 reads its revoke policy back (GetRolePolicy): AWS refuses a policy name
        # over 128 characters or outside [\w+=,.@-], before looking the role up.
        iam = self.c("iam")
        self.assertRefused(lambda: iam.get_role_policy(RoleName="r", PolicyName="p" * 129),
                           "ValidationError", contains="length less than or equal to 128")
        self.assertRefused(lambda: iam.get_role_policy(RoleName="r", PolicyName="a b"),
                           "ValidationError", contains="pattern")

    def test_dynamodb_enum_and_min_value(self):
        ddb = self.c("dynamodb")
        table = {"TableName": "t", "BillingMode": "PAY_PER_REQUEST",
                 "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}
        self.assertRefused(
            lambda: ddb.create_table(KeySchema=[{"AttributeName": "id", "KeyType": "PRIMARY"}], **table),
            "ValidationException",
            contains="Value 'PRIMARY' at 'keySchema.1.member.keyType' failed to satisfy constraint: "
            "Member must satisfy enum value set: [HASH, RANGE]")
        ddb.create_table(KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], **table)
        self.assertRefused(lambda: ddb.scan(TableName="t", Limit=0), "ValidationException",
                           contains="Member must have value greater than or equal to 1")
        ddb.scan(TableName="t", Limit=10)

    def test_ec2_codes(self):
        ec2 = self.c("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.assertRefused(lambda: ec2.create_tags(Resources=[vpc]), "MissingParameter",
                           contains="The request must contain the parameter Tag")
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
        self.assertRefused(
            lambda: ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="bogus"),
            "InvalidParameterValue", contains="for parameter Attribute is invalid")
        ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="disableApiTermination")

    def test_codes_by_service(self):
        cases = [
            ("logs", lambda c: c.create_log_group(logGroupName="a b"), "InvalidParameterException"),
            ("securityhub", lambda c: c.get_findings(MaxResults=0), "InvalidInputException"),
            ("stepfunctions", lambda c: c.list_state_machines(maxResults=5000), "ValidationException"),
            ("ssm", lambda c: c.put_parameter(Name="/p", Value="v", Type="Text"), "ValidationException"),
            ("events", lambda c: c.put_rule(Name="arn:aws:events:rule/x", EventPattern="{}"), "ValidationException"),
            ("kms", lambda c: c.describe_key(KeyId=""), "ValidationException"),
            ("sts", lambda c: c.assume_role(RoleArn=ROLE_ARN, RoleSessionName="a b"), "ValidationError"),
            ("sqs", lambda c: c.send_message(QueueUrl="http://q/123456789012/q"), "MissingParameter"),
            ("sns", lambda c: c.publish(TopicArn="arn:aws:sns:us-east-1:123456789012:t"), "ValidationError"),
            ("autoscaling", lambda c: c.set_desired_capacity(AutoScalingGroupName="", DesiredCapacity=1),
             "ValidationError"),
            ("secretsmanager", lambda c: c.get_secret_value(SecretId=""), "ValidationException"),
            ("cloudtrail", lambda c: c.lookup_events(MaxResults=500), "ValidationException"),
            ("lambda", lambda c: c.create_function(FunctionName="f", Runtime="provided.al2023", Role=ROLE_ARN,
                                                   Handler="b", Code={"ZipFile": b"x"}, Timeout=0),
             "ValidationException"),
        ]
        for service, call, code in cases:
            with self.subTest(service=service):
                self.assertRefused(lambda: call(self.c(service)), code)
        self.c("logs").create_log_group(logGroupName="/ir/ok")
        self.c("ssm").put_parameter(Name="/p", Value="v", Type="String")

    def test_sensitive_value_not_echoed(self):
        sfn = self.c("stepfunctions")
        message = self.assertRefused(
            lambda: sfn.start_execution(stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:m",
                                        name="n", input=json.dumps({"s": "x" * 262144})),
            "ValidationException",
            contains="Value at 'input' failed to satisfy constraint: Member must have length less than or equal to 262144")
        self.assertNotIn("xxxx", message)

    def test_project_models_load(self):
        status, report = self.server.get("/strict-api/models")
        self.assertEqual(status, 200)
        self.assertEqual(report["failed"], {})
        self.assertEqual(sorted(report["loaded"]), sorted(PROJECT_SERVICES))
        self.assertEqual(len(report["loaded"]), 19)
        self.assertGreater(report["patterns"], 400)
        self.assertEqual(report["patterns_skipped"], [])

    def test_rules_listed(self):
        status, rules = self.server.get("/strict-api/rules")
        self.assertEqual(status, 200)
        names = {r["name"] for r in rules}
        for name in ("model-constraints-query", "s3-tag-syntax", "s3-bucket-policy-size",
                     "s3-block-public-policy", "iam-inline-policy-aggregate-size",
                     "iam-tags-per-resource", "ec2-tag-restrictions", "ec2-spot-termination-protection", "elbv2-register-target-vpc",
                     "ec2-nacl-rules-per-acl", "ec2-nacl-entry-not-found", "sts-assume-role-trust",
                     "organizations-management-or-delegated", "ec2-share-default-key-snapshot", "sts-region-enabled",
                     "dynamodb-item-size", "sfn-data-limit", "lambda-function-url-public-access"):
            self.assertIn(name, names)
        for r in rules:
            self.assertTrue(r["doc"].startswith("https://docs.aws.amazon.com/"), r)
            self.assertTrue(r["code"] and r["service"], r)


class DisabledRegionTest(unittest.TestCase):
    def test_assume_role_in_a_region_the_account_has_not_enabled(self):
        server = Server(STRICT_DISABLED_REGIONS="123456789012:ap-east-1")
        try:
            trust = json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]})
            server.client("iam").create_role(RoleName="member", AssumeRolePolicyDocument=trust)
            arn = "arn:aws:iam::123456789012:role/member"
            regional = boto3.client(
                "sts", endpoint_url=server.url, region_name="ap-east-1",
                aws_access_key_id="testing", aws_secret_access_key="testing")
            code, status, _ = error_of(lambda: regional.assume_role(RoleArn=arn, RoleSessionName="ir-1"))
            self.assertEqual((code, status), ("RegionDisabledException", 403))
            server.client("sts").assume_role(RoleArn=arn, RoleSessionName="ir-1")
        finally:
            server.stop()


class LambdaTransportTest(unittest.TestCase):
    def test_a_lambda_call_without_an_answer_is_a_retried_lambda_error(self):
        # Step Functions reports a Lambda call the client could not complete as a Lambda.*
        # error, which the state machine's Retry names; moto 5.2.1 made it States.Runtime, and the
        # execution failed.
        import socket
        import threading

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        connections = []

        def drop_every_connection():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                connections.append(conn)
                conn.close()

        threading.Thread(target=drop_every_connection, daemon=True).start()
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        server = Server(IR_LAMBDA_ENDPOINT=endpoint)
        try:
            server.configure({"stepfunctions": {"execute_state_machine": True}})
            sfn = server.client("stepfunctions")
            definition = {"StartAt": "Invoke", "States": {
                "Invoke": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                           "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f",
                                          "Payload": {}},
                           "Retry": [{"ErrorEquals": ["Lambda.SdkClientException"],
                                      "IntervalSeconds": 1, "MaxAttempts": 1}],
                           "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                      "Next": "Caught"}], "End": True},
                "Caught": {"Type": "Pass", "End": True}}}
            arn = sfn.create_state_machine(name="invoke", roleArn=ROLE_ARN,
                                           definition=json.dumps(definition))["stateMachineArn"]
            execution = sfn.start_execution(stateMachineArn=arn, name="e", input="{}")["executionArn"]
            for _ in range(300):
                described = sfn.describe_execution(executionArn=execution)
                if described["status"] != "RUNNING":
                    break
                time.sleep(0.05)
            self.assertEqual(described["status"], "SUCCEEDED", described)
            self.assertEqual(json.loads(described["output"])["error"]["Error"], "Lambda.SdkClientException")
            self.assertEqual(len(connections), 2, "the call and one retry")
        finally:
            server.stop()
            listener.close()


class LaxServerTest(unittest.TestCase):
    def test_strict_off_accepts_json_tag_value(self):
        lax = Server(STRICT="0")
        try:
            iam = lax.client("iam")
            iam.create_user(UserName="alice")
            iam.tag_user(UserName="alice", Tags=[{"Key": "k", "Value": '{"k":1}'}])
            self.assertEqual(iam.list_user_tags(UserName="alice")["Tags"][0]["Value"], '{"k":1}')
            self.assertEqual(lax.get("/strict-api/rules")[0], 404)
        finally:
            lax.stop()


class S3RulesTest(StrictCase):
    def setUp(self):
        super().setUp()
        self.s3 = self.c("s3")
        self.s3.create_bucket(Bucket="evidence-bucket")

    def test_tags(self):
        s3, bucket = self.s3, "evidence-bucket"
        tagging = lambda *tags: {"TagSet": [{"Key": k, "Value": v} for k, v in tags]}  # noqa: E731
        self.assertRefused(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging=tagging(("k", '{"k":1}'))),
                           "InvalidTag")
        self.assertRefused(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging=tagging(("aws:x", "v"))),
                           "InvalidTag")
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tagging(("ir:state", "locked 2026-11-23T10:00:00Z")))
        self.assertRefused(lambda: s3.put_object(Bucket=bucket, Key="o", Body=b"x", Tagging="k=%7B%7D"),
                           "InvalidTag")
        s3.put_object(Bucket=bucket, Key="o", Body=b"x", Tagging="k=v&incident=i-1")
        self.assertRefused(lambda: s3.put_object_tagging(Bucket=bucket, Key="o", Tagging=tagging(("k", "a,b"))),
                           "InvalidTag")
        self.assertRefused(lambda: s3.put_object_tagging(Bucket=bucket, Key="o", Tagging=tagging(("k", "a"), ("k", "b"))),
                           "InvalidTag", contains="same key")
        self.assertRefused(lambda: s3.put_object_tagging(Bucket=bucket, Key="o", Tagging=tagging(("k" * 129, "a"))),
                           "InvalidTag")
        s3.put_object_tagging(Bucket=bucket, Key="o", Tagging=tagging(("k", "Ünïcødé v=1")))

    def test_policy_size(self):
        statements = [{"Sid": f"s{i}", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
                       "Resource": f"arn:aws:s3:::evidence-bucket/prefix-{i}/*"} for i in range(200)]
        big = json.dumps({"Version": "2012-10-17", "Statement": statements})
        self.assertRefused(lambda: self.s3.put_bucket_policy(Bucket="evidence-bucket", Policy=big),
                           "PolicyTooLarge")
        small = json.dumps({"Version": "2012-10-17", "Statement": statements[:50]}, indent=8)
        self.s3.put_bucket_policy(Bucket="evidence-bucket", Policy=small)

    def test_block_public_policy(self):
        s3, bucket = self.s3, "evidence-bucket"

        def statement(effect, condition=None):
            st = {"Effect": effect, "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{bucket}/*"}
            return json.dumps({"Version": "2012-10-17", "Statement": [dict(st, Condition=condition) if condition else st]})

        s3.put_bucket_policy(Bucket=bucket, Policy=statement("Allow"))  # no block: accepted
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        self.assertRefused(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=statement("Allow")),
                           "AccessDenied", 403, contains="BlockPublicPolicy")
        s3.put_bucket_policy(Bucket=bucket, Policy=statement("Deny"))
        s3.put_bucket_policy(Bucket=bucket, Policy=statement(
            "Allow", {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}))


    def test_policy_principals(self):
        iam, s3, bucket = self.c("iam"), self.s3, "evidence-bucket"
        iam.create_role(RoleName="AWSReservedSSO_Admin_0123", Path="/aws-reserved/sso.amazonaws.com/",
                        AssumeRolePolicyDocument=TRUST)

        def deny(principal):
            return json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Deny", "Principal": {"AWS": principal}, "Action": "s3:*",
                "Resource": f"arn:aws:s3:::{bucket}/*"}]})

        # The role's ARN without its path names no role.
        self.assertRefused(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=deny(
            "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123")), "MalformedPolicy",
            contains="Invalid principal")
        self.assertRefused(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=deny(
            "arn:aws:iam::123456789012:user/nobody")), "MalformedPolicy")
        s3.put_bucket_policy(Bucket=bucket, Policy=deny(
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123"))
        s3.put_bucket_policy(Bucket=bucket, Policy=deny("arn:aws:iam::210987654321:role/elsewhere"))
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"StringLike": {"aws:userid": "AROAEXAMPLE:*"}}}]}))

    def test_logging_same_region(self):
        s3 = self.s3
        s3.put_bucket_policy(Bucket="evidence-bucket", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": ["s3:PutObject"],
            "Resource": "arn:aws:s3:::evidence-bucket/*"}]}))
        s3.create_bucket(Bucket="eu-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.create_bucket(Bucket="us-data")
        status = {"LoggingEnabled": {"TargetBucket": "evidence-bucket", "TargetPrefix": "logs/"}}
        self.assertRefused(lambda: s3.put_bucket_logging(Bucket="eu-data", BucketLoggingStatus=status),
                           "CrossLocationLoggingProhibitted", 403)
        s3.put_bucket_logging(Bucket="us-data", BucketLoggingStatus=status)


class IamEc2RulesTest(StrictCase):
    def test_inline_policy_aggregate(self):
        iam = self.c("iam")
        iam.create_user(UserName="alice")
        iam.put_user_policy(UserName="alice", PolicyName="a", PolicyDocument=policy(1000))
        self.assertRefused(
            lambda: iam.put_user_policy(UserName="alice", PolicyName="b", PolicyDocument=policy(1000)),
            "LimitExceeded", 409, contains="Maximum policy size of 2048 bytes exceeded for user alice")
        iam.put_user_policy(UserName="alice", PolicyName="a", PolicyDocument=policy(1900))  # replaces a
        iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST)
        iam.put_role_policy(RoleName="r", PolicyName="a", PolicyDocument=policy(5000))
        iam.put_role_policy(RoleName="r", PolicyName="b", PolicyDocument=policy(5000))
        self.assertRefused(
            lambda: iam.put_role_policy(RoleName="r", PolicyName="c", PolicyDocument=policy(200)),
            "LimitExceeded", 409, contains="10240")

    def test_iam_tag_count(self):
        iam = self.c("iam")
        iam.create_user(UserName="alice", Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(45)])
        iam.tag_user(UserName="alice", Tags=[{"Key": f"k{i}", "Value": "w"} for i in range(40, 50)])
        self.assertRefused(lambda: iam.tag_user(UserName="alice", Tags=[{"Key": "K50", "Value": "v"}]),
                           "LimitExceeded", 409)

    def test_ec2_tags(self):
        ec2 = self.c("ec2")
        spec = lambda tags: [{"ResourceType": "vpc", "Tags": tags}]  # noqa: E731
        self.assertRefused(lambda: ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec(
            [{"Key": "aws:cloudformation:stack-name", "Value": "s"}])), "InvalidParameterValue",
            contains="Tag keys starting with 'aws:' are reserved for internal use")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec([{"Key": "Name", "Value": "v"}]))
        vpc_id = vpc["Vpc"]["VpcId"]
        self.assertRefused(lambda: ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "k", "Value": "v" * 257}]),
                           "InvalidParameterValue", contains="256")
        self.assertRefused(lambda: ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "k" * 129, "Value": "v"}]),
                           "InvalidParameterValue", contains="128")
        self.assertRefused(lambda: ec2.create_tags(Resources=[vpc_id], Tags=[
            {"Key": f"k{i}", "Value": "v"} for i in range(51)]), "TagLimitExceeded")
        ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "ir:isolated", "Value": '{"any":"chars"}'}])

    def test_spot_termination_protection(self):
        ec2 = self.c("ec2")
        spot = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                 InstanceMarketOptions={"MarketType": "spot"})["Instances"][0]["InstanceId"]
        self.assertRefused(lambda: ec2.modify_instance_attribute(
            InstanceId=spot, DisableApiTermination={"Value": True}), "UnsupportedOperation")
        on_demand = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        ec2.modify_instance_attribute(InstanceId=on_demand, DisableApiTermination={"Value": True})

    def test_nacl_rules(self):
        ec2 = self.c("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]
        acl_id = acl["NetworkAclId"]
        present = len([e for e in acl.get("Entries", []) if not e["Egress"]])
        entry = lambda n, egress=False: ec2.create_network_acl_entry(  # noqa: E731
            NetworkAclId=acl_id, RuleNumber=n, Protocol="-1", RuleAction="deny", Egress=egress,
            CidrBlock=f"10.0.1.{n}/32")
        for n in range(1, 21 - present):
            entry(n)
        self.assertRefused(lambda: entry(99), "NetworkAclEntryLimitExceeded")
        ec2.create_network_acl_entry(  # IPv6 rules have a quota of their own
            NetworkAclId=acl_id, RuleNumber=99, Protocol="-1", RuleAction="deny", Egress=False,
            Ipv6CidrBlock="2001:db8::7/128")
        entry(1, egress=True)
        ec2.delete_network_acl_entry(NetworkAclId=acl_id, RuleNumber=1, Egress=True)
        self.assertRefused(lambda: ec2.delete_network_acl_entry(
            NetworkAclId=acl_id, RuleNumber=1, Egress=True), "InvalidNetworkAclEntry.NotFound")

    def test_assume_role_trust(self):
        iam, sts = self.c("iam"), self.c("sts")
        trust = lambda principal, condition=None: json.dumps({"Version": "2012-10-17", "Statement": [  # noqa: E731
            dict({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal},
                 **({"Condition": condition} if condition else {}))]})
        arn = lambda name: f"arn:aws:iam::123456789012:role/{name}"  # noqa: E731
        iam.create_role(RoleName="lambda-only", AssumeRolePolicyDocument=trust({"Service": "lambda.amazonaws.com"}))
        iam.create_role(RoleName="member", AssumeRolePolicyDocument=trust(
            {"AWS": "arn:aws:iam::123456789012:root"}, {"StringEquals": {"sts:ExternalId": "ext-1"}}))
        for role, external_id in (("missing", None), ("lambda-only", None), ("member", None), ("member", "other")):
            kwargs = {"ExternalId": external_id} if external_id else {}
            self.assertRefused(lambda: sts.assume_role(RoleArn=arn(role), RoleSessionName="ir-inc-1", **kwargs),
                               "AccessDenied", 403, contains="not authorized to perform: sts:AssumeRole")
        sts.assume_role(RoleArn=arn("member"), RoleSessionName="ir-inc-1", ExternalId="ext-1")

    def test_snapshot_share(self):
        ec2 = self.c("ec2")
        plain = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
        encrypted = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8, Encrypted=True)["VolumeId"]
        of_plain = ec2.create_snapshot(VolumeId=plain)["SnapshotId"]
        of_encrypted = ec2.create_snapshot(VolumeId=encrypted)["SnapshotId"]
        add = lambda snapshot, **who: ec2.modify_snapshot_attribute(  # noqa: E731
            SnapshotId=snapshot, Attribute="createVolumePermission", CreateVolumePermission={"Add": [who]})
        self.assertRefused(lambda: add(of_encrypted, UserId="444455556666"), "InvalidParameter", contains="aws/ebs")
        self.assertRefused(lambda: add(of_encrypted, Group="all"), "InvalidParameter", contains="public")
        add(of_plain, UserId="444455556666")
        key = self.c("kms").create_key()["KeyMetadata"]["Arn"]
        copy = ec2.copy_snapshot(SourceSnapshotId=of_encrypted, SourceRegion="us-east-1", Encrypted=True,
                                 KmsKeyId=key)["SnapshotId"]
        add(copy, UserId="444455556666")

    def test_organizations_tree_readers(self):
        org = self.c("organizations")
        self.assertRefused(lambda: org.list_parents(ChildId="111122223333"),
                           "AWSOrganizationsNotInUseException")
        org.create_organization(FeatureSet="ALL")
        root = org.list_roots()["Roots"][0]["Id"]
        created = org.create_account(Email="m@example.com", AccountName="member")
        member = created["CreateAccountStatus"]["AccountId"]
        self.assertEqual(org.list_parents(ChildId=member)["Parents"][0]["Id"], root)
        self.assertRefused(lambda: org.list_parents(ChildId="Production"), "InvalidInputException")
        as_member = self.server.client_in_account("organizations", member)
        self.assertRefused(lambda: as_member.list_parents(ChildId=member), "AccessDeniedException")
        org.register_delegated_administrator(AccountId=member, ServicePrincipal="guardduty.amazonaws.com")
        try:  # past the rule, moto answers from the member's own backend (see rules_org)
            as_member.list_parents(ChildId=member)
        except Exception as exc:  # noqa: BLE001 - botocore ClientError
            self.assertNotEqual(exc.response["Error"]["Code"], "AccessDeniedException")

    def test_target_in_another_vpc(self):
        ec2, elbv2 = self.c("ec2"), self.c("elbv2")
        vpcs, instances = [], []
        for n in (1, 2):
            vpc = ec2.create_vpc(CidrBlock=f"10.{n}.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{n}.1.0/24")["Subnet"]["SubnetId"]
            vpcs.append(vpc)
            instances.append(ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                               SubnetId=subnet)["Instances"][0]["InstanceId"])
        group = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=vpcs[0],
                                          TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
        self.assertRefused(lambda: elbv2.register_targets(
            TargetGroupArn=group, Targets=[{"Id": instances[1]}]), "InvalidTarget", contains=vpcs[0])
        elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instances[0]}])


class DataRulesTest(StrictCase):
    def setUp(self):
        super().setUp()
        self.ddb = self.c("dynamodb")
        self.ddb.create_table(TableName="big", BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])

    def test_dynamodb_item_size(self):
        item = lambda kib: {"id": {"S": "a"}, "d": {"S": "x" * (kib * 1024)}}  # noqa: E731
        self.assertRefused(lambda: self.ddb.put_item(TableName="big", Item=item(401)), "ValidationException",
                           contains="Item size has exceeded the maximum allowed size")
        self.ddb.put_item(TableName="big", Item=item(399))  # moto alone refused over 405,000 bytes

    def test_dynamodb_set_duplicates(self):
        key = {"id": {"S": "set"}}
        self.assertRefused(lambda: self.ddb.update_item(
            TableName="big", Key=key, UpdateExpression="ADD r :v",
            ExpressionAttributeValues={":v": {"SS": ["role-a", "role-a"]}}),
            "ValidationException", contains="contains duplicates")
        self.assertRefused(lambda: self.ddb.put_item(
            TableName="big", Item={**key, "m": {"M": {"n": {"NS": ["1", "1.0"]}}}}),
            "ValidationException", contains="contains duplicates")
        self.ddb.update_item(TableName="big", Key=key, UpdateExpression="ADD r :v",
                             ExpressionAttributeValues={":v": {"SS": ["role-a", "role-b"]}})
        self.ddb.update_item(TableName="big", Key=key, UpdateExpression="ADD r :v",
                             ExpressionAttributeValues={":v": {"SS": ["role-a"]}})  # already there: fine
        item = self.ddb.get_item(TableName="big", Key=key, ConsistentRead=True)["Item"]
        self.assertEqual(sorted(item["r"]["SS"]), ["role-a", "role-b"])

    def test_dynamodb_conditional_writes_are_atomic(self):
        # Triage claims an incident and the leases claim a resource with one conditional
        # UpdateItem; DynamoDB lets exactly one of concurrent claims on an item through.
        from concurrent.futures import ThreadPoolExecutor

        clients = [self.c("dynamodb") for _ in range(16)]

        def claim(client, key):
            try:
                client.update_item(TableName="big", Key={"id": {"S": key}},
                                   UpdateExpression="SET claimed = :t ADD n :one",
                                   ConditionExpression="attribute_not_exists(id)",
                                   ExpressionAttributeValues={":t": {"BOOL": True}, ":one": {"N": "1"}})
                return True
            except Exception as exc:  # noqa: BLE001 - botocore ClientError
                self.assertEqual(exc.response["Error"]["Code"], "ConditionalCheckFailedException")
                return False

        with ThreadPoolExecutor(len(clients)) as pool:
            for round_ in range(20):
                key = f"claim-{round_}"
                won = list(pool.map(claim, clients, [key] * len(clients)))
                self.assertEqual(sum(won), 1, key)
                item = self.ddb.get_item(TableName="big", Key={"id": {"S": key}}, ConsistentRead=True)
                self.assertEqual(item["Item"]["n"], {"N": "1"}, key)

    def test_dynamodb_old_values_are_the_ones_each_write_found(self):
        # A lease taken just as its holder gives it back reads the holder's record from
        # ReturnValues=ALL_OLD: each of concurrent writes gets the item as it found it.
        from concurrent.futures import ThreadPoolExecutor

        clients = [self.c("dynamodb") for _ in range(16)]

        def bump(client, key):
            out = client.update_item(TableName="big", Key={"id": {"S": key}},
                                     UpdateExpression="ADD n :one",
                                     ExpressionAttributeValues={":one": {"N": "1"}},
                                     ReturnValues="ALL_OLD")
            return int(out.get("Attributes", {}).get("n", {"N": "0"})["N"])

        with ThreadPoolExecutor(len(clients)) as pool:
            for round_ in range(20):
                key = f"bump-{round_}"
                seen = sorted(pool.map(bump, clients, [key] * len(clients)))
                self.assertEqual(seen, list(range(len(clients))), key)

    def _run(self, sfn, arn, name, payload):
        execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
        for _ in range(200):
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.05)
        self.fail("execution still running")

    def test_sfn_data_limit_not_caught_by_states_all(self):
        self.ddb.put_item(TableName="big", Item={"id": {"S": "large"}, "d": {"S": "x" * (300 * 1024)}})
        self.ddb.put_item(TableName="big", Item={"id": {"S": "small"}, "d": {"S": "x" * 1024}})
        sfn = self.c("stepfunctions")
        definition = {"StartAt": "Get", "States": {
            "Get": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
                    "Parameters": {"TableName": "big", "Key": {"id": {"S.$": "$.id"}}},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True},
            "Caught": {"Type": "Pass", "Result": "caught", "End": True}}}
        arn = sfn.create_state_machine(name="get", roleArn=ROLE_ARN,
                                       definition=json.dumps(definition))["stateMachineArn"]
        failed = self._run(sfn, arn, "large", {"id": "large"})
        self.assertEqual((failed["status"], failed.get("error")), ("FAILED", "States.DataLimitExceeded"))
        self.assertEqual(self._run(sfn, arn, "small", {"id": "small"})["status"], "SUCCEEDED")

    def test_sfn_state_input_after_parameters(self):
        sfn = self.c("stepfunctions")
        definition = {"StartAt": "P", "States": {
            "P": {"Type": "Pass", "Parameters": {"a.$": "$.s", "b.$": "$.s"}, "End": True}}}
        arn = sfn.create_state_machine(name="pass", roleArn=ROLE_ARN,
                                       definition=json.dumps(definition))["stateMachineArn"]
        failed = self._run(sfn, arn, "big", {"s": "y" * (150 * 1024)})
        self.assertEqual((failed["status"], failed.get("error")), ("FAILED", "States.DataLimitExceeded"))
        self.assertEqual(self._run(sfn, arn, "ok", {"s": "y" * (100 * 1024)})["status"], "SUCCEEDED")


class FunctionUrlTest(StrictCase):
    def test_anonymous_access_needs_both_permissions(self):
        lam, iam = self.c("lambda"), self.c("iam")
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        lam.create_function(FunctionName="approve", Runtime="provided.al2023", Role=role,
                            Handler="bootstrap", Code={"ZipFile": zip_with("bootstrap")})
        self.assertEqual(self.server.get("/strict-api/function-url/approve")[0], 404)
        lam.create_function_url_config(FunctionName="approve", AuthType="NONE")
        self.assertEqual(self.server.get("/strict-api/function-url/approve"), (403, {"Message": "Forbidden"}))
        lam.add_permission(FunctionName="approve", StatementId="url", Action="lambda:InvokeFunctionUrl",
                           Principal="*", FunctionUrlAuthType="NONE")
        self.assertEqual(self.server.get("/strict-api/function-url/approve")[0], 403)
        lam.add_permission(FunctionName="approve", StatementId="invoke", Action="lambda:InvokeFunction",
                           Principal="*", InvokedViaFunctionUrl=True)
        status, body = self.server.get("/strict-api/function-url/approve?region=us-east-1")
        self.assertEqual((status, body["allowed"]), (200, True))
        self.assertEqual(self.server.get("/strict-api/function-url/approve?region=eu-west-1")[0], 404)


if __name__ == "__main__":
    # Both strict test modules, and the plain closing line CI reads ("N passed, N failed").
    here = os.path.dirname(os.path.abspath(__file__))
    suite = unittest.defaultTestLoader.discover(here, pattern="strict*_test.py", top_level_dir=here)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(f"strict: {result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
    sys.exit(0 if result.wasSuccessful() else 1)
