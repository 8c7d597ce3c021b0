# Automated AWS incident response — build, test, demo, package, deploy.
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: all build test lint fmt demo package deploy clean

all: build

build:
	$(CARGO) build --workspace

## The test command CI runs: formatting, lints, unit tests, and integration tests against moto.
## Ends with one total line ("N passed, N failed") summed over every cargo test binary.
test: lint
	@mkdir -p target
	set -o pipefail; $(CARGO) test --workspace 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "%d passed, %d failed\n", p, f; exit (p == 0 || f > 0)}' target/test.log

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Triage every sample event against a local moto server and print the decisions.
demo:
	$(CARGO) run --quiet -p ir-tests --bin demo

## Lambda zips (provided.al2023, arm64) under target/lambda/<function>/bootstrap.zip.
package:
	@command -v cargo-lambda >/dev/null 2>&1 || { echo "cargo-lambda is required: cargo install --locked cargo-lambda (and pip install ziglang to cross-compile)"; exit 1; }
	$(CARGO) lambda build --release --arm64 --output-format zip

## Terraform deployment lands with the infra/ issue; until then this refuses rather than pretends.
deploy:
	@echo "deploy: infra/ Terraform is not written yet (issue 5); nothing was deployed." >&2
	@exit 1

clean:
	$(CARGO) clean
