#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""List guest disk images."""

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_disk_info
short_description: List guest disk images with their format, sizes, backing file and users
version_added: 0.1.0
description:
  - Lists the disk images in the storage directories (regular files that are not hidden, not
    recursive) and any images named in O(paths), read with C(qemu-img info).
  - With O(uri), also reports which libvirt domains (running or not) use each image.
  - For a clone made by M(lcfg.xen.xen_disk), reports the template it came from and whether that template
    changed since.
  - Never changes anything; images in use by running guests are read without taking locks.
author:
  - lcfg.xen contributors (!UNKNOWN)
options:
  storage_dirs:
    description:
      - Directories to list. Missing directories are skipped. Set to V([]) to list only O(paths).
    type: list
    elements: path
    default: [/var/lib/libvirt/images, /var/lib/xen/images, /var/lib/lcfg-xen, /guests, /data/guests]
  paths:
    description:
      - Absolute paths of images to report in addition to the directories' contents. A missing one
        is reported with RV(images[].exists=false).
    type: list
    elements: path
    default: []
  uri:
    description:
      - libvirt connection URI. When set, each image's RV(images[].used_by) lists the domains using it.
    type: str
extends_documentation_fragment:
  - lcfg.xen.connection.read_only
  - lcfg.xen.connection.attributes
requirements:
  - qemu-img (Debian qemu-utils) on the managed host
  - libvirt-python and lxml when O(uri) is set
seealso:
  - module: lcfg.xen.xen_disk
"""

EXAMPLES = r"""
- name: Images in the default storage directories, with the domains using them
  lcfg.xen.xen_disk_info:
    uri: qemu:///system
  register: disks

- name: Overlays whose template must never change
  ansible.builtin.debug:
    msg: "{{ disks.images | selectattr('backing_file') | map(attribute='backing_file') | unique }}"

- name: Just two images
  lcfg.xen.xen_disk_info:
    storage_dirs: []
    paths: [/guests/node1.img, /guests/node2.img]
"""

RETURN = r"""
images:
  description: One entry per image, sorted by path.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Image path.
      type: str
      sample: /guests/node1.img
    exists:
      description: Whether the file exists.
      type: bool
      sample: true
    format:
      description:
        - The format the image is read as - recorded by M(lcfg.xen.xen_disk) when it created it, else V(raw).
          Never guessed from the image's contents.
      type: str
      sample: qcow2
    virtual_size:
      description: Virtual size in bytes.
      type: int
      sample: 10737418240
    size:
      description: Virtual size in binary units.
      type: str
      sample: 10 GiB
    actual_size:
      description: Bytes allocated on the host.
      type: int
      sample: 200704
    backing_file:
      description: Absolute path of the backing file, or null.
      type: str
      sample: /guests/base.img
    backing_format:
      description: Format of the backing file, or null.
      type: str
      sample: raw
    origin:
      description:
        - The template and its state recorded by M(lcfg.xen.xen_disk) when it cloned the image (its
          C(trusted.lcfg-xen.origin) attribute), or null for an image that is not a recorded clone.
      type: dict
      sample: {template: /guests/base.img, format: raw, size: 1073741824, mtime_ns: 1796203676063568302,
               sha256_ends: 9f2c0e...}
    template_state:
      description:
        - That template now against the record - V(unchanged), V(changed), V(other), V(missing) - or null
          without a record. See M(lcfg.xen.xen_disk).
      type: str
      sample: unchanged
    used_by:
      description: Names of the libvirt domains whose definition uses the image.
      type: list
      elements: str
      returned: when O(uri) is set
      sample: [node1]
    error:
      description: Why the image could not be read.
      type: str
      returned: when qemu-img could not read the file
"""


from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import AnsibleModule, run_module
from ansible_collections.lcfg.xen.plugins.module_utils.disk.engine import list_images

ARGUMENT_SPEC = {
    "storage_dirs": {"type": "list", "elements": "path", "default": list(DEFAULT_STORAGE_DIRS)},
    "paths": {"type": "list", "elements": "path", "default": []},
    "uri": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    run_module(
        module,
        lambda: {
            "changed": False,
            "images": list_images(params["storage_dirs"], params["paths"], params["uri"]),
        },
    )


if __name__ == "__main__":
    main()
