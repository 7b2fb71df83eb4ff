# inflight: the two commands a newcomer needs are `make demo` and `make test`.
# Each installs what it needs (Rust crates, the Go-built control plane,
# Prometheus, helm, kubectl) into ~/.cache/inflight and reuses it.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
CLUSTER := e2e/cluster
BED_DIR ?= /tmp/inflight-bed
export INFLIGHT_BED_DIR := $(BED_DIR)

.PHONY: help test unit e2e e2e-run lint fmt crd tools controlplane cluster-up cluster-down demo demo-sim bench image clean-bed

help:
	@echo "make demo       bring up the local bed, run inflight against a simulated workload"
	@echo "make test       unit, property, chart and end-to-end tests (builds the bed on first use)"
	@echo "make demo-sim   run the simulator on a shipped trace (no cluster)"
	@echo "make bench      benchmark inflight against HPA, KEDA and Knative's KPA"
	@echo "make lint       cargo fmt --check, clippy and cargo doc (warnings fail)"
	@echo "make crd        regenerate crds/ and the chart's CRD from the Rust types"
	@echo "make cluster-up / cluster-down   keep the bed up for debugging"

## Tests ----------------------------------------------------------------------

# Ends with one summary line counted from every cargo test run above it.
test:
	log=$$(mktemp); status=0; \
	$(MAKE) --no-print-directory lint unit e2e 2>&1 | tee "$$log" || status=$$?; \
	awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' "$$log"; \
	rm -f "$$log"; exit $$status

unit:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet

fmt:
	$(CARGO) fmt --all

crd:
	$(CARGO) run --quiet -- crd > crds/concurrencypolicy.yaml
	cp crds/concurrencypolicy.yaml charts/inflight/crds/concurrencypolicy.yaml

## The local bed --------------------------------------------------------------

tools:
	$(CLUSTER)/setup-tools.sh

controlplane:
	$(CLUSTER)/build.sh

cluster-up: tools controlplane
	$(CLUSTER)/up.sh
	@echo "export KUBECONFIG=$(BED_DIR)/kubeconfig   # or: source $(BED_DIR)/env"

cluster-down:
	$(CLUSTER)/down.sh

# Brings the bed up, runs every test that needs it, and always tears it down.
e2e: tools controlplane
	$(CARGO) build --bins
	$(CLUSTER)/up.sh
	status=0; $(MAKE) e2e-run || status=$$?; $(CLUSTER)/down.sh; exit $$status

# Runs the e2e tests against a bed that is already up (make cluster-up).
e2e-run:
	source $(BED_DIR)/env && $(CARGO) test --all-targets -- --ignored --test-threads=2

## Benchmarks and demos ---------------------------------------------------------

# The README's first command: inflight scaling a simulated workload on the bed.
demo: cluster-up
	$(CARGO) build --bins
	e2e/demo.sh

# The simulator on a shipped trace; no cluster needed.
demo-sim:
	$(CARGO) run --release -- simulate --trace ../shared/traces/azure_llm_inference_conv_2023.csv --scale 500 --compare hpa,keda,kpa --plot sim.svg

# Every trace and synthetic profile, every autoscaler: bench/results.md and plots.
bench:
	$(CARGO) run --release --example bench -- --traces ../shared/traces --out bench

VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
# Needs a Docker engine with BuildKit (not available on the project's machines).
image:
	docker build -t inflight:$(VERSION) .
