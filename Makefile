# jobd / jobctl. `make help` lists the targets.

GO       ?= go
PREFIX   ?= /usr/local
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...

.PHONY: help build demo test test-short lint bench bench-smoke completions install clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/jobd and bin/jobctl
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/jobd ./cmd/jobd
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/jobctl ./cmd/jobctl

demo: build ## run jobd, one executor and an example job; runs show within seconds
	./scripts/demo.sh

test: ## run every test (race detector on), as CI does
	$(GO) vet $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short: ## run the fast tests only
	$(GO) test -short -count=1 $(PKGS)

lint: ## gofmt, go vet and golangci-lint when installed
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	@if command -v golangci-lint >/dev/null; then golangci-lint run; else echo "golangci-lint not installed; skipped"; fi

bench: build ## run the benchmark workloads (SPEC §7) and print their figures; BENCHFLAGS="-workloads steady,list -json"
	$(GO) run ./bench $(BENCHFLAGS)

bench-smoke: build ## run every benchmark workload scaled down to a few seconds
	$(GO) run ./bench -smoke $(BENCHFLAGS)

completions: ## regenerate shell completions into completions/
	$(GO) run ./cmd/jobctl completion bash > completions/jobctl.bash
	$(GO) run ./cmd/jobctl completion zsh > completions/jobctl.zsh
	$(GO) run ./cmd/jobctl completion fish > completions/jobctl.fish

install: build ## install binaries, completions, systemd units and example config under PREFIX
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/jobd $(BIN)/jobctl $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/share/doc/jobd
	for u in jobd.service jobd-executor.service; do \
		sed 's#/usr/local/bin/jobd#$(PREFIX)/bin/jobd#' deploy/$$u > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u; \
		chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u; \
	done
	install -m 0644 deploy/jobd.example.yaml deploy/jobs.example.yaml deploy/executor.env.example $(DESTDIR)$(PREFIX)/share/doc/jobd/
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0644 completions/jobctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/jobctl
	install -m 0644 completions/jobctl.zsh $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_jobctl
	install -m 0644 completions/jobctl.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/jobctl.fish

clean: ## remove build output and demo state
	rm -rf $(BIN) .demo
