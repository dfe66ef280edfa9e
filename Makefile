# The two commands a newcomer needs: `make run` and `make test`.
GO       ?= go
BIN      := bin/switchboard
CONFIG   ?= configs/switchboard.yaml
GOFLAGS_TEST ?= -race -count=1 -timeout 20m
# Opus (media/opus) links libopus through cgo; nolibopusfile keeps hraban/opus
# from also linking libopusfile. Exported, so the e2e tests' own `go build` gets it too.
export GOFLAGS := $(strip $(GOFLAGS) -tags=nolibopusfile)

.PHONY: run build test deps deps-run vet fuzz bench soak clean

run: deps-run build
	./$(BIN) run -c $(CONFIG)

build:
	$(GO) build -o $(BIN) ./cmd/switchboard

test: deps vet
	$(GO) test $(GOFLAGS_TEST) ./...

vet:
	$(GO) vet ./...

deps:
	scripts/install-deps.sh test

deps-run:
	scripts/install-deps.sh run

# Long mode: each fuzz target in turn for FUZZTIME (`make fuzz`, 60 s each); `make test`
# runs every target's committed seed corpus (testdata/fuzz) as ordinary tests.
FUZZTIME ?= 60s
FUZZ_TARGETS := sip:FuzzValidate sip:FuzzNegotiate media:FuzzReceive media:FuzzRTCP \
	media:FuzzDTMF media:FuzzJitter media/pcm:FuzzReadWAV dialplan:FuzzParse
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "== $$fn ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg/; done

# 10,000 short sipp calls; goroutines, fds, RTP ports and the live heap must come back
# (docs/benchmarks.md, "Soak"). `make test` runs a 1,000-call version.
soak: deps
	SWITCHBOARD_SOAK=1 $(GO) test -count=1 -timeout 15m -run '^TestSoak$$' -v ./cmd/switchboard/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
