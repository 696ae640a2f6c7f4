# arborfs: top-level entry points. `make run` and `make test` are the two
# commands the README gives; both install what they need first.

CARGO ?= cargo
OUT ?= tests/out
IMAGE ?= $(OUT)/arborfs.img
# `make run IMAGE=...` mounts that image; by default run-demo.sh makes one.
IMAGE_RUN = $(if $(filter command line,$(origin IMAGE)),$(IMAGE),)
ARBORFS := target/release/arborfs

KDIR ?= $(shell tests/kernel/build.sh | tail -n1)
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=1 RUSTC=/usr/bin/rustc

.PHONY: all deps kernel-deps tools kernel module test check clippy nostd unit man man-check ffi-check fuzz-images qemu-test qemu-test-kasan xfstests xfstests-ci run demo bench bench-kernel install clean

all: tools

deps:
	@tests/deps.sh

tools: deps
	$(CARGO) build --release -p arborfs-tools

# Everything a kernel build and the QEMU tests need (apt packages, bindgen).
kernel-deps:
	@tests/kernel/install-deps.sh

# The Rust-enabled test kernel, cached outside the tree (see tests/kernel/build.sh).
kernel: kernel-deps
	tests/kernel/build.sh

# arborfs.ko against KDIR (default: the test kernel; set KDIR for your own).
# (KDIR expands only here: building the test kernel first if it is missing.)
module: kernel-deps
	$(KMAKE) modules

# The test command of the README and of CI.
test: deps check unit fuzz-images qemu-test xfstests-ci

check: nostd clippy man-check ffi-check

# The C prototypes of the Rust entry points, and the Rust declarations of
# the C services, must agree (nothing else checks it).
ffi-check:
	python3 tests/check-ffi.py

# The engine must build with no std and no alloc crate, as in the kernel.
nostd:
	$(CARGO) check -p arborfs-engine --no-default-features

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check
	@# The module's own Rust files are in no cargo package.
	rustfmt --edition 2021 --config-path rustfmt.toml --check fs/arborfs_main.rs fs/kernel/*.rs

unit:
	$(CARGO) test --workspace

# The man pages in Documentation/man/ are generated from the command-line
# definitions (arborfs man DIR; arborfs.5 is written by hand): they must
# match what the tool generates now. `make man` regenerates them.
man: tools
	$(ARBORFS) man Documentation/man

man-check: tools
	@rm -rf $(OUT)/man && mkdir -p $(OUT)/man
	$(ARBORFS) man $(OUT)/man
	@for f in $(OUT)/man/*; do \
		cmp -s "$$f" "Documentation/man/$${f##*/}" || { \
			echo "man-check: Documentation/man/$${f##*/} is out of date: run make man"; exit 1; }; \
	done

# The image fuzzer (tests/imagefuzz) against the tool built with overflow
# checks (profile fuzz): a seeded run of MINUTES (default 2) in `make test`;
# `make fuzz-images MINUTES=60 SEED=N` for a long one. Failing cases are kept
# in $(OUT)/imagefuzz/failures.
MINUTES ?= 2
SEED ?= 1
fuzz-images: deps
	$(CARGO) build --profile fuzz -p arborfs-tools -p arborfs-imagefuzz
	target/fuzz/arborfs-imagefuzz --arborfs target/fuzz/arborfs --seed $(SEED) \
		--seconds $$(( $(MINUTES) * 60 )) --work $(OUT)/imagefuzz --keep $(OUT)/imagefuzz/failures

# The main job: boot the test kernel with an arborfs image mounted at /mnt and
# give a shell. `make run CMD='ls -l /mnt'` runs one command; IMAGE=path
# mounts an existing image.
run: tools kernel module
	IMAGE=$(IMAGE_RUN) CMD="$(CMD)" tests/qemu/run-demo.sh

# The kernel module suite in QEMU (tests/qemu/run-tests.sh).
qemu-test: tools kernel module
	$(CARGO) build --release -p arborfs-engine --example crashed_image
	$(CARGO) build --release -p arborfs-imagefuzz
	tests/qemu/run-tests.sh
	tests/qemu/crash/run.sh

# The same suite on a KASAN kernel (its own cache dir; about 16 minutes to
# build the first time, so not part of `make test`).
qemu-test-kasan: tools kernel-deps
	$(CARGO) build --release -p arborfs-engine --example crashed_image
	$(CARGO) build --release -p arborfs-imagefuzz
	@rm -rf $(OUT)/kasan && mkdir -p $(OUT)/kasan
	tar -c --exclude=target --exclude="*.o" --exclude=".*.cmd" Kbuild fs | tar -x -C $(OUT)/kasan
	$(MAKE) -C $$(ARBORFS_KASAN=1 tests/kernel/build.sh | tail -n1) M=$(CURDIR)/$(OUT)/kasan \
		LLVM=1 RUSTC=/usr/bin/rustc modules
	export KO=$(CURDIR)/$(OUT)/kasan/arborfs.ko \
		KERNEL=$$(ARBORFS_KASAN=1 tests/kernel/build.sh | tail -n1)/arch/x86/boot/bzImage && \
		FUZZ_IMAGES=300 tests/qemu/run-tests.sh && tests/qemu/crash/run.sh

# fstests in QEMU (tests/xfstests/run.sh): XFSTESTS=DIR_OR_TARBALL is an
# fstests checkout or tarball; TESTS='generic/001 generic/013', GROUP=quick
# or LIST=FILE picks tests, SECTION= a section of xfstests-config/local.config
# (default arborfs; ext4 is the reference), TIMEOUT= seconds a test may go
# without progress. Results in tests/out/xfstests/.
XFSTESTS ?=
TESTS ?=
GROUP ?=
LIST ?=
SECTION ?= arborfs
TIMEOUT ?= 900
xfstests: tools kernel module
	XFSTESTS="$(XFSTESTS)" tests/xfstests/run.sh --section $(SECTION) --timeout $(TIMEOUT) \
		$(if $(TESTS),--tests "$(TESTS)") $(if $(GROUP),--group "$(GROUP)") $(if $(LIST),--list "$(LIST)")

# The fstests subset CI runs (xfstests-config/ci.list), when XFSTESTS is set.
xfstests-ci: tools kernel module
	@if [ -z "$(XFSTESTS)" ]; then \
		echo "xfstests-ci: skipped: set XFSTESTS to an fstests checkout or tarball (.ci/run does)"; \
	else \
		XFSTESTS="$(XFSTESTS)" tests/xfstests/run.sh --section arborfs --timeout 600 \
			--list xfstests-config/ci.list --all-pass; \
	fi

# Userspace only: make an image from a sample tree, check it, show it, copy it out.
demo: tools
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

# arborfs against ext4, xfs and btrfs in QEMU (own kernel with btrfs, cached
# in ~/.cache/arborfs-bench; about 20 minutes to build once). Not in `make test`.
bench-kernel: tools
	tests/bench/kernel-bench.sh

PREFIX ?= /usr/local
install: tools
	install -D -m 755 $(ARBORFS) $(DESTDIR)$(PREFIX)/sbin/arborfs
	ln -sf arborfs $(DESTDIR)$(PREFIX)/sbin/mkfs.arborfs
	ln -sf arborfs $(DESTDIR)$(PREFIX)/sbin/fsck.arborfs
	install -d $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 644 Documentation/man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 Documentation/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(ARBORFS) completions bash >$(DESTDIR)$(PREFIX)/share/bash-completion/completions/arborfs
	$(ARBORFS) completions zsh >$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_arborfs
	$(ARBORFS) completions fish >$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/arborfs.fish

clean:
	$(CARGO) clean
	rm -rf $(OUT)
	rm -f arborfs.ko *.o fs/*.o fs/.*.cmd fs/glue/*.o fs/glue/.*.cmd .*.cmd *.mod *.mod.c modules.order Module.symvers
