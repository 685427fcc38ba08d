#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Create, clone or remove a guest disk image."""

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_disk
short_description: Create or clone a guest disk image, and write LCFG client settings into it
version_added: 0.1.0
description:
  - Creates a disk image of a given size (raw and sparse, or qcow2), or clones one from a
    template image, either as a full copy that keeps the template's sparseness or as a qcow2
    overlay backed by the template.
  - For LCFG-managed guests (O(profile_url) and O(partition) set), writes the guest's LCFG client
    settings (its profile URL and host name) into the filesystem on that partition of the new
    clone, using libguestfs. The guest filesystem is never mounted in the host kernel.
  - B(Safety.) An existing image is never overwritten. When it already matches the request the
    module reports no change; when it differs (format, backing file, smaller size) the module fails
    and names the parameter to change. It grows an image only with O(grow=true) and never shrinks one.
    A template is only ever read.
  - B(Templates are checked, clones verified.) Before cloning, the template is read as its declared or
    recorded format and checked (C(qemu-img check) for qcow2; readable, whole sectors for raw; with
    injection, the template's partition table must hold O(partition)); a problem fails the task naming
    the template, with nothing created. The finished clone is checked again before it takes its name.
    An existing image that fails C(qemu-img check) fails the task, naming O(state=absent) as the fix.
  - B(Origin.) A clone records its template and the template's state (path, format, size, mtime_ns,
    SHA-256 of the first and last MiB) in the C(trusted.lcfg-xen.origin) extended attribute; later runs
    report a template that changed or broke since (RV(template_changed), RV(template_state), a warning).
  - A new image is prepared under a temporary name in the same directory
    (C(.<name>.lcfg-xen-partial)), where it is created or copied, grown and given its LCFG settings;
    only then is it linked to its final name. An interrupted run therefore never leaves a half-written image under
    the final name; the next run removes the partial file and starts again.
  - Without O(uri) the module uses C(qemu-img). With O(uri) it uses libvirt's storage API (a C(dir)
    storage pool for the image's directory, defined and started when missing) and finishes the image
    (injection, rename) on the managed host, which must hold the storage directory.
  - O(state=absent) deletes the image. That is the explicit request to delete; nothing else ever does.
author:
  - lcfg.xen contributors (!UNKNOWN)
options:
  path:
    description:
      - Absolute path of the image. It must lie inside one of O(storage_dirs), as written and with every
        symbolic link resolved; the image itself may not be a symbolic link.
      - Missing directories on the way are created (V(0700) root, or V(0710) root:O(storage_group));
        check mode reports them. An existing directory's owner and mode are never changed.
      - In the inventory's vocabulary this is the C(path) of a C(disks) entry of C(xen_domain).
    type: path
    required: true
  state:
    description:
      - V(present) creates or clones the image when it is missing and checks it when it exists.
      - V(absent) deletes the image (and a partial file left by an interrupted run). An image that is
        the backing file of another image in O(storage_dirs) is not deleted; with O(uri), neither is
        an image that a defined domain uses.
      - V(template) builds an empty LCFG template image at O(path) when nothing is there - raw and sparse,
        an msdos partition table, partition 1 a 100 MiB placeholder, and an ext4 filesystem labelled
        C(lcfgroot) with C(/etc/hostname) and C(/etc/lcfg/) on O(partition) (default V(5), a logical
        partition in an extended partition 2), O(size_gb) or O(size) large (default 1 GiB). It uses
        libguestfs on the managed host, without O(uri). An existing file at O(path) is never changed,
        whatever it holds (no change is reported). O(template) and O(profile_url) do not apply.
    type: str
    choices: [present, absent, template]
    default: present
  size_gb:
    description:
      - Virtual size in GiB (1 GiB = 1024 MiB), as the inventory's C(size_gb). Fractions are allowed.
      - Required to create an image without O(template). For a clone it defaults to the template's
        size and may not be smaller.
      - Mutually exclusive with O(size).
    type: float
  size:
    description:
      - Virtual size with a unit, for example V(10G), V(512M), V(20GiB) (binary) or V(20GB) (decimal).
        A bare number is bytes.
      - Mutually exclusive with O(size_gb).
    type: str
  format:
    description:
      - Image format. Defaults to V(raw) for a new image, to the template's format for a copy, and is
        always V(qcow2) for an overlay.
      - The format of a new image is recorded in its C(trusted.lcfg-xen.format) extended attribute
        (root only). An existing image is read as the declared format, else the recorded one, else
        V(raw); it is never guessed from the image's contents, which the guest controls.
    type: str
    choices: [raw, qcow2]
  template_format:
    description:
      - Format of O(template). Default - the format recorded when xen_disk made it, else V(raw).
    type: str
    choices: [raw, qcow2]
  template:
    description:
      - Absolute path of the template image to clone, inside one of O(storage_dirs). It is only read.
      - The inventory's C(template) of the guest.
    type: path
  clone:
    description:
      - How to clone O(template). V(copy) makes a full, independent copy (sparse where the template is
        sparse). V(overlay) makes a qcow2 image backed by the template, which then must never change.
    type: str
    choices: [copy, overlay]
    default: copy
  profile_url:
    description:
      - LCFG profile URL of the guest (the inventory's C(profile_url)), written into the new clone's
        file named by O(lcfg_files.profile_url). Needs O(template) and O(partition).
    type: str
  partition:
    description:
      - Number of the partition of the template whose filesystem receives the LCFG settings
        (the inventory's C(partition)); V(5) is the first logical partition of an msdos table.
      - With O(state=template), the partition that receives the filesystem of the built template (2 to 60).
    type: int
  hostname:
    description:
      - Host name written into O(lcfg_files.hostname). Defaults to the image's file name without its
        extension (V(/guests/profiledev.img) gives V(profiledev)).
    type: str
  lcfg_files:
    description:
      - Paths inside the guest filesystem of the files that receive the LCFG settings. Each file holds
        the value and a newline; parent directories are created. An empty value skips that file.
    type: dict
    suboptions:
      profile_url:
        description: File holding the profile URL.
        type: str
        default: /etc/lcfg/profile_url
      hostname:
        description: File holding the host name.
        type: str
        default: /etc/hostname
  storage_dirs:
    description:
      - The directories images, templates and backing files may live in (the play's list, authoritative).
        O(path) and O(template) must be inside one, checked on resolved paths.
      - The default is the collection's one shared list, also the default of M(lcfg.xen.xen_domain),
        M(lcfg.xen.xen_guests) and the guest role.
    type: list
    elements: path
    default: [/var/lib/libvirt/images, /var/lib/xen/images, /var/lib/lcfg-xen, /guests, /data/guests]
  profile_storage_dirs:
    description:
      - The hypervisor profile's storage directories (its C(xen.storagedirs), C(xen_host.storage_dirs)).
        When given, only these are used, and each must lie inside O(storage_dirs); one outside fails.
        A profile can narrow the play's list, never widen it.
    type: list
    elements: path
  storage_group:
    description:
      - Group of the directories the module creates, which are then V(0710) instead of V(0700), so the
        hypervisor's unprivileged user (Debian's C(libvirt-qemu) for QEMU/KVM) can reach the images
        inside without listing them. Images are always V(0600).
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another run working on the same image (its lock in C(/run/lcfg-xen))
        before failing; the same bound covers the wait for another run's changing call on the same
        hypervisor (every changing call of the collection takes that lock, see
        M(lcfg.xen.xen_guests)). Check mode takes no lock.
    type: float
    default: 600
  grow:
    description:
      - Grow an existing image that is smaller than the requested size. The partitions and filesystems
        inside are not resized. Images are never shrunk.
    type: bool
    default: false
  uri:
    description:
      - libvirt connection URI. When set, images are created through libvirt's storage API and, for
        O(state=absent), an image used by a domain is not deleted. When unset, C(qemu-img) is used.
    type: str
  pool:
    description:
      - Name for a storage pool the module defines for the image's directory when O(uri) is set and no
        C(dir) pool covers it. Defaults to C(lcfg-xen) followed by the directory with C(/) as C(-).
    type: str
  os:
    description:
      - With O(state=template), build a bootable template instead of an empty one. V(debian) runs
        C(debootstrap) (minbase, a kernel C(linux-image-amd64), C(openssh-server),
        C(qemu-guest-agent), C(python3), C(systemd-networkd) with DHCP on every NIC) and installs the
        result into the image. Partition 1 (ext2) holds C(/boot) and C(extlinux) with syslinux's MBR,
        which SeaBIOS boots under QEMU/KVM; the filesystem on O(partition) is the guest's root, so
        the LCFG settings and O(authorized_keys) of its clones land in the guest's own C(/etc) and
        C(/root). Root's password is locked; each clone makes its own SSH host key (ed25519) at first boot.
      - The root filesystem is cached as a tar file in O(cache_dir), named by a hash of the suite,
        mirror, package list and builder version, so later templates skip C(debootstrap).
      - A play setting; a profile only names the template's path.
    type: str
    choices: [debian]
    version_added: 0.2.0
  suite:
    description:
      - Debian suite of O(os=debian). Defaults to the managed host's own (C(VERSION_CODENAME)).
    type: str
    version_added: 0.2.0
  mirror:
    description:
      - Debian mirror URL of O(os=debian). Defaults to the first apt source of the managed host that
        carries O(suite) itself (C(/etc/apt/sources.list.d/*.sources), then one-line lists).
    type: str
    version_added: 0.2.0
  cache_dir:
    description:
      - Directory of the cached root filesystems (and debootstrap's downloaded packages) of O(os=debian).
    type: path
    default: /var/cache/lcfg-xen
    version_added: 0.2.0
  authorized_keys:
    description:
      - SSH public keys (one line each) written into a new LCFG-managed clone with its LCFG settings,
        as C(/root/.ssh/authorized_keys) (directory V(0700), file V(0600)) on O(partition).
        The play's keys (the guest role's C(guest_ssh_authorized_keys)), never a profile's.
      - Like the LCFG settings, written only when the clone is made; an existing image is not changed.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
extends_documentation_fragment:
  - lcfg.xen.connection.attributes
attributes:
  idempotent:
    details: A second run finds the image it made and reports no change; it never re-clones or re-injects.
notes:
  - Reading and writing guest filesystems needs libguestfs (Debian C(python3-guestfs) and
    C(libguestfs-tools)). The module sets C(LIBGUESTFS_BACKEND=direct) when it is unset. If the
    libguestfs appliance cannot start with KVM it is retried once with software emulation, which
    is slower, and a warning says so.
  - LCFG settings are written only into a new clone. An existing image is never opened for writing,
    so its files are not compared; the diff reports them as C(null).
  - New images are V(0600), new directories V(0700) (or V(0710) with O(storage_group)); existing
    files and directories keep their owner and mode.
  - Check mode checks the template and reads its partition table, but does not open it
    with libguestfs, so a partition without a usable filesystem is found only by the real run; that run
    then fails before anything appears under O(path).
requirements:
  - qemu-img (Debian qemu-utils) on the managed host
  - libguestfs Python binding (Debian python3-guestfs) for LCFG injection
  - libvirt-python and lxml when O(uri) is set
seealso:
  - module: lcfg.xen.xen_disk_info
"""

EXAMPLES = r"""
- name: Build the guest's LCFG template image when it is missing (never replaced once there)
  lcfg.xen.xen_disk:
    path: /var/lib/lcfg-xen/templates/lcfg_template.img
    state: template
    partition: 5
    size_gb: 1

- name: A bootable Debian template (debootstrap from the host's own apt mirror, cached), root on partition 5
  lcfg.xen.xen_disk:
    path: /var/lib/lcfg-xen/templates/debian.img
    state: template
    os: debian
    partition: 5
    size_gb: 2

- name: A clone that root can log in to with the play's key
  lcfg.xen.xen_disk:
    path: /var/lib/lcfg-xen/guests/login1.img
    template: /var/lib/lcfg-xen/templates/debian.img
    profile_url: http://lcfg.example.org/profiles/example.org/
    partition: 5
    hostname: login1
    authorized_keys:
      - "{{ lookup('ansible.builtin.file', playbook_dir ~ '/id_ed25519.pub') }}"

- name: Blank 20 GiB sparse raw image
  lcfg.xen.xen_disk:
    path: /guests/scratch.img
    size_gb: 20

- name: LCFG guest cloned from a template, with its profile URL written into partition 5
  lcfg.xen.xen_disk:
    path: /guests/profiledev.img
    template: /guests/lcfg_temp.img
    size_gb: 12
    profile_url: http://lcfg.example.org/profiles/example.org/
    partition: 5

- name: The first disk of an inventory guest, on its hypervisor (play over the xen_guests group)
  lcfg.xen.xen_disk:
    path: "{{ xen_domain.disks[0].path }}"
    size_gb: "{{ xen_domain.disks[0].size_gb | default(omit, true) }}"
    template: "{{ xen_domain.template | default(omit, true) }}"
    profile_url: "{{ xen_domain.profile_url | default(omit, true) }}"
    partition: "{{ xen_domain.partition | default(omit, true) }}"
    hostname: "{{ xen_domain.name }}"
  delegate_to: "{{ xen_hypervisor }}"

- name: qcow2 overlay backed by a read-only template, through libvirt's storage API
  lcfg.xen.xen_disk:
    path: /var/lib/libvirt/images/node1.qcow2
    template: /var/lib/libvirt/images/base.img
    clone: overlay
    uri: qemu:///system

- name: Grow an image (the guest must enlarge its partitions itself)
  lcfg.xen.xen_disk:
    path: /guests/scratch.img
    size_gb: 40
    grow: true

- name: Delete an image
  lcfg.xen.xen_disk:
    path: /guests/scratch.img
    state: absent
"""

RETURN = r"""
built:
  description: With O(state=template), whether the template image was built by this run (would be, in check mode).
  returned: when O(state=template)
  type: bool
  sample: true
bootable:
  description:
    - With O(state=template) and O(os), what the bootable template was (would be) built from; C(rootfs_cached)
      says whether the cached root filesystem was reused (set only when the image was built).
  returned: when O(os) is set and the template was (would be) built
  type: dict
  version_added: 0.2.0
  sample:
    os: debian
    suite: bookworm
    mirror: http://mirror.example.org/debian
    cache_key: 3f2a9c0d1e4b5a67
    rootfs_cached: false
changed:
  description: Whether the run changed the image or its directories (in check mode, whether it would).
  returned: always
  type: bool
  sample: true
name:
  description: The image this run is about (O(path), normalised).
  returned: always
  type: str
  sample: /guests/profiledev.img
actions:
  description: What the run did (or, in check mode, would do), in order; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample:
    - copy template /guests/lcfg_temp.img (raw) to raw image /guests/.profiledev.img.lcfg-xen-partial
    - grow /guests/.profiledev.img.lcfg-xen-partial to 12 GiB
    - write LCFG settings (/etc/hostname, /etc/lcfg/profile_url) into partition 5 of
      /guests/.profiledev.img.lcfg-xen-partial
    - move the finished image /guests/.profiledev.img.lcfg-xen-partial to /guests/profiledev.img
      (mode 0600, format raw recorded)
pending_restart:
  description:
    - The names of the objects whose change takes effect only at their next restart, as in every changing
      module of the collection. Always C([]) for a disk image, which has nothing to restart.
  returned: always
  type: list
  elements: str
  sample: []
image:
  description: The image after the run (in check mode, as the run would leave it).
  returned: always
  type: dict
  contains:
    path:
      description: Image path.
      type: str
      sample: /guests/profiledev.img
    exists:
      description: Whether the image exists.
      type: bool
      sample: true
    format:
      description: Image format.
      type: str
      sample: raw
    virtual_size:
      description: Virtual size in bytes.
      type: int
      sample: 12884901888
    size:
      description: Virtual size in binary units.
      type: str
      sample: 12 GiB
    backing_file:
      description: Backing file of an overlay, or null.
      type: str
      sample: null
    backing_format:
      description: Format of the backing file, or null.
      type: str
      sample: null
    lcfg_files:
      description: Files written into the guest filesystem by this run, with their contents; null otherwise.
      type: dict
      sample: {/etc/hostname: "profiledev\n", /etc/lcfg/profile_url: "http://lcfg.example.org/profiles/\n"}
    actual_size:
      description: Bytes allocated on the host (not in check mode).
      type: int
      returned: when a change was applied
      sample: 1638400
injection:
  description: Time spent writing the LCFG settings, and in starting the libguestfs appliance, in seconds.
  returned: when LCFG settings were written
  type: dict
  sample: {seconds: 4.2, launch_seconds: 3.1}
diff:
  description: The image before and after, in the vocabulary of RV(image) (without RV(image.actual_size)).
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The image before the run.
      type: dict
      sample: {path: /guests/profiledev.img, exists: false, format: null, virtual_size: null, size: null,
               backing_file: null, backing_format: null, lcfg_files: null}
    after:
      description: The image after the run (in check mode, as the run would leave it).
      type: dict
      sample: {path: /guests/profiledev.img, exists: true, format: raw, virtual_size: 12884901888, size: 12 GiB,
               backing_file: null, backing_format: null, lcfg_files: null}
origin:
  description:
    - The template state recorded with the image when M(lcfg.xen.xen_disk) cloned it (for a new clone,
      the state recorded now), or null when there is none (not a clone, made before the record existed
      or by another tool).
  returned: when O(template) is set and O(state=present)
  type: dict
  sample: {template: /guests/lcfg_temp.img, format: raw, size: 1073741824, mtime_ns: 1796203676063568302,
           sha256_ends: 9f2c0e...}
template_state:
  description:
    - The template now against the recorded origin. V(unchanged); V(changed) (size, modification time or
      the SHA-256 of its first and last MiB differ); V(other) (cloned from another template); V(broken)
      (the template now fails its check); V(missing) (the template is gone); V(unrecorded) (no origin
      recorded).
  returned: when O(template) is set and O(state=present)
  type: str
  sample: unchanged
template_changed:
  description: True when RV(template_state) is V(changed), V(other) or V(broken); a warning then says what it means.
  returned: when O(template) is set and O(state=present)
  type: bool
  sample: false
lock_waited:
  description: Seconds this call waited for another run's lock on the hypervisor (see O(lock_timeout)).
  returned: when not in check mode
  type: float
  sample: 0.0
"""


from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import AnsibleModule, run_module
from ansible_collections.lcfg.xen.plugins.module_utils.disk.debian import DEFAULT_CACHE_DIR
from ansible_collections.lcfg.xen.plugins.module_utils.disk.engine import run_disk
from ansible_collections.lcfg.xen.plugins.module_utils.disk.request import (
    CLONE_MODES,
    DEFAULT_LCFG_FILES,
    FORMATS,
    LOCK_TIMEOUT,
)

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "choices": ["present", "absent", "template"], "default": "present"},
    "size_gb": {"type": "float"},
    "size": {"type": "str"},
    "format": {"type": "str", "choices": list(FORMATS)},
    "template": {"type": "path"},
    "clone": {"type": "str", "choices": list(CLONE_MODES), "default": "copy"},
    "profile_url": {"type": "str"},
    "partition": {"type": "int"},
    "hostname": {"type": "str"},
    "lcfg_files": {
        "type": "dict",
        "options": {key: {"type": "str", "default": value} for key, value in DEFAULT_LCFG_FILES.items()},
    },
    "storage_dirs": {"type": "list", "elements": "path", "default": list(DEFAULT_STORAGE_DIRS)},
    "profile_storage_dirs": {"type": "list", "elements": "path"},
    "storage_group": {"type": "str"},
    "template_format": {"type": "str", "choices": list(FORMATS)},
    "lock_timeout": {"type": "float", "default": LOCK_TIMEOUT},
    "grow": {"type": "bool", "default": False},
    "uri": {"type": "str"},
    "pool": {"type": "str"},
    "os": {"type": "str", "choices": ["debian"]},
    "suite": {"type": "str"},
    "mirror": {"type": "str"},
    "cache_dir": {"type": "path", "default": DEFAULT_CACHE_DIR},
    "authorized_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
}


MUTUALLY_EXCLUSIVE = [("size_gb", "size")]


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    run_module(module, lambda: run_disk(dict(module.params), module.check_mode), lock=True)


if __name__ == "__main__":
    main()
