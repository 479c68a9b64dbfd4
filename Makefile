# navarch: `make run` starts a dev node, `make test` runs every test.
GO        ?= go
export GOTOOLCHAIN := local
BIN       := bin/navarch
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2 # staticcheck 2026.2.2

.PHONY: build run test test-unit test-e2e test-e2e-race lint peers clean

build:
	$(GO) build -o $(BIN) ./cmd/navarch

## run: build and start a single dev node (embedded etcd, xDS on :15010, API on :15014)
run: build
	./$(BIN) server --dev

## test: every test, unit (with the race detector) and end-to-end
test: build peers
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)
	$(GO) test -count=1 -parallel 4 -timeout 20m ./e2e/...

test-unit:
	$(GO) test -race $$($(GO) list ./... | grep -v /e2e)

test-e2e: build
	$(GO) test -count=1 -parallel 4 -v -timeout 20m ./e2e/...

## test-e2e-race: the end-to-end tests against navarch built with the race detector,
## which finds races under real load that unit tests miss; slower, so not part of
## `make test`. Each report is a file .race/navarch.<pid>; none means none found.
test-e2e-race: peers
	rm -rf .race && mkdir -p .race
	NAVARCH_E2E_RACE=1 GORACE="log_path=$(CURDIR)/.race/navarch" $(GO) test -count=1 -parallel 4 -timeout 40m ./e2e/...; \
	status=$$?; if ls .race/navarch.* >/dev/null 2>&1; then echo "races found:"; ls .race; exit 1; fi; exit $$status

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## peers: build the real peers tests start into .peers/, once: only when missing or
## when their tools module changed. A Consul agent (about 5 minutes and 2.2 GB cold)
## and from Istio's module pilot-agent, istio-validate, istiod-xds and istio-analyze (about 6 minutes and
## 1.5 GB cold), and kube-apiserver with its etcd (about 7 minutes and 2.2 GB cold).
CONSUL_BIN := .peers/bin/consul
PILOT_AGENT_BIN := .peers/bin/pilot-agent
ISTIO_VALIDATE_BIN := .peers/bin/istio-validate
ISTIOD_XDS_BIN := .peers/bin/istiod-xds
ISTIO_ANALYZE_BIN := .peers/bin/istio-analyze
ISTIO_CRDS := .peers/istio/crd-all.gen.yaml
KUBE_APISERVER_BIN := .peers/bin/kube-apiserver
KUBE_ETCD_BIN := .peers/bin/etcd
peers: $(CONSUL_BIN) $(PILOT_AGENT_BIN) $(ISTIO_VALIDATE_BIN) $(ISTIOD_XDS_BIN) $(ISTIO_ANALYZE_BIN) $(ISTIO_CRDS) \
	$(KUBE_APISERVER_BIN) $(KUBE_ETCD_BIN)

$(CONSUL_BIN): e2e/peers/consul/go.mod
	cd e2e/peers/consul && GONOSUMDB=github.com/hashicorp/consul/envoyextensions,github.com/hashicorp/hcp-sdk-go \
		$(GO) build -o $(CURDIR)/$(CONSUL_BIN) github.com/hashicorp/consul

$(PILOT_AGENT_BIN): e2e/peers/istio/go.mod
	cd e2e/peers/istio && $(GO) build -o $(CURDIR)/$(PILOT_AGENT_BIN) istio.io/istio/pilot/cmd/pilot-agent

# istio-validate: Istio's own validation (API server CRD checks and the webhook's),
# the oracle api's tests compare navarch's validation with.
$(ISTIO_VALIDATE_BIN): e2e/peers/istio/go.mod e2e/peers/istio/validate/main.go
	cd e2e/peers/istio && $(GO) build -o $(CURDIR)/$(ISTIO_VALIDATE_BIN) ./validate

# istiod-xds: istiod's discovery server in process (Istio's test harness) on TCP,
# the peer e2e's parity test sends the same grpc-go clients to.
$(ISTIOD_XDS_BIN): e2e/peers/istio/go.mod e2e/peers/istio/istiod/main.go
	cd e2e/peers/istio && $(GO) build -o $(CURDIR)/$(ISTIOD_XDS_BIN) ./istiod

# istio-analyze: istioctl analyze's analyzers over files, which navarch analyze's
# tests compare with.
$(ISTIO_ANALYZE_BIN): e2e/peers/istio/go.mod e2e/peers/istio/analyze/main.go
	cd e2e/peers/istio && $(GO) build -o $(CURDIR)/$(ISTIO_ANALYZE_BIN) ./analyze

$(ISTIO_CRDS): e2e/peers/istio/go.mod
	mkdir -p $(dir $(ISTIO_CRDS))
	cp "$$(cd e2e/peers/istio && $(GO) list -m -f '{{.Dir}}' istio.io/istio)/manifests/charts/base/files/crd-all.gen.yaml" $(ISTIO_CRDS)
	chmod u+w $(ISTIO_CRDS)

# kube-apiserver v1.33.13 and the etcd it keeps its objects in (v3.5.21, a
# standalone server: navarch's own embedded etcd is v3.7), for the Kubernetes
# adapter's tests. Without the version stamp it reports v0.0.0.
KUBE_VERSION_PKG := k8s.io/component-base/version
KUBE_LDFLAGS := -X $(KUBE_VERSION_PKG).gitVersion=v1.33.13 -X $(KUBE_VERSION_PKG).gitMajor=1 -X $(KUBE_VERSION_PKG).gitMinor=33
$(KUBE_APISERVER_BIN): e2e/peers/kubernetes/go.mod
	cd e2e/peers/kubernetes && $(GO) build -ldflags "$(KUBE_LDFLAGS)" -o $(CURDIR)/$(KUBE_APISERVER_BIN) k8s.io/kubernetes/cmd/kube-apiserver

$(KUBE_ETCD_BIN): e2e/peers/kubernetes/go.mod
	cd e2e/peers/kubernetes && $(GO) build -o $(CURDIR)/$(KUBE_ETCD_BIN) go.etcd.io/etcd/server/v3

clean:
	rm -rf bin
