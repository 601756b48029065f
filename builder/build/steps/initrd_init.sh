#!/bin/busybox sh
# boothkey initrd /init (busybox sh).
#
# Finds the GPT partitions named "root" and "root-verity", maps the root
# through dm-verity with the root hash from the kernel command line (which the
# UKI's signature covers), reads every block once so that a corrupted key is
# refused before anything on it runs, mounts it read-only under an overlay
# whose writable layer is RAM, and hands over to boothkey.init.
#
# On any failure it prints a "BOOTHKEY:" message and stops the machine. It
# never starts a shell and never continues with an unverified root.

export PATH=/bin
/bin/busybox --install -s /bin

WAIT_SECONDS=30
CHECK_NAME=boothkey-check
ROOT_NAME=boothkey-root

say() {
	echo "boothkey-initrd: $*"
}

# Stop for good: show why on every console, then halt. The loop only matters if
# halt itself fails; PID 1 must never return (that would be a kernel panic
# with a less clear message).
stop() {
	for line in "$@" "the machine is stopped and runs nothing from this key; switch it off"; do
		echo "BOOTHKEY: $line"
		# Through the kernel log at level 2 the line reaches every console= (the
		# screen and the serial port), not only /dev/console, even with "quiet".
		[ -c /dev/kmsg ] && echo "<2>BOOTHKEY: $line" >/dev/kmsg 2>/dev/null
	done
	sync
	while :; do
		halt -f
		sleep 3600
	done
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r module; do
	[ -n "$module" ] || continue
	insmod "/lib/modules/boothkey/$module.ko" || say "could not load module $module (continuing)"
done </lib/modules/boothkey/load-order

# Sets ROOTHASH, SALT, DATABLOCKS, FSTYPE and NEXT_INIT from the kernel command
# line $1. The build writes each boothkey.* parameter once, after the recipe's
# words; a repeated one means words were smuggled in, so it stops rather than
# choose one of the values (the booth program refuses such a line too).
read_boothkey_parameters() {
	ROOTHASH=
	SALT=
	DATABLOCKS=
	FSTYPE=
	NEXT_INIT=
	seen=" "
	set -f # the words are data: no file name expansion
	for arg in $1; do
		case "$arg" in
		boothkey.*)
			key=${arg%%=*}
			case "$seen" in
			*" $key "*) stop "the kernel command line sets $key more than once; refusing it" ;;
			esac
			seen="$seen$key "
			;;
		esac
		case "$arg" in
		boothkey.roothash=*) ROOTHASH=${arg#*=} ;;
		boothkey.salt=*) SALT=${arg#*=} ;;
		boothkey.datablocks=*) DATABLOCKS=${arg#*=} ;;
		boothkey.fstype=*) FSTYPE=${arg#*=} ;;
		boothkey.init=*) NEXT_INIT=${arg#*=} ;;
		esac
	done
	set +f
}

read_boothkey_parameters "$(cat /proc/cmdline)"

echo "$ROOTHASH" | grep -qE '^[0-9a-f]{64}$' || stop "boothkey.roothash on the kernel command line is missing or not a sha256 hex digest"
echo "$SALT" | grep -qE '^[0-9a-f]+$' || stop "boothkey.salt on the kernel command line is missing or not hex"
echo "$DATABLOCKS" | grep -qE '^[1-9][0-9]*$' || stop "boothkey.datablocks on the kernel command line is missing or not a number"
case "$FSTYPE" in
squashfs | erofs) ;;
*) stop "boothkey.fstype on the kernel command line must be squashfs or erofs, not '$FSTYPE'" ;;
esac
case "$NEXT_INIT" in
/*) ;;
*) stop "boothkey.init on the kernel command line must be an absolute path, not '$NEXT_INIT'" ;;
esac

# Prints /dev/NAME of every partition whose GPT partition name is $1.
partitions_named() {
	for uevent in /sys/class/block/*/uevent; do
		[ -f "$uevent" ] || continue
		if grep -qx "PARTNAME=$1" "$uevent"; then
			echo "/dev/$(sed -n 's/^DEVNAME=//p' "$uevent")"
		fi
	done
}

say "waiting up to ${WAIT_SECONDS}s for partitions 'root' and 'root-verity'"
tick=0
while :; do
	DATA_DEVS=$(partitions_named root)
	HASH_DEVS=$(partitions_named root-verity)
	[ -n "$DATA_DEVS" ] && [ -n "$HASH_DEVS" ] && break
	if [ "$tick" -ge $((WAIT_SECONDS * 10)) ]; then
		stop "no partitions named 'root' and 'root-verity' appeared within ${WAIT_SECONDS}s" \
			"(found root: '${DATA_DEVS}', root-verity: '${HASH_DEVS}'); is the boothkey USB key plugged in?"
	fi
	tick=$((tick + 1))
	[ $((tick % 50)) -eq 0 ] && say "still waiting for partitions 'root' and 'root-verity' ($((tick / 10))s)"
	usleep 100000
done
# Wait for the block devices to be created as well; devtmpfs does it itself.
for dev in $DATA_DEVS $HASH_DEVS; do
	i=0
	while [ ! -b "$dev" ] && [ "$i" -lt 50 ]; do
		i=$((i + 1))
		usleep 100000
	done
done
[ "$(echo "$DATA_DEVS" | wc -w)" -eq 1 ] && [ "$(echo "$HASH_DEVS" | wc -w)" -eq 1 ] ||
	stop "more than one boothkey key is attached (root: $DATA_DEVS; root-verity: $HASH_DEVS); attach only one"
say "root $DATA_DEVS, hash tree $HASH_DEVS, root hash $ROOTHASH"

# veritysetup wrote a superblock in the hash partition's first block, so the
# hash tree starts at block 1.
SECTORS=$((DATABLOCKS * 8))
TABLE="0 $SECTORS verity 1 $DATA_DEVS $HASH_DEVS 4096 4096 $DATABLOCKS 1 sha256 $ROOTHASH $SALT"
export DM_DISABLE_UDEV=1

# First pass: read the whole root through dm-verity. A mismatch gives an I/O
# error here, so a tampered key is refused before any of its code runs.
dmsetup create "$CHECK_NAME" --readonly --table "$TABLE" ||
	stop "VERITY FAILURE: the kernel refused the dm-verity table for $DATA_DEVS"
say "checking every block of the root file system against the root hash"
if ! dd if="/dev/mapper/$CHECK_NAME" of=/dev/null bs=1048576 2>/dev/null; then
	dmesg | grep -i verity | tail -n 3
	stop "VERITY FAILURE: the root file system on this key does not match the signed root hash" \
		"root hash $ROOTHASH"
fi
dmsetup remove "$CHECK_NAME" || stop "could not release the checked verity device"

# Second mapping, for use: any block that changes later (a key swapped or
# altered while running) panics the kernel instead of returning bad data.
dmsetup create "$ROOT_NAME" --readonly --table "$TABLE 1 panic_on_corruption" ||
	stop "VERITY FAILURE: the kernel refused the dm-verity table for $DATA_DEVS"

mkdir -p /run/lower /run/state /newroot
mount -t "$FSTYPE" -o ro "/dev/mapper/$ROOT_NAME" /run/lower ||
	stop "cannot mount the verified root file system ($FSTYPE)"
# Everything written at run time lives in RAM and is gone at power-off.
mount -t tmpfs -o mode=0755 tmpfs /run/state || stop "cannot create the in-memory state file system"
mkdir -p /run/state/upper /run/state/work
mount -t overlay -o "lowerdir=/run/lower,upperdir=/run/state/upper,workdir=/run/state/work" overlay /newroot ||
	stop "cannot mount the overlay root"
[ -x "/newroot$NEXT_INIT" ] || [ -L "/newroot$NEXT_INIT" ] ||
	stop "the verified root file system has no executable $NEXT_INIT (boothkey.init)"

for fs in dev proc sys; do
	mkdir -p "/newroot/$fs"
	mount --move "/$fs" "/newroot/$fs" || stop "cannot move /$fs into the new root"
done
say "verified root mounted; starting $NEXT_INIT"
exec switch_root /newroot "$NEXT_INIT"
stop "could not start $NEXT_INIT"
