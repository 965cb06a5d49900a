# Ferry's everyday commands. `make test` is what CI runs (.ci/run).
.PHONY: run build test test-short lint bench fmt

GO ?= go

## run: start the server (go run ./cmd/ferry serve); extra flags in ARGS
run:
	$(GO) run ./cmd/ferry serve $(ARGS)

## build: build the ferry binary into bin/ferry
build:
	$(GO) build -o bin/ferry ./cmd/ferry

## test: the full suite as CI runs it: install missing tools, gofmt, vet,
## staticcheck, go mod tidy, private PostgreSQL, go test -race ./...
test:
	bash scripts/test.sh full

## test-short: the same checks, then go test -short without -race
test-short:
	bash scripts/test.sh short

## lint: gofmt, vet, staticcheck and go mod tidy only
lint:
	bash scripts/test.sh lint

## bench: the benchmarks in ./bench
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/

## fmt: gofmt every Go file in place
fmt:
	$(GO) fmt ./...
