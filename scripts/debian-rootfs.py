# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the cached Debian root filesystem of xen_disk os=debian (this host's suite and apt
mirror, the default cache) ahead of the tests that need it: make test runs this in the
background while its first stages run. The module waits on the same lock and reuses it."""

from __future__ import annotations

import sys
import time

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.disk import debian


def main() -> int:
    started = time.monotonic()
    try:
        suite = debian.host_suite()
        built = debian.rootfs_tarball(suite, debian.apt_mirror(suite))
    except XenError as exc:
        print(f"debian-rootfs: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # not root, or no room in the cache directory
        print(f"debian-rootfs: {exc}", file=sys.stderr)
        return 1
    verb = "built" if built["built"] else "already cached"
    print(f"debian-rootfs: {built['path']} {verb} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
