"""Strict mode must not refuse valid calls: the kinds of calls the project makes, all accepted.

    python3 tests/strict_smoke_test.py      # or with strict_test.py:
    python3 -m unittest discover -s tests -p 'strict*_test.py' -v
"""

from __future__ import annotations

import datetime
import io
import json
import os
import sys
import time
import unittest
import zipfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from strict.testkit import shared  # noqa: E402

ACCOUNT = "123456789012"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}}]}
DENY_ALL = {"Version": "2012-10-17", "Statement": [
    {"Sid": "IrQuarantine", "Effect": "Deny", "Action": "*", "Resource": "*"}]}


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\n")
    return buffer.getvalue()


class ValidCallsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = shared()

    def setUp(self):
        self.server.reset()
        self.before = len(self.server.output())

    def tearDown(self):
        unparsed = [line for line in self.server.output()[self.before:].splitlines()
                    if line.startswith("[strict] not checked")]
        self.assertEqual(unparsed, [], "requests strict mode could not parse")

    def c(self, service):
        return self.server.client(service)

    def test_ec2(self):
        ec2 = self.c("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")
        subnet_id = subnet["Subnet"]["SubnetId"]
        web = ec2.create_security_group(GroupName="web", Description="web tier", VpcId=vpc)["GroupId"]
        quarantine = ec2.create_security_group(
            GroupName="ir-isolation", Description="IR isolation (no rules)", VpcId=vpc,
            TagSpecifications=[{"ResourceType": "security-group",
                                "Tags": [{"Key": "ir:purpose", "Value": "isolation"}]}])["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        ec2.revoke_security_group_egress(GroupId=quarantine, IpPermissions=[{
            "IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        instance = ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet_id,
            SecurityGroupIds=[web], TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "Name", "Value": "web-1"}, {"Key": "env", "Value": "prod"}]}])["Instances"][0]
        iid = instance["InstanceId"]
        eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=[quarantine])
        ec2.modify_instance_attribute(InstanceId=iid, Groups=[quarantine])
        ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": True})
        ec2.modify_instance_attribute(InstanceId=iid, DisableApiStop={"Value": True})
        ec2.modify_instance_attribute(InstanceId=iid, InstanceInitiatedShutdownBehavior={"Value": "stop"})
        ec2.describe_instance_attribute(InstanceId=iid, Attribute="disableApiTermination")
        ec2.create_tags(Resources=[iid], Tags=[
            {"Key": "ir:incident", "Value": "inc-2026-11-23T10:00:00Z"}, {"Key": "ir:state", "Value": "isolated"}])
        volume = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])
        for vol in volume["Volumes"]:
            ec2.create_snapshot(VolumeId=vol["VolumeId"], Description="IR evidence", TagSpecifications=[
                {"ResourceType": "snapshot", "Tags": [{"Key": "ir:incident", "Value": "inc-1"}]}])
        ec2.describe_instances(InstanceIds=[iid])
        ec2.describe_security_groups(GroupIds=[web, quarantine])
        ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])
        ec2.describe_iam_instance_profile_associations(Filters=[{"Name": "instance-id", "Values": [iid]}])
        ec2.describe_snapshots(OwnerIds=["self"])
        ec2.describe_images(Owners=["amazon"], MaxResults=5)
        ec2.describe_flow_logs()
        ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": False})
        ec2.terminate_instances(InstanceIds=[iid])

    def test_iam_and_sts(self):
        iam = self.c("iam")
        iam.create_user(UserName="alice", Tags=[{"Key": "team", "Value": "payments"}])
        iam.put_user_policy(UserName="alice", PolicyName="IrQuarantine", PolicyDocument=json.dumps(DENY_ALL))
        iam.tag_user(UserName="alice", Tags=[{"Key": "ir:quarantined", "Value": "2026-11-23T10:00:00Z"},
                                             {"Key": "ir:incident", "Value": "inc-42"}])
        key = iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
        iam.update_access_key(UserName="alice", AccessKeyId=key, Status="Inactive")
        iam.create_login_profile(UserName="alice", Password="Sup3r-secret-Passw0rd!")
        iam.get_login_profile(UserName="alice")
        iam.delete_login_profile(UserName="alice")
        for call in (iam.list_access_keys, iam.list_user_policies, iam.list_user_tags,
                     iam.list_attached_user_policies, iam.list_groups_for_user, iam.get_user):
            call(UserName="alice")
        iam.get_user_policy(UserName="alice", PolicyName="IrQuarantine")
        iam.get_access_key_last_used(AccessKeyId=key)
        role = iam.create_role(RoleName="app-role", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        iam.put_role_policy(RoleName="app-role", PolicyName="IrQuarantine", PolicyDocument=json.dumps(DENY_ALL))
        iam.tag_role(RoleName="app-role", Tags=[{"Key": "ir:incident", "Value": "inc-42"}])
        iam.list_role_policies(RoleName="app-role")
        iam.list_role_tags(RoleName="app-role")
        iam.get_role_policy(RoleName="app-role", PolicyName="IrQuarantine")
        iam.delete_role_policy(RoleName="app-role", PolicyName="IrQuarantine")
        iam.create_instance_profile(InstanceProfileName="app-profile")
        iam.get_instance_profile(InstanceProfileName="app-profile")
        sts = self.c("sts")
        sts.get_caller_identity()
        member = iam.create_role(RoleName="ir-member", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Condition": {"StringEquals": {"sts:ExternalId": "ir-ext-1"}}}]}))["Role"]["Arn"]
        sts.assume_role(RoleArn=member, RoleSessionName="ir-responder@inc-42", DurationSeconds=900,
                        ExternalId="ir-ext-1")
        del role

    def test_s3(self):
        s3 = self.c("s3")
        s3.create_bucket(Bucket="ir-evidence-123", ObjectLockEnabledForBucket=True)
        s3.create_bucket(Bucket="ir-logs-123")
        s3.put_bucket_policy(Bucket="ir-logs-123", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::ir-logs-123/evidence/*"}]}))
        s3.put_public_access_block(Bucket="ir-evidence-123", PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        deny = {"Version": "2012-10-17", "Statement": [{
            "Sid": "IrLockdown", "Effect": "Deny", "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketPolicy"],
            "Resource": ["arn:aws:s3:::ir-evidence-123", "arn:aws:s3:::ir-evidence-123/*"],
            "Condition": {"StringNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/ir"}}}]}
        s3.put_bucket_policy(Bucket="ir-evidence-123", Policy=json.dumps(deny))
        s3.put_bucket_tagging(Bucket="ir-evidence-123", Tagging={"TagSet": [
            {"Key": "ir:lockdown", "Value": "2026-11-23T10:00:00Z"}, {"Key": "owner", "Value": "sec@example.com"}]})
        s3.put_bucket_versioning(Bucket="ir-evidence-123", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object_lock_configuration(Bucket="ir-evidence-123", ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
        s3.put_object(Bucket="ir-evidence-123", Key="inc-42/manifest.json", Body=b"{}",
                      ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
                      ChecksumAlgorithm="SHA256", Tagging="ir:incident=inc-42")
        s3.put_bucket_logging(Bucket="ir-evidence-123", BucketLoggingStatus={"LoggingEnabled": {
            "TargetBucket": "ir-logs-123", "TargetPrefix": "evidence/"}})
        for call in (s3.get_public_access_block, s3.get_bucket_policy, s3.get_bucket_tagging,
                     s3.get_bucket_versioning, s3.get_bucket_logging, s3.get_object_lock_configuration,
                     s3.get_bucket_location, s3.get_bucket_acl):
            call(Bucket="ir-evidence-123")
        s3.get_object(Bucket="ir-evidence-123", Key="inc-42/manifest.json")

    def test_dynamodb_ssm_secrets_kms(self):
        ddb = self.c("dynamodb")
        ddb.create_table(TableName="ir-incidents", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "incident_id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "incident_id", "AttributeType": "S"}])
        item = {"incident_id": {"S": "inc-42"}, "status": {"S": "OPEN"}, "score": {"N": "8.5"},
                "finding": {"M": {"types": {"L": [{"S": "UnauthorizedAccess:EC2/TorClient"}]}}}}
        ddb.put_item(TableName="ir-incidents", Item=item, ConditionExpression="attribute_not_exists(incident_id)")
        ddb.update_item(TableName="ir-incidents", Key={"incident_id": {"S": "inc-42"}},
                        UpdateExpression="SET #s = :new, updated_at = :t",
                        ConditionExpression="#s = :old", ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":new": {"S": "CONTAINED"}, ":old": {"S": "OPEN"},
                                                   ":t": {"S": "2026-11-23T10:00:00Z"}},
                        ReturnValues="ALL_NEW")
        ddb.get_item(TableName="ir-incidents", Key={"incident_id": {"S": "inc-42"}}, ConsistentRead=True)
        ddb.list_tables()
        ddb.delete_item(TableName="ir-incidents", Key={"incident_id": {"S": "inc-42"}})
        ssm = self.c("ssm")
        ssm.put_parameter(Name="/ir/killswitch", Value="off", Type="String", Overwrite=True)
        ssm.get_parameter(Name="/ir/killswitch")
        secrets = self.c("secretsmanager")
        secrets.create_secret(Name="ir/webhook", SecretString=json.dumps({"url": "https://hooks.example.com/x"}))
        secrets.get_secret_value(SecretId="ir/webhook")
        kms = self.c("kms")
        key = kms.create_key(Description="IR evidence key", KeyUsage="ENCRYPT_DECRYPT",
                             Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                                 "Sid": "root", "Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                 "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}))
        kms.create_alias(AliasName="alias/ir-evidence", TargetKeyId=key["KeyMetadata"]["KeyId"])

    def test_messaging_and_events(self):
        sns, sqs = self.c("sns"), self.c("sqs")
        topic = sns.create_topic(Name="ir-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="ir-alerts-q")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        sns.publish(TopicArn=topic, Subject="[IR] inc-42 contained",
                    Message=json.dumps({"incident": "inc-42", "text": "Ünïcødé ✓"}),
                    MessageAttributes={"severity": {"DataType": "String", "StringValue": "HIGH"}})
        sns.list_topics()
        sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)
        events = self.c("events")
        events.put_rule(Name="ir-guardduty", EventPattern=json.dumps({"source": ["aws.guardduty"]}))
        events.put_targets(Rule="ir-guardduty", Targets=[{"Id": "alerts", "Arn": topic}])
        events.put_events(Entries=[{"Source": "ir.test", "DetailType": "Test", "Detail": json.dumps({"a": 1})}])
        logs = self.c("logs")
        logs.create_log_group(logGroupName="/aws/lambda/ir-triage")
        logs.put_retention_policy(logGroupName="/aws/lambda/ir-triage", retentionInDays=30)
        trail = self.c("cloudtrail")
        self.c("s3").create_bucket(Bucket="ir-trail-123")
        trail.create_trail(Name="ir-trail", S3BucketName="ir-trail-123")
        trail.describe_trails()
        hub = self.c("securityhub")
        hub.enable_security_hub()
        hub.get_findings(MaxResults=10)

    def test_step_functions_lambda_autoscaling(self):
        iam = self.c("iam")
        role = iam.create_role(RoleName="ir-sfn", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        sfn = self.c("stepfunctions")
        definition = {"StartAt": "Triage", "States": {
            "Triage": {"Type": "Pass", "Parameters": {"incident.$": "$.incident", "execution.$": "$$.Execution.Name"},
                       "ResultPath": "$.triage", "Next": "Done"},
            "Done": {"Type": "Succeed"}}}
        machine = sfn.create_state_machine(name="ir-response", roleArn=role, definition=json.dumps(definition),
                                           tags=[{"key": "ir", "value": "response"}])["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="inc-42-a1b2c3",
                                        input=json.dumps({"incident": "inc-42"}))["executionArn"]
        for _ in range(100):
            if sfn.describe_execution(executionArn=execution)["status"] != "RUNNING":
                break
            time.sleep(0.05)
        self.assertEqual(sfn.describe_execution(executionArn=execution)["status"], "SUCCEEDED")
        sfn.list_executions(stateMachineArn=machine, statusFilter="SUCCEEDED")
        sfn.get_execution_history(executionArn=execution, maxResults=100)
        sfn.describe_state_machine(stateMachineArn=machine)
        lam = self.c("lambda")
        fn = lam.create_function(FunctionName="ir-approve", Runtime="provided.al2023", Role=role,
                                 Handler="bootstrap", Code={"ZipFile": zip_bytes()}, Timeout=30,
                                 MemorySize=128, Architectures=["arm64"],
                                 Environment={"Variables": {"TABLE": "ir-incidents"}})
        lam.create_function_url_config(FunctionName="ir-approve", AuthType="NONE")
        lam.add_permission(FunctionName="ir-approve", StatementId="FunctionUrlAllowPublicAccess",
                           Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
        lam.add_permission(FunctionName="ir-approve", StatementId="sfn", Action="lambda:InvokeFunction",
                           Principal="states.amazonaws.com", SourceArn=machine)
        lam.get_policy(FunctionName=fn["FunctionArn"])
        lam.get_function_url_config(FunctionName="ir-approve")
        ec2, asg = self.c("ec2"), self.c("autoscaling")
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        template = ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={
            "ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
        asg.create_auto_scaling_group(AutoScalingGroupName="web-asg", MinSize=1, MaxSize=3, DesiredCapacity=2,
                                      LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
                                      VPCZoneIdentifier=subnet)
        instances = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web-asg"])["AutoScalingGroups"][0]
        iid = instances["Instances"][0]["InstanceId"]
        asg.describe_auto_scaling_instances(InstanceIds=[iid])
        asg.set_instance_protection(AutoScalingGroupName="web-asg", InstanceIds=[iid], ProtectedFromScaleIn=True)
        asg.suspend_processes(AutoScalingGroupName="web-asg", ScalingProcesses=["Launch", "Terminate"])
        asg.detach_instances(AutoScalingGroupName="web-asg", InstanceIds=[iid], ShouldDecrementDesiredCapacity=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
