# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Is an image fit to clone, and is a clone still what it was cloned from?

* ``image_problems``: what is wrong with an image read as its (declared or recorded)
  format -- ``qemu-img check`` for qcow2, size and readability for raw;
* ``partition_table``: the partitions of an image, read from its msdos (MBR and the
  EBR chain of logical partitions) or GPT table in Python, without libguestfs (no
  appliance launch): a raw image's bytes directly, a qcow2 image's through ``qemu-io -r``;
* ``template_state`` / ``compare_origin``: the state of a template a clone was made
  from (real path, format, size, mtime_ns and a SHA-256 of its first and last MiB),
  recorded with the clone in the ``trusted.lcfg-xen.origin`` extended attribute, and
  compared with the template as it is now.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
from collections.abc import Callable
from typing import Any

__all__ = [
    "ORIGIN_XATTR",
    "FINGERPRINT_BYTES",
    "qemu_img_check",
    "image_problems",
    "partition_table",
    "partition_problem",
    "template_state",
    "record_origin",
    "recorded_origin",
    "compare_origin",
]

# Root-only like the format record: neither the guest nor its QEMU process can forge it.
ORIGIN_XATTR = "trusted.lcfg-xen.origin"
# The fingerprint hashes this much at each end of the file: cheap on a 100 GiB template, and
# it covers a qcow2 header and L1 table and the tail a truncation or an append changes.
FINGERPRINT_BYTES = 1024 * 1024
SECTOR = 512
_EXTENDED_TYPES = (0x05, 0x0F, 0x85)
_MAX_LOGICAL = 128
_MAX_GPT_ENTRIES = 256


def qemu_img_check(path: str, fmt: str) -> str | None:
    """``qemu-img check`` of a qcow2 image: None when sound (leaked clusters are harmless
    and ignored), else what it found. Raw images have no metadata to check: None."""
    if fmt != "qcow2":
        return None
    try:
        proc = subprocess.run(  # pylint: disable=ansible-bad-function  # an engine: no AnsibleModule here
            ["qemu-img", "check", "-U", "-f", fmt, "--output=json", path], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        return f"qemu-img cannot run ({exc}): install qemu-utils"
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    if proc.returncode in (0, 3):  # 3: leaked clusters only
        return None
    corruptions = report.get("corruptions", 0)
    errors = report.get("check-errors", 0)
    if corruptions or errors:
        text = f"qemu-img check found {corruptions} corruption(s) and {errors} check error(s)"
        if "exceeding the end of the file" in proc.stderr:
            text += " (its metadata points past the end of the file: truncated?)"
        return text
    first = (proc.stderr.strip().splitlines() or ["no output"])[0]
    return f"qemu-img check cannot read it as {fmt}: {first}"


def image_problems(path: str, fmt: str, virtual_size: int | None = None, whole_sectors: bool = True) -> list[str]:
    """What is wrong with ``path`` read as ``fmt`` (empty when nothing): unreadable, empty,
    not whole sectors (raw, when ``whole_sectors``), shorter than ``virtual_size`` (raw), or
    ``qemu-img check`` errors."""
    problems = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        return [f"cannot be opened ({exc.strerror})"]
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return ["is empty"]
        os.pread(fd, SECTOR, 0)
        os.pread(fd, SECTOR, max(0, size - SECTOR))
    except OSError as exc:
        return [f"cannot be read ({exc.strerror})"]
    finally:
        os.close(fd)
    if fmt == "raw":
        if whole_sectors and size % SECTOR:
            problems.append(f"its size {size} bytes is not a whole number of 512-byte sectors (truncated?)")
        if virtual_size is not None and size < virtual_size:
            problems.append(f"it holds {size} bytes, less than its size {virtual_size}")
    checked = qemu_img_check(path, fmt)
    if checked:
        problems.append(checked)
    return problems


def partition_table(read: Callable[[int, int], bytes]) -> dict[int, tuple[int, int]] | None:
    """{partition number: (first byte, end byte)} of an image, from ``read(offset, length)``;
    None when the image has no msdos or GPT table. Numbers follow Linux: 1-4 primary,
    5 on for the logical partitions in their EBR chain order, GPT entries by slot."""
    mbr = read(0, SECTOR)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        return None
    entries = [struct.unpack_from("<4xB3xII", mbr, 446 + 16 * i) for i in range(4)]
    if any(kind == 0xEE for kind, _start, _count in entries):
        gpt = _gpt(read)
        if gpt is not None:
            return gpt
    found: dict[int, tuple[int, int]] = {}
    for number, (kind, start, count) in enumerate(entries, 1):
        if kind == 0 or count == 0:
            continue
        found[number] = (start * SECTOR, (start + count) * SECTOR)
        if kind in _EXTENDED_TYPES:
            found.update(_logical(read, start))
    return found


def _logical(read: Callable[[int, int], bytes], extended_start: int) -> dict[int, tuple[int, int]]:
    found: dict[int, tuple[int, int]] = {}
    ebr_lba, seen, number = extended_start, set(), 5
    while ebr_lba not in seen and len(seen) < _MAX_LOGICAL:  # a looping chain ends here
        seen.add(ebr_lba)
        ebr = read(ebr_lba * SECTOR, SECTOR)
        if len(ebr) < SECTOR or ebr[510:512] != b"\x55\xaa":
            break
        kind, start, count = struct.unpack_from("<4xB3xII", ebr, 446)
        if kind and count:
            found[number] = ((ebr_lba + start) * SECTOR, (ebr_lba + start + count) * SECTOR)
            number += 1
        next_kind, next_start, _next_count = struct.unpack_from("<4xB3xII", ebr, 462)
        if next_kind not in _EXTENDED_TYPES or not next_start:
            break
        ebr_lba = extended_start + next_start
    return found


def _gpt(read: Callable[[int, int], bytes]) -> dict[int, tuple[int, int]] | None:
    header = read(SECTOR, 92)
    if len(header) < 92 or header[:8] != b"EFI PART":
        return None
    entries_lba, count, size = struct.unpack_from("<QII", header, 72)
    if not 128 <= size <= 4096 or count > _MAX_GPT_ENTRIES:
        return None
    table = read(entries_lba * SECTOR, count * size)
    found: dict[int, tuple[int, int]] = {}
    for slot in range(min(count, len(table) // size)):
        entry = table[slot * size : (slot + 1) * size]
        if entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        found[slot + 1] = (first * SECTOR, (last + 1) * SECTOR)
    return found


def partition_problem(path: str, partition: int, fmt: str = "raw", virtual_size: int | None = None) -> str | None:
    """Why the image ``path`` (read as ``fmt``) cannot receive settings on ``partition``, or None.

    A raw image is read directly; a qcow2 one through ``qemu-io -r`` (its guest view), so
    neither needs a libguestfs appliance."""
    if fmt == "raw":
        size = os.stat(path).st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            table = partition_table(lambda offset, length: os.pread(fd, length, offset) if offset < size else b"")
        finally:
            os.close(fd)
    else:
        size = int(virtual_size or 0)
        table = partition_table(lambda offset, length: _qemu_io_read(path, fmt, offset, length, size))
    if table is None:
        return f"it has no partition table, so no partition {partition}"
    if partition not in table:
        numbers = ", ".join(str(n) for n in sorted(table)) or "none"
        return f"it has no partition {partition} (partitions: {numbers})"
    end = table[partition][1]
    if end > size:
        return (
            f"its partition {partition} ends at byte {end}, past the end of the image ({size} bytes): "
            "the image is truncated"
        )
    return None


def _qemu_io_read(path: str, fmt: str, offset: int, length: int, size: int) -> bytes:
    """``length`` bytes at ``offset`` of the guest view of ``path``; b"" past its end or on error."""
    length = min(length, size - offset)
    if offset < 0 or length <= 0:
        return b""
    try:
        proc = subprocess.run(  # pylint: disable=ansible-bad-function  # an engine: no AnsibleModule here
            ["qemu-io", "-r", "-U", "-f", fmt, "-c", f"read -v {offset} {length}", path],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return b""
    data = bytearray()
    for line in proc.stdout.splitlines():
        head, sep, rest = line.partition(":  ")
        if sep and len(head) == 8 and all(c in "0123456789abcdef" for c in head):
            data += bytes.fromhex(rest[:48])
    return bytes(data[:length]) if proc.returncode == 0 else b""


def template_state(path: str, fmt: str) -> dict[str, Any]:
    """What is recorded of a template when a clone is made from it, and compared later."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        digest = hashlib.sha256()
        digest.update(os.pread(fd, FINGERPRINT_BYTES, 0))
        digest.update(os.pread(fd, FINGERPRINT_BYTES, max(0, info.st_size - FINGERPRINT_BYTES)))
    finally:
        os.close(fd)
    return {
        "template": path,
        "format": fmt,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "sha256_ends": digest.hexdigest(),
    }


def record_origin(fd: int, origin: dict[str, Any]) -> None:
    os.setxattr(fd, ORIGIN_XATTR, json.dumps(origin, sort_keys=True).encode())


def recorded_origin(path: str) -> dict[str, Any] | None:
    """The origin recorded with an image by xen_disk, or None (not a clone, made before the
    record existed or by another tool, or on a filesystem without trusted.* attributes)."""
    try:
        value = os.getxattr(path, ORIGIN_XATTR, follow_symlinks=False)
        origin = json.loads(value.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return origin if isinstance(origin, dict) else None


def compare_origin(origin: dict[str, Any] | None, now: dict[str, Any] | None) -> tuple[str, list[str]]:
    """(template_state, what differs) of a clone's recorded origin against the template now:
    ``unrecorded`` (no record), ``missing`` (the template is gone), ``other`` (recorded from
    another template), ``changed`` or ``unchanged``."""
    if origin is None:
        return "unrecorded", []
    if now is None:
        return "missing", []
    if origin.get("template") != now["template"]:
        return "other", [f"it was cloned from {origin.get('template')}"]
    labels = {
        "size": "size",
        "mtime_ns": "modification time",
        "sha256_ends": "content of its first/last MiB",
        "format": "format",
    }
    differs = [
        f"{label} ({origin.get(key)} then, {now[key]} now)" if key == "size" else label
        for key, label in labels.items()
        if origin.get(key) != now[key]
    ]
    return ("changed" if differs else "unchanged"), differs
