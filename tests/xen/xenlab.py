"""Constants shared by the Xen lab tests (kept out of conftest.py, which is not importable
by name when pytest runs several test directories)."""

URI = "xen:///system"
# Built into the dom0 image by tests/xen/lab/build.sh: dom0's kernel and a busybox initramfs.
GUEST_KERNEL = "/var/lib/lcfg-xen-lab/guest-vmlinuz"
GUEST_RAMDISK = "/var/lib/lcfg-xen-lab/guest-initrd.gz"
# Outside the storage directories: the play allows the guests to boot from there.
GUEST_BOOT_ACCESS = {"allowed_boot_paths": ["/var/lib/lcfg-xen-lab"]}
# rodata=off: no boot-time W+X page table walk (minutes under TCG).
GUEST_CMDLINE = "console=hvc0 rodata=off mitigations=off"
