# navarch: `make run` starts a dev node, `make test` runs every test.
GO        ?= go
export GOTOOLCHAIN := local
BIN       := bin/navarch
PKGS      := ./...
STATICCHECK_VERSION := 2026.1

.PHONY: build run test test-unit test-e2e lint peers clean

build:
	$(GO) build -o $(BIN) ./cmd/navarch

## run: build and start a single dev node (embedded etcd, xDS on :15010, API on :15014)
run: build
	./$(BIN) server --dev

## test: every test, unit (with the race detector) and end-to-end
test: build
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)
	$(GO) test -count=1 -timeout 20m ./e2e/...

test-unit:
	$(GO) test -race $$($(GO) list ./... | grep -v /e2e)

test-e2e: build
	$(GO) test -count=1 -v -timeout 20m ./e2e/...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

clean:
	rm -rf bin
