# arborfs: top-level entry points. `make run` and `make test` are the two
# commands the README gives; both install what they need first.

CARGO ?= cargo
OUT ?= tests/out
IMAGE ?= $(OUT)/arborfs.img
ARBORFS := target/release/arborfs

.PHONY: all deps tools test check clippy nostd unit run demo bench fuzz-build install clean

all: tools

deps:
	@tests/deps.sh

tools: deps
	$(CARGO) build --release -p arborfs-tools

# The test command of the README and of CI.
test: deps check unit

check: nostd clippy

# The engine must build with no std and no alloc crate, as in the kernel.
nostd:
	$(CARGO) check -p arborfs-engine --no-default-features

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

# The main job: format an image from a sample tree, check it, show it, copy it out.
run demo: tools
	@mkdir -p $(OUT)
	tests/sample/make-sample.sh $(OUT)/sample
	$(ARBORFS) format --force --fs-size 256M --label demo --compression zstd --source $(OUT)/sample $(IMAGE)
	$(ARBORFS) show-super $(IMAGE)
	$(ARBORFS) fsck -n -v $(IMAGE)
	rm -rf $(OUT)/restored
	$(ARBORFS) restore $(IMAGE) $(OUT)/restored
	diff -r $(OUT)/sample $(OUT)/restored && echo "make run: restored tree matches the source"

# Benchmarks print numbers; they are not part of `make test`.
bench: deps
	$(CARGO) run --release -p arborfs-engine --example bench -- $(OUT)/bench.img

install: tools
	install -D -m 755 $(ARBORFS) $(DESTDIR)/usr/local/sbin/arborfs
	ln -sf arborfs $(DESTDIR)/usr/local/sbin/mkfs.arborfs
	ln -sf arborfs $(DESTDIR)/usr/local/sbin/fsck.arborfs

clean:
	$(CARGO) clean
	rm -rf $(OUT)
