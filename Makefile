# Berth's entry points. `make dev` runs Berth on a local cluster; `make test` runs every
# test. Both install what they need (Node, npm packages, control-plane binaries) first.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

NODE_BIN = $(shell hack/ensure-node.sh)
NODE_ENV_PATH = PATH="$(NODE_BIN):$$PATH"
KIND_CLUSTER ?= berth

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: dev
dev: ## Bring up the local cluster and run Berth on it
	hack/dev.sh

.PHONY: test
test: ## Run all tests (unit + integration on the local cluster)
	hack/test.sh

.PHONY: bench
bench: ## Run the benchmarks in bench/ on this machine (takes several minutes)
	hack/bench.sh

.PHONY: test-unit
test-unit: ## Run the unit tests only (no cluster)
	$(NODE_ENV_PATH) hack/ensure-npm-packages.sh && hack/ensure-debian-packages.sh && $(NODE_ENV_PATH) node_modules/.bin/vitest run --project unit

.PHONY: typecheck
typecheck: ## Type-check sources and tests
	$(NODE_ENV_PATH) hack/ensure-npm-packages.sh && $(NODE_ENV_PATH) node_modules/.bin/tsc -p tsconfig.json

.PHONY: build
build: ## Compile src/ to dist/
	$(NODE_ENV_PATH) hack/ensure-npm-packages.sh && $(NODE_ENV_PATH) node_modules/.bin/tsc -p tsconfig.build.json

.PHONY: plugin plugin-archive
plugin: ## Build kubectl-berth as one file: dist/kubectl-berth.mjs (runs with Node.js 24+)
	$(NODE_ENV_PATH) hack/ensure-npm-packages.sh && $(NODE_ENV_PATH) node_modules/.bin/esbuild src/plugin/main.ts \
	  --bundle --platform=node --format=esm --target=node24 --log-level=warning --outfile=dist/kubectl-berth.mjs \
	  --banner:js="import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);"
plugin-archive: plugin ## The krew release: dist/kubectl-berth.tar.gz and its manifest dist/krew/berth.yaml (PLUGIN_URL= where the archive will be)
	$(NODE_ENV_PATH) node hack/plugin-archive.ts $(if $(PLUGIN_URL),--url $(PLUGIN_URL))

.PHONY: control-plane
control-plane: ## Build the control-plane binaries into the cache
	hack/build-control-plane.sh

.PHONY: cluster-up cluster-down cluster-status
cluster-up: ## Start the local cluster (idempotent)
	hack/cluster.sh up
cluster-down: ## Stop the local cluster and remove its network namespace
	hack/cluster.sh down
cluster-status: ## Show the local cluster's components and nodes
	hack/cluster.sh status

.PHONY: kind-up kind-down
kind-up: ## For machines with Docker: a kind cluster instead of the local control plane
	kind create cluster --name $(KIND_CLUSTER)
	@echo "KUBECONFIG now points at kind-$(KIND_CLUSTER); run Berth against it as the README describes"
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

.PHONY: generate
generate: ## Regenerate crds/ from the zod schemas in src/api, and what the chart copies
	$(NODE_ENV_PATH) node src/cli.ts crds
	$(NODE_ENV_PATH) node hack/generate-chart.ts

# The chart's appVersion: the tag the chart deploys by default.
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/berth/Chart.yaml)
IMAGE ?= berth/berth
NGINX_IMAGE ?= berth/nginx

.PHONY: docker-build image-check
docker-build: ## Build the operator/agent image and the load-balancer nginx image with docker
	docker build -t $(IMAGE):$(IMAGE_TAG) -f Dockerfile .
	docker build -t $(NGINX_IMAGE):$(IMAGE_TAG) -f Dockerfile.nginx .
image-check: ## Without docker: perform the Dockerfile's steps in a temp dir and start the result
	hack/check-image-build.sh

.PHONY: kind-load
kind-load: ## Load the images into the kind cluster
	kind load docker-image --name $(KIND_CLUSTER) $(IMAGE):$(IMAGE_TAG) $(NGINX_IMAGE):$(IMAGE_TAG)
