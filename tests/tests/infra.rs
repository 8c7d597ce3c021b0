//! `infra/` against moto: `terraform fmt -check`, `init` (AWS provider from the offline mirror),
//! `validate`, `apply`, then SDK reads prove what was created (the state machine filled with the
//! function ARNs, seven arm64 `provided.al2023` functions, the approval function URL, the Object
//! Lock evidence bucket, tables, kill switch, rules with targets, the failed-execution alarm),
//! then `destroy` and reads prove it is gone. Without terraform this prints a loud SKIPPED line.

use std::path::{Path, PathBuf};
use std::process::Command;

use ir_tests::fixtures::workspace_file;
use ir_tests::MotoServer;

const FUNCTIONS: [&str; 7] = [
    "ir-triage",
    "ir-isolate-ec2",
    "ir-quarantine-iam",
    "ir-lockdown-s3",
    "ir-preserve-evidence",
    "ir-notify",
    "ir-approve",
];

fn terraform_available() -> bool {
    Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Tf {
    dir: PathBuf,
    work: PathBuf,
    endpoint: String,
}

impl Tf {
    fn run(&self, args: &[&str]) -> String {
        let (ok, text) = self.try_run(args);
        assert!(ok, "terraform {args:?} failed:\n{text}");
        text
    }

    /// Runs terraform; whether it succeeded, and what it printed.
    fn try_run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("terraform")
            .arg(format!("-chdir={}", self.dir.display()))
            .args(args)
            .env("TF_CLI_CONFIG_FILE", self.work.join("cli.tfrc"))
            .env("TF_DATA_DIR", self.work.join("data"))
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run terraform");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `infra/<name>/`, a root module of its own, initialised in a work directory beside the
    /// administrator's (same CLI configuration, same emulator).
    fn module(&self, name: &str) -> Tf {
        let work = self.work.join(name);
        std::fs::create_dir_all(&work).unwrap();
        std::fs::copy(self.work.join("cli.tfrc"), work.join("cli.tfrc")).unwrap();
        let tf = Tf {
            dir: workspace_file(&format!("infra/{name}")),
            work,
            endpoint: self.endpoint.clone(),
        };
        tf.run(&["init", "-input=false", "-no-color", "-lockfile=readonly"]);
        tf
    }

    fn vars(&self) -> Vec<String> {
        vec![
            format!("-state={}", self.work.join("terraform.tfstate").display()),
            format!("-var=aws_endpoint={}", self.endpoint),
            format!("-var=lambda_zip_dir={}", self.work.join("zips").display()),
            "-var=approvers=[\"5b10ac8d82e05b22cc7d4ef5\"]".into(),
            "-var=jira_url=https://example.atlassian.net".into(),
            "-var=jira_credentials_secret=secretsmanager:ir/jira".into(),
            "-var=slack_webhook_secret=ssm:/ir/slack-webhook".into(),
            "-var=organization_response=true".into(),
            "-var=member_external_id=ir-ext-test".into(),
            "-var=finding_regions=[\"eu-west-1\"]".into(),
            // moto 5.2.1 has no Security Hub action targets (CreateActionTarget is missing).
            "-var=create_securityhub_actions=false".into(),
            "-no-color".into(),
            "-input=false".into(),
        ]
    }
}

/// `infra/member/` in the same (emulated) account, after the administrator module: the member
/// role trusts exactly the four acting functions' roles, with the ExternalId, under its
/// boundary, with their declared statements; then it is destroyed.
async fn member_module_applies(admin: &Tf, moto: &MotoServer, iam: &aws_sdk_iam::Client) {
    let tf = admin.module("member");
    let state = format!("-state={}", tf.work.join("terraform.tfstate").display());
    let vars = [
        state.as_str(),
        &format!("-var=aws_endpoint={}", moto.endpoint()),
        "-var=administrator_account_id=123456789012",
        "-var=external_id=ir-ext-test",
        "-no-color",
        "-input=false",
    ];
    let mut apply = vec!["apply", "-auto-approve"];
    apply.extend(vars);
    let out = tf.run(&apply);
    assert!(out.contains("Apply complete!"), "{out}");
    let role = iam.get_role().role_name("ir-member").send().await.unwrap();
    let role = role.role().unwrap();
    let trust = urlencoding_decode(role.assume_role_policy_document().unwrap_or_default());
    let trust: serde_json::Value = serde_json::from_str(&trust).unwrap();
    let principals = trust["Statement"][0]["Principal"]["AWS"].clone();
    let mut principals: Vec<String> = serde_json::from_value(principals).unwrap();
    principals.sort();
    assert_eq!(
        principals,
        [
            "isolate-ec2",
            "lockdown-s3",
            "preserve-evidence",
            "quarantine-iam"
        ]
        .map(|f| format!("arn:aws:iam::123456789012:role/ir-{f}"))
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "ir-ext-test"
    );
    assert!(role
        .permissions_boundary()
        .and_then(|b| b.permissions_boundary_arn())
        .is_some_and(|a| a.ends_with(":policy/ir-member-boundary")));
    let policies = iam
        .list_role_policies()
        .role_name("ir-member")
        .send()
        .await
        .unwrap();
    let mut names = policies.policy_names().to_vec();
    names.sort();
    assert_eq!(
        names,
        [
            "ir-isolate-ec2",
            "ir-lockdown-s3",
            "ir-preserve-evidence",
            "ir-quarantine-iam"
        ]
    );
    let isolate = iam
        .get_role_policy()
        .role_name("ir-member")
        .policy_name("ir-isolate-ec2")
        .send()
        .await
        .unwrap();
    let doc = urlencoding_decode(isolate.policy_document());
    assert!(doc.contains("ec2:ModifyNetworkInterfaceAttribute"), "{doc}");
    assert!(
        !doc.contains("dynamodb:") && !doc.contains("ssm:GetParameter"),
        "{doc}"
    );
    let mut destroy = vec!["destroy", "-auto-approve"];
    destroy.extend(vars);
    tf.run(&destroy);
    assert!(iam.get_role().role_name("ir-member").send().await.is_err());
}

/// `infra/region/` in eu-west-1 with the administrator's `region_forwarder` output: a HIGH
/// GuardDuty finding raised there starts the home Region's state machine with the event as it
/// was raised (its Region and account), a MEDIUM one does not; applying it in the home Region is
/// refused; then it is destroyed.
async fn region_module_applies(
    admin: &Tf,
    moto: &MotoServer,
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
) {
    let tf = admin.module("region");
    let forwarder = admin.run(&[
        "output",
        "-json",
        &format!("-state={}", admin.work.join("terraform.tfstate").display()),
        "region_forwarder",
    ]);
    let var_file = tf.work.join("forwarder.tfvars.json");
    std::fs::write(&var_file, &forwarder).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&forwarder).unwrap();
    assert_eq!(
        parsed["home_event_bus_arn"],
        "arn:aws:events:us-east-1:123456789012:event-bus/default"
    );
    assert!(
        parsed["event_patterns"].get("custom-action").is_none(),
        "{parsed}"
    );
    let state = format!("-state={}", tf.work.join("terraform.tfstate").display());
    let endpoint = format!("-var=aws_endpoint={}", moto.endpoint());
    let var_file = format!("-var-file={}", var_file.display());
    let vars = [
        state.as_str(),
        &endpoint,
        &var_file,
        "-var=aws_region=eu-west-1",
        "-no-color",
        "-input=false",
    ];
    let mut plan = vec!["plan"];
    plan.extend(vars);
    plan.push("-var=aws_region=us-east-1"); // the last -var wins
    let (ok, out) = tf.try_run(&plan);
    assert!(!ok && out.contains("not its home Region"), "{out}");
    let mut apply = vec!["apply", "-auto-approve"];
    apply.extend(vars);
    let out = tf.run(&apply);
    assert!(out.contains("Apply complete!"), "{out}");

    let executions = |sfn: aws_sdk_sfn::Client| async move {
        let list = sfn
            .list_executions()
            .state_machine_arn(machine)
            .send()
            .await
            .unwrap();
        let mut inputs = Vec::new();
        for e in list.executions() {
            let d = sfn
                .describe_execution()
                .execution_arn(e.execution_arn())
                .send()
                .await
                .unwrap();
            inputs.push(
                serde_json::from_str::<serde_json::Value>(&d.input.unwrap_or_default()).unwrap(),
            );
        }
        inputs
    };
    let before = executions(sfn.clone()).await.len();
    let file = workspace_file("events/guardduty-ec2-c2-activity.json");
    let mut high: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    high["detail"]["region"] = "eu-west-1".into();
    high["detail"]["id"] = "forwarded-from-eu-west-1".into();
    let mut medium = high.clone();
    medium["detail"]["severity"] = 5.0.into();
    medium["detail"]["id"] = "medium-in-eu-west-1".into();
    ir_tests::eventbridge::put_event_in(moto, "eu-west-1", &high).await;
    ir_tests::eventbridge::put_event_in(moto, "eu-west-1", &medium).await;
    let after = executions(sfn.clone()).await;
    assert_eq!(
        after.len(),
        before + 1,
        "one forwarded finding started a response"
    );
    let started = after
        .iter()
        .find(|i| i["detail"]["id"] == "forwarded-from-eu-west-1")
        .expect("the HIGH finding from eu-west-1");
    assert_eq!(started["region"], "eu-west-1", "{started}");
    assert_eq!(started["account"], "123456789012", "{started}");

    let mut destroy = vec!["destroy", "-auto-approve"];
    destroy.extend(vars);
    tf.run(&destroy);
    let rules = ir_tests::eventbridge::call_in(
        moto,
        "eu-west-1",
        "ListRules",
        serde_json::json!({ "NamePrefix": "ir-forward-" }),
    )
    .await;
    assert_eq!(rules["Rules"].as_array().map(Vec::len), Some(0), "{rules}");
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Placeholder zips where `cargo lambda build` would put them (moto stores, never runs, them).
fn placeholder_zips(dir: &Path) {
    for f in FUNCTIONS {
        let d = dir.join(f);
        std::fs::create_dir_all(&d).unwrap();
        let status = Command::new("python3")
            .args([
                "-c",
                "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1],'w'); z.writestr('bootstrap','#!/bin/sh\\n'); z.close()",
            ])
            .arg(d.join("bootstrap.zip"))
            .status()
            .unwrap();
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_applies_and_destroys_against_the_emulator() {
    if !terraform_available() {
        eprintln!("\n==== SKIPPED: terraform not found on PATH: infra/ was NOT validated or applied ====\n");
        println!("SKIPPED terraform_applies_and_destroys_against_the_emulator: no terraform");
        return;
    }
    let moto = MotoServer::start().expect("moto");
    let work = workspace_file(&format!("target/tf-test-{}", moto.port()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // The AWS provider from the machine's offline mirror when there is one, else the registry.
    let mirror = std::env::var("IR_TF_PLUGIN_MIRROR").unwrap_or_else(|_| "/opt/tf-plugins".into());
    let cli_config = if Path::new(&mirror).is_dir() {
        format!(
            r#"provider_installation {{
  filesystem_mirror {{
    path    = "{mirror}"
    include = ["registry.terraform.io/hashicorp/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/hashicorp/*"]
  }}
}}
"#
        )
    } else {
        String::new()
    };
    std::fs::write(work.join("cli.tfrc"), cli_config).unwrap();
    placeholder_zips(&work.join("zips"));
    let tf = Tf {
        dir: workspace_file("infra"),
        work: work.clone(),
        endpoint: moto.endpoint().to_string(),
    };
    tf.run(&["fmt", "-check", "-recursive", "-diff"]);
    tf.run(&["init", "-input=false", "-no-color", "-lockfile=readonly"]);
    tf.run(&["validate", "-no-color"]);
    let mut apply = vec!["apply", "-auto-approve"];
    let vars = tf.vars();
    apply.extend(vars.iter().map(String::as_str));
    let out = tf.run(&apply);
    assert!(out.contains("Apply complete!"), "{out}");

    let sdk = moto.sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machines = sfn.list_state_machines().send().await.unwrap();
    let machine = machines
        .state_machines()
        .iter()
        .find(|m| m.name() == "ir-incident-response")
        .expect("state machine");
    let def = sfn
        .describe_state_machine()
        .state_machine_arn(machine.state_machine_arn())
        .send()
        .await
        .unwrap()
        .definition;
    assert!(!def.contains("${"), "every placeholder filled");
    assert!(
        def.contains(":function:ir-triage"),
        "function ARNs filled in"
    );
    let asl: serde_json::Value = serde_json::from_str(&def).unwrap();
    assert_eq!(asl["States"]["ReviewGate"]["TimeoutSeconds"], 86400);

    let functions = lambda_functions(moto.endpoint()).await;
    assert_eq!(functions.len(), FUNCTIONS.len(), "{functions:?}");
    for f in FUNCTIONS {
        let (_, runtime, arch, _) = functions
            .iter()
            .find(|(n, ..)| n == f)
            .unwrap_or_else(|| panic!("{f} missing: {functions:?}"));
        assert_eq!(runtime, "provided.al2023");
        assert_eq!(arch, r#"["arm64"]"#);
    }
    // Triage fans further findings out to the state machine: the ARN it is given (built from the
    // name, to avoid a cycle) is the machine's real ARN.
    let (.., triage_env) = functions.iter().find(|(n, ..)| n == "ir-triage").unwrap();
    assert_eq!(
        triage_env["IR_STATE_MACHINE_ARN"].as_str(),
        Some(machine.state_machine_arn()),
        "{triage_env}"
    );
    let s3 = moto.s3_client(&sdk);
    let bucket = "ir-evidence-123456789012-us-east-1";
    let lock = s3
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lock.object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .map(|e| e.as_str()),
        Some("Enabled")
    );
    let pab = s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        pab.public_access_block_configuration()
            .and_then(|c| c.block_public_policy()),
        Some(true)
    );
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = ddb.list_tables().send().await.unwrap();
    assert!(tables.table_names().contains(&"ir-incidents".to_string()));
    assert!(tables.table_names().contains(&"ir-approvals".to_string()));
    let kill = aws_sdk_ssm::Client::new(&sdk)
        .get_parameter()
        .name("/ir/incident-response/kill-switch")
        .send()
        .await
        .unwrap();
    assert_eq!(kill.parameter().and_then(|p| p.value()), Some("off"));
    let iam = aws_sdk_iam::Client::new(&sdk);
    let doc = role_policy(&iam, "ir-triage").await;
    assert!(
        doc.contains("dynamodb:UpdateItem")
            && !doc.contains("dynamodb:*")
            && doc.contains("states:StartExecution"),
        "{doc}"
    );
    // Declared conditions reach the role policy; every role has the boundary.
    let doc = role_policy(&iam, "ir-isolate-ec2").await;
    assert!(
        doc.contains("iam:PassedToService") && doc.contains("ec2.amazonaws.com"),
        "{doc}"
    );
    assert!(
        doc.contains(r#""Effect":"Deny""#) && doc.contains("role/ir-*"),
        "{doc}"
    );
    let role = iam
        .get_role()
        .role_name("ir-isolate-ec2")
        .send()
        .await
        .unwrap();
    assert!(
        role.role()
            .and_then(|r| r.permissions_boundary())
            .and_then(|b| b.permissions_boundary_arn())
            .is_some_and(|a| a.ends_with(":policy/ir-boundary")),
        "{role:?}"
    );
    let doc = role_policy(&iam, "ir-notify").await;
    assert!(
        doc.contains("securityhub:BatchUpdateFindings") && doc.contains("sns:Publish"),
        "{doc}"
    );
    member_module_applies(&tf, &moto, &iam).await;
    // Only EventBridge, only for the forwarding rules of the listed Regions in this account.
    let forward = iam
        .get_role()
        .role_name("ir-forward-findings")
        .send()
        .await
        .unwrap();
    let trust = urlencoding_decode(
        forward
            .role()
            .map(|r| r.assume_role_policy_document().unwrap_or_default())
            .unwrap_or_default(),
    );
    assert!(
        trust.contains("events.amazonaws.com")
            && trust.contains("arn:aws:events:eu-west-1:123456789012:rule/ir-forward-*"),
        "{trust}"
    );
    assert!(out.contains("approval_webhook_url"), "{out}");
    // Strict mode answers the function URL as Lambda would: 403 unless the function policy lets
    // the public invoke it through the URL (InvokeFunctionUrl with auth type NONE, and
    // InvokeFunction), which Terraform must grant for Jira's webhook to get through.
    let (status, body) = moto
        .get("/strict-api/function-url/ir-approve")
        .expect("strict-api");
    assert_eq!(status, 200, "the Jira webhook URL would answer 403: {body}");

    // EventBridge → Step Functions through the rules and target role Terraform created: every
    // sample event is put on the default bus; the executions that start must be exactly the
    // events the rules are for, each with the event as its input.
    let mut sent = Vec::new();
    let mut want = Vec::new();
    for file in ir_tests::fixtures::sample_event_files().unwrap() {
        let Ok(event) =
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&file).unwrap())
        else {
            continue; // not JSON: nothing to put on a bus
        };
        if wanted_by_the_rules(&event) {
            want.push(event["detail"].to_string());
        }
        sent.push(event);
    }
    // Two that must not start a response: a GuardDuty finding below HIGH, and a Security Hub
    // finding ir-notify already moved to NOTIFIED (its update re-emits it as Imported).
    let mut medium = sent
        .iter()
        .find(|e| e["source"] == "aws.guardduty" && e["detail"]["severity"].as_f64() >= Some(7.0))
        .cloned()
        .unwrap();
    medium["detail"]["severity"] = 5.0.into();
    let mut notified = sent
        .iter()
        .find(|e| e["detail-type"] == "Security Hub Findings - Imported" && wanted_by_the_rules(e))
        .cloned()
        .unwrap();
    notified["detail"]["findings"][0]["Workflow"]["Status"] = "NOTIFIED".into();
    // A forged finding: anyone allowed BatchImportFindings can import one of their own product
    // that claims GuardDuty's type on any instance. Only trusted products are delivered.
    let mut forged = notified.clone();
    forged["detail"]["findings"][0]["Workflow"]["Status"] = "NEW".into();
    forged["detail"]["findings"][0]["ProductArn"] =
        "arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default".into();
    assert!(
        !wanted_by_the_rules(&medium)
            && !wanted_by_the_rules(&notified)
            && !wanted_by_the_rules(&forged)
    );
    sent.extend([medium, notified, forged]);
    for event in &sent {
        ir_tests::eventbridge::put_event(&moto, event).await;
    }
    let executions = sfn
        .list_executions()
        .state_machine_arn(machine.state_machine_arn())
        .send()
        .await
        .unwrap();
    let mut started = Vec::new();
    for e in executions.executions() {
        let input = sfn
            .describe_execution()
            .execution_arn(e.execution_arn())
            .send()
            .await
            .unwrap()
            .input
            .unwrap_or_default();
        let input: serde_json::Value = serde_json::from_str(&input).unwrap();
        assert!(
            input["id"].is_string() && input["source"].is_string(),
            "the whole event: {input}"
        );
        // What the triage Lambda receives parses exactly as the sample itself does.
        let original = sent
            .iter()
            .find(|e| e["detail"] == input["detail"])
            .expect("an event that was put");
        let parse = |v: &serde_json::Value| {
            ir_core::finding::ParsedEvent::from_value(v.clone())
                .map(|(envelope, _)| envelope.time.is_some())
                .map_err(|e| e.error_type())
        };
        assert_eq!(parse(&input), parse(original), "{input}");
        started.push(input["detail"].to_string());
    }
    started.sort();
    want.sort();
    assert!(
        want.len() >= 10,
        "most samples are HIGH/CRITICAL: {}",
        want.len()
    );
    assert_eq!(started, want, "the executions EventBridge started");

    region_module_applies(&tf, &moto, &sfn, machine.state_machine_arn()).await;

    // The review gate is Jira: Jira without approvers (or approvers without Jira) is refused
    // at plan time, before anything is deployed half-configured.
    let mut plan = vec!["plan"];
    plan.extend(vars.iter().map(String::as_str));
    plan.push("-var=approvers=[]"); // the last -var wins
    let (ok, out) = tf.try_run(&plan);
    assert!(!ok && out.contains("review gate needs"), "{out}");
    // Approvers are Jira account ids: an email could never match a Jira Cloud delivery.
    plan.pop();
    plan.push("-var=approvers=[\"lead@example.com\"]");
    let (ok, out) = tf.try_run(&plan);
    assert!(!ok && out.contains("not emails"), "{out}");
    // Undelivered findings are dead-lettered, not dropped.
    let queues = aws_sdk_sqs::Client::new(&sdk)
        .list_queues()
        .send()
        .await
        .unwrap();
    assert!(
        queues
            .queue_urls()
            .iter()
            .any(|q| q.ends_with("/ir-undelivered-findings")),
        "{queues:?}"
    );

    let mut destroy = vec!["destroy", "-auto-approve"];
    destroy.extend(vars.iter().map(String::as_str));
    // The evidence key and bucket refuse to be destroyed: COMPLIANCE-locked evidence would
    // outlive its key, unreadable. Tearing down means removing them from the state on purpose.
    let (ok, out) = tf.try_run(&destroy);
    assert!(!ok && out.contains("prevent_destroy"), "{out}");
    let state = format!("-state={}", work.join("terraform.tfstate").display());
    tf.run(&[
        "state",
        "rm",
        &state,
        "aws_kms_key.evidence",
        "aws_s3_bucket.evidence",
    ]);
    let out = tf.run(&destroy);
    assert!(out.contains("Destroy complete!"), "{out}");
    let machines = sfn.list_state_machines().send().await.unwrap();
    assert!(
        machines.state_machines().is_empty(),
        "state machine destroyed"
    );
    assert!(
        lambda_functions(moto.endpoint()).await.is_empty(),
        "functions destroyed"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// Every rule of the default policy can fire: a GuardDuty finding type a rule is for is
/// delivered by the severity threshold (the rule's own `min_severity` at or above it) or by
/// `guardduty_types_any_severity` — a rule the deployed EventBridge rules never feed is dead.
#[test]
fn every_rule_of_the_default_policy_is_fed_by_the_deployed_rules() {
    let policy = ir_core::LoadedPolicy::default_policy().unwrap().policy;
    let threshold = f64::from(ir_tests::eventbridge::terraform_default_min_severity());
    let types = ir_tests::eventbridge::terraform_default_types_any_severity();
    for rule in &policy.rules {
        if rule.min_severity.is_some_and(|m| m >= threshold) {
            continue;
        }
        for glob in &rule.finding_types {
            let stem = glob.trim_end_matches('*');
            assert!(
                types.iter().any(|p| stem.starts_with(p.as_str())),
                "rule `{}`: `{glob}` findings below severity {threshold} are never delivered",
                rule.name
            );
        }
    }
}

/// The inline policy Terraform gives `function`'s role, decoded.
async fn role_policy(iam: &aws_sdk_iam::Client, function: &str) -> String {
    let policy = iam
        .get_role_policy()
        .role_name(function)
        .policy_name(format!("exactly-what-{function}-calls"))
        .send()
        .await
        .unwrap();
    percent_encoding::percent_decode_str(policy.policy_document())
        .decode_utf8_lossy()
        .to_string()
}

/// What the rules are for (issue 5): GuardDuty findings of severity HIGH or above (≥ 7), Security
/// Hub imported findings of GuardDuty (the default trusted product) labelled HIGH/CRITICAL that
/// are NEW and ACTIVE, and every Security Hub custom action. Array fields match when any element does, as in EventBridge.
fn wanted_by_the_rules(event: &serde_json::Value) -> bool {
    let d = &event["detail"];
    let any = |f: &dyn Fn(&serde_json::Value) -> bool| {
        d["findings"].as_array().is_some_and(|a| a.iter().any(f))
    };
    match (event["source"].as_str(), event["detail-type"].as_str()) {
        (Some("aws.guardduty"), Some("GuardDuty Finding")) => {
            let types = ir_tests::eventbridge::terraform_default_types_any_severity();
            d["severity"].as_f64().is_some_and(|s| s >= 7.0)
                || d["type"]
                    .as_str()
                    .is_some_and(|t| types.iter().any(|p| t.starts_with(p.as_str())))
        }
        (Some("aws.securityhub"), Some("Security Hub Findings - Imported")) => {
            // Only GuardDuty's findings are trusted by default (trusted_securityhub_products).
            any(&|f| {
                f["ProductArn"]
                    .as_str()
                    .is_some_and(|a| a.ends_with(":product/aws/guardduty"))
            }) && any(&|f| matches!(f["Severity"]["Label"].as_str(), Some("HIGH" | "CRITICAL")))
                && any(&|f| f["Workflow"]["Status"] == "NEW")
                && any(&|f| f["RecordState"] == "ACTIVE")
        }
        (Some("aws.securityhub"), Some("Security Hub Findings - Custom Action")) => true,
        _ => false,
    }
}

/// (name, runtime, architectures) of every function, from Lambda's ListFunctions REST API (read
/// with a plain HTTP client to keep the Lambda SDK out of the build).
async fn lambda_functions(endpoint: &str) -> Vec<(String, String, String, serde_json::Value)> {
    // moto picks the service from the credential scope; it does not check the signature.
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{endpoint}/2015-03-31/functions/"))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0",
        )
        .send()
        .await
        .expect("ListFunctions")
        .json()
        .await
        .expect("JSON");
    v["Functions"]
        .as_array()
        .expect("Functions")
        .iter()
        .map(|f| {
            (
                f["FunctionName"].as_str().unwrap_or_default().to_string(),
                f["Runtime"].as_str().unwrap_or_default().to_string(),
                f["Architectures"].to_string(),
                f["Environment"]["Variables"].clone(),
            )
        })
        .collect()
}
