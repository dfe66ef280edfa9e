# The two commands a newcomer needs: `make run` and `make test`.
GO       ?= go
BIN      := bin/switchboard
CONFIG   ?= configs/switchboard.yaml
GOFLAGS_TEST ?= -race -count=1 -timeout 20m

.PHONY: run build test deps deps-run vet fuzz bench clean

run: deps-run build
	./$(BIN) run -c $(CONFIG)

build:
	$(GO) build -o $(BIN) ./cmd/switchboard

test: deps
	$(GO) vet ./...
	$(GO) test $(GOFLAGS_TEST) ./...

deps:
	scripts/install-deps.sh test

deps-run:
	scripts/install-deps.sh run

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
