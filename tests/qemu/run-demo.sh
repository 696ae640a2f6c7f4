#!/usr/bin/env bash
# run-demo.sh: `make run`. Boots the test kernel with an arborfs image mounted
# at /mnt and gives a shell (or runs CMD and exits with its status).
# Env: IMAGE (default: a fresh image of the sample tree), CMD, KO, KERNEL, ARBORFS.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$HERE/env.sh"
if [[ -z ${IMAGE:-} ]]; then
	IMAGE=$ROOT/tests/out/run.img
	"$ROOT/tests/sample/make-sample.sh" "$ROOT/tests/out/sample"
	"$ARBORFS" format -q --force --fs-size 256M --label demo --compression zstd \
		--source "$ROOT/tests/out/sample" "$IMAGE"
	echo "run-demo: $IMAGE holds tests/out/sample; mounting it at /mnt in the guest" >&2
fi
mount_cmd="mount -t arborfs /dev/vda /mnt && cd /mnt"
# The image is mounted read-write: unmount it cleanly when the command or shell ends.
umount_cmd='rc=$?; cd / && umount /mnt; exit $rc'
if [[ -n ${CMD:-} ]]; then
	exec "$HERE/run-guest.sh" --kernel "$KERNEL" --disk "$IMAGE" --module "$KO" --quiet \
		-- "$mount_cmd && { $CMD; }; $umount_cmd"
fi
exec "$HERE/run-guest.sh" --interactive --timeout 0 --kernel "$KERNEL" --disk "$IMAGE" --module "$KO" \
	-- "$mount_cmd && echo 'arborfs is mounted at /mnt; exit the shell to stop the guest' && bash -i; $umount_cmd"
