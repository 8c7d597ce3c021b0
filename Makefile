# Automated AWS incident response — build, test, demo, package, deploy.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build test lint fmt demo bench fuzz burst replay checkov package deploy clean

all: build

build:
	$(CARGO) build --workspace

## The test command CI runs: formatting, lints, the emulator's strict-mode rules (each refuses
## what AWS refuses and accepts what AWS accepts), unit tests, and integration tests against moto
## in strict mode. Ends with one total line ("N passed, N failed") over all of them.
test: lint
	@mkdir -p target
	set -o pipefail; python3 tests/strict_test.py 2>&1 | tee target/strict.log
	set -o pipefail; $(CARGO) test --workspace 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} /^strict: [0-9]+ passed/ {p += $$2; f += $$4} END {printf "%d passed, %d failed\n", p, f; exit (p == 0 || f > 0)}' target/strict.log target/test.log

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## On a local moto server: triage every sample event, then run the whole response (real state
## machine, real handlers) on a seeded compromised environment and print the incident timeline.
demo:
	$(CARGO) run --quiet -p ir-tests --bin demo

## Handler latency, event → contained time on the local pipeline (IR_BENCH_RUNS, default 5) and
## each Lambda binary's cold start against a local Runtime API (IR_BENCH_COLD_RUNS, default 3).
## BENCH_PROFILE=release measures release builds (what `make package` ships).
BENCH_PROFILE ?= dev
BENCH_DIR = $(if $(filter release,$(BENCH_PROFILE)),release,debug)
bench: fuzz burst replay
	$(CARGO) build --quiet --profile $(BENCH_PROFILE) --workspace --bins
	IR_BENCH_BIN_DIR=$(CURDIR)/target/$(BENCH_DIR) $(CARGO) run --quiet -p ir-tests --bin bench

## IR_BURST_FINDINGS (default 1,000) different findings over IR_BURST_RESOURCES (default 200)
## instances, put on the bus as fast as the local stack takes them (at most IR_BURST_WINDOW,
## default 40, executions short of their gate), through the executed state machine: each
## instance isolated exactly once, every finding recorded; findings/s, event → contained /
## evidence p50 and p99; then each function binary's peak memory over a sample of the events the
## burst handed it (IR_BURST_MEMORY_EVENTS, default 50).
burst:
	$(CARGO) build --quiet --profile $(BENCH_PROFILE) --workspace --bins
	IR_BENCH_BIN_DIR=$(CURDIR)/target/$(BENCH_DIR) $(CARGO) run --quiet --profile $(BENCH_PROFILE) -p ir-tests --bin burst

## One finding delivered IR_REPLAYS (default 100) times at once plus its re-published copy,
## through the executed state machine: one response, one ticket, one evidence chain.
replay:
	$(CARGO) run --quiet --profile $(BENCH_PROFILE) -p ir-tests --bin replay

## The fuzz pass at full size: IR_FUZZ_INPUTS (default 10,000,000) hostile inputs for each of the
## triage handler and the Jira webhook handler (IR_FUZZ_SEED repeats a run).
fuzz:
	$(CARGO) run --quiet --profile fuzz -p ir-fuzz --bin fuzz

## checkov on infra/, and on each role policy as Terraform renders it from infra/permissions.json
## (a static scan of infra/ cannot evaluate those). Needs checkov (pip install checkov).
CHECKOV ?= checkov
checkov:
	python3 tests/checkov_policies.py $(CHECKOV)

## Lambda zips (provided.al2023, arm64) under target/lambda/<function>/bootstrap.zip.
package:
	@command -v cargo-lambda >/dev/null 2>&1 || { echo "cargo-lambda is required: cargo install --locked cargo-lambda (and pip install ziglang to cross-compile)"; exit 1; }
	$(CARGO) lambda build --release --arm64 --output-format zip

## Build the zips, then terraform init + apply in infra/ (variables from infra/terraform.tfvars
## or TF_VAR_*; terraform shows the plan and asks before changing anything).
deploy: package
	terraform -chdir=infra init -input=false
	terraform -chdir=infra apply -var lambda_zip_dir=../target/lambda

clean:
	$(CARGO) clean
