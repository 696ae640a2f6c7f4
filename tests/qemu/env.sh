# env.sh: sourced by the QEMU scripts; the builds they use, overridable from
# the environment: ARBORFS (tool), KO (module), KERNEL (bzImage).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ARBORFS=${ARBORFS:-$ROOT/target/release/arborfs}
KO=${KO:-$ROOT/arborfs.ko}
KERNEL=${KERNEL:-$("$ROOT/tests/kernel/build.sh" | tail -n1)/arch/x86/boot/bzImage}
