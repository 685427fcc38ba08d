"""Bootable Debian templates (xen_disk state=template os=debian) and login keys: the pure
parts of disk/debian.py, the request checks and the install steps against a recording
libguestfs handle. The real build and boot run in tests/integration/test_login_site.py."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.disk import debian
from ansible_collections.lcfg.xen.plugins.module_utils.disk.engine import run_disk

from .test_disk import req

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDq0bTdB6cTk1pFhQ6Hc2m5lPqE3m2eC0t0p1H0pJv0a test@example"

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/2025
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
"""


def _apt(tmp_path, sources=None, lists=None):
    (tmp_path / "sources.list.d").mkdir()
    for name, text in (sources or {}).items():
        (tmp_path / "sources.list.d" / name).write_text(text)
    for name, text in (lists or {}).items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


def test_mirror_from_deb822_sources_skips_other_suites(tmp_path):
    etc = _apt(tmp_path, {"debian.sources": DEB822})
    assert debian.apt_mirror("bookworm", etc) == "http://mirror.example.org/debian"
    assert debian.apt_mirror("bookworm-security", etc) == "http://security.example.org/debian-security"


def test_mirror_from_one_line_sources_with_options(tmp_path):
    etc = _apt(
        tmp_path,
        lists={
            "sources.list": "# deb http://old.example.org/debian bookworm main\n"
            "deb-src http://src.example.org/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://one.example.org/debian bookworm main\n"
        },
    )
    assert debian.apt_mirror("bookworm", etc) == "http://one.example.org/debian"


def test_disabled_deb822_stanza_is_skipped_and_no_source_names_the_fix(tmp_path):
    etc = _apt(tmp_path, {"off.sources": "Enabled: no\n" + DEB822})
    with pytest.raises(XenError, match="set 'mirror'"):
        debian.apt_mirror("trixie", etc)
    with pytest.raises(XenError, match="set 'mirror'"):
        debian.apt_mirror("bookworm", etc)


def test_host_suite(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\n')
    assert debian.host_suite(str(release)) == "bookworm"
    release.write_text("NAME=other\n")
    with pytest.raises(XenError, match="set 'suite'"):
        debian.host_suite(str(release))


def test_cache_key_follows_every_input():
    key = debian.cache_key("bookworm", "http://a/debian")
    assert key == debian.cache_key("bookworm", "http://a/debian")
    assert len(key) == 16
    assert key != debian.cache_key("trixie", "http://a/debian")
    assert key != debian.cache_key("bookworm", "http://b/debian")
    assert key != debian.cache_key("bookworm", "http://a/debian", (*debian.PACKAGES, "vim"))


@pytest.mark.parametrize(
    ("suite", "mirror"), [("Bookworm;rm", "http://a/"), ("bookworm", "ftp://a/"), ("bookworm", "http://a b/")]
)
def test_bad_suite_or_mirror_is_refused(suite, mirror):
    with pytest.raises(XenError):
        debian.check_inputs(suite, mirror)


def test_boot_files_pick_the_newest_kernel_with_an_initrd():
    names = ["vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "config-x", "System.map"]
    assert debian.boot_files(names) == ("vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64")
    with pytest.raises(XenError, match="no kernel"):
        debian.boot_files(["config-x"])


def test_extlinux_config_boots_the_root_label_with_a_serial_console():
    conf = debian.extlinux_config("vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64")
    assert "LINUX /vmlinuz-6.1.0-9-amd64\n" in conf and "INITRD /initrd.img-6.1.0-9-amd64\n" in conf
    assert f"root=LABEL={debian.ROOT_LABEL}" in conf and "console=ttyS0" in conf


def test_rootfs_files_mount_the_labels_and_take_dhcp():
    files = debian.rootfs_files()
    assert f"LABEL={debian.ROOT_LABEL} / ext4" in files["etc/fstab"]
    assert f"LABEL={debian.BOOT_LABEL} /boot ext2" in files["etc/fstab"]
    assert "DHCP=yes" in files["etc/systemd/network/80-lcfg-dhcp.network"]
    image = debian.image_files()
    assert "ssh-keygen -q -t ed25519" in image["/etc/systemd/system/lcfg-ssh-hostkeys.service"]
    assert image["/etc/ssh/sshd_config.d/lcfg-xen.conf"] == "HostKey /etc/ssh/ssh_host_ed25519_key\n"


def test_mounts_under_lists_the_chroot_mounts_deepest_first():
    text = (
        "proc /proc proc rw 0 0\n"
        "proc /cache/.w/root/proc proc rw 0 0\n"
        "sysfs /cache/.w/root/sys sysfs rw 0 0\n"
        "binfmt /cache/.w/root/proc/sys/fs/binfmt_misc binfmt_misc rw 0 0\n"
        "tmpfs /cache/.wx tmpfs rw 0 0\n"
    )
    assert debian.mounts_under("/cache/.w", text) == [
        "/cache/.w/root/proc/sys/fs/binfmt_misc",
        "/cache/.w/root/proc",
        "/cache/.w/root/sys",
    ]


def test_rootfs_tarball_reuses_the_cache_and_runs_argument_lists(tmp_path, monkeypatch):
    monkeypatch.setattr(debian.shutil, "which", lambda name: "/usr/sbin/" + name)
    calls = []

    def run(args):
        calls.append(args)
        if args[0] == "debootstrap":
            root = args[-2]
            for sub in ("etc/ssh", "boot"):
                (tmp_path / root / sub).mkdir(parents=True, exist_ok=True)
            (tmp_path / root / "etc/ssh/ssh_host_rsa_key").write_text("one key for every clone")
        if args[0] == "tar":
            open(args[args.index("-cf") + 1], "w").close()

    first = debian.rootfs_tarball("bookworm", "http://a/debian", str(tmp_path / "cache"), run=run)
    assert first["built"] and first["path"].endswith(f"debian-bookworm-{first['key']}.tar")
    assert [c[0] for c in calls] == ["debootstrap", "chroot", "chroot", "chroot", "tar"]
    assert calls[0][-3:-1] == ["bookworm", calls[0][-2]] and calls[0][-1] == "http://a/debian"
    assert any(arg.startswith("--include=") and "openssh-server" in arg for arg in calls[0])
    calls.clear()
    again = debian.rootfs_tarball("bookworm", "http://a/debian", str(tmp_path / "cache"), run=run)
    assert again == {**first, "built": False} and calls == []
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []  # work dir gone


class RecordingHandle:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args))
            if name == "ls":
                return ["vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64", "config-6.1.0-9-amd64"]
            return None

        return call


def test_install_rootfs_formats_unpacks_and_installs_extlinux(tmp_path, monkeypatch):
    mbr = tmp_path / "mbr.bin"
    mbr.write_bytes(b"\xfa" * 440)
    monkeypatch.setattr(debian, "SYSLINUX_MBR", str(mbr))
    g = RecordingHandle()
    debian.install_rootfs(g, 5, "/cache/root.tar")
    names = [name for name, _args in g.calls]
    assert ("mkfs", ("ext2", "/dev/sda1")) in g.calls and ("mkfs", ("ext4", "/dev/sda5")) in g.calls
    assert names.index("tar_in") > names.index("mount") and ("extlinux", ("/boot",)) in g.calls
    assert ("part_set_bootable", ("/dev/sda", 1, True)) in g.calls
    assert ("pwrite_device", ("/dev/sda", b"\xfa" * 440, 0)) in g.calls
    conf = next(args[1] for name, args in g.calls if name == "write" and args[0] == "/boot/extlinux.conf")
    assert b"LINUX /vmlinuz-6.1.0-9-amd64" in conf
    written = [args[0] for name, args in g.calls if name == "write"]
    assert "/etc/ssh/sshd_config.d/lcfg-xen.conf" in written and names.index("write") > names.index("tar_in")


def test_missing_syslinux_mbr_names_the_package(monkeypatch):
    monkeypatch.setattr(debian, "SYSLINUX_MBR", "/nonexistent/mbr.bin")
    with pytest.raises(XenError, match="syslinux-common"):
        debian.install_rootfs(RecordingHandle(), 5, "/x.tar")


# ---------------------------------------------------------------- the module's options


def test_os_needs_state_template_and_suite_needs_os():
    with pytest.raises(ValidationError) as err:
        req(os="debian")
    assert err.value.parameter == "os"
    with pytest.raises(ValidationError) as err:
        req(state="template", suite="bookworm")
    assert err.value.parameter == "suite"
    request = req(state="template", os="debian", suite="bookworm", mirror="http://a/debian")
    assert (request.os, request.suite, request.mirror, request.cache_dir) == (
        "debian",
        "bookworm",
        "http://a/debian",
        debian.DEFAULT_CACHE_DIR,
    )


def test_check_mode_says_what_a_bootable_build_would_use(tmp_path):
    result = run_disk(
        {
            "path": str(tmp_path / "boot.img"),
            "state": "template",
            "os": "debian",
            "suite": "bookworm",
            "mirror": "http://mirror.example.org/debian",
            "partition": 5,
            "storage_dirs": [str(tmp_path)],
        },
        check_mode=True,
    )
    assert result["changed"] and result["built"]
    assert result["bootable"]["mirror"] == "http://mirror.example.org/debian"
    assert result["actions"][-1].startswith(f"build bootable Debian bookworm template image {tmp_path}/boot.img")
    assert "the root filesystem on partition 5) from http://mirror.example.org/debian" in result["actions"][-1]
    assert not (tmp_path / "boot.img").exists()


def test_authorized_keys_go_to_roots_ssh_with_the_lcfg_settings():
    request = req(
        template="/guests/t.img", profile_url="http://lcfg.example.org/p/", partition=5, authorized_keys=[KEY, " "]
    )
    assert request.lcfg_contents()["/root/.ssh/authorized_keys"] == KEY + "\n"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {
                "template": "/guests/t.img",
                "profile_url": "http://l/p/",
                "partition": 5,
                "authorized_keys": ["not a key"],
            },
            "SSH public key",
        ),
        (
            {
                "template": "/guests/t.img",
                "profile_url": "http://l/p/",
                "partition": 5,
                "authorized_keys": [KEY + "\nssh-rsa AAAA x"],
            },
            "control character|SSH public key",
        ),
        ({"template": "/guests/t.img", "authorized_keys": [KEY]}, "profile_url"),
    ],
)
def test_bad_or_unplaceable_keys_are_refused(params, match):
    with pytest.raises(ValidationError, match=match) as err:
        req(**params)
    assert err.value.parameter == "authorized_keys"


def test_a_build_in_progress_is_waited_for_at_most_lock_wait(tmp_path, monkeypatch):
    import fcntl  # noqa: PLC0415

    from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError  # noqa: PLC0415

    monkeypatch.setattr(debian.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    cache = tmp_path / "cache"
    cache.mkdir()
    key = debian.cache_key("bookworm", "http://a/debian")
    with open(cache / f"debian-bookworm-{key}.tar.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another build holds it
        with pytest.raises(XenError, match="another build of this Debian root filesystem"):
            debian.rootfs_tarball("bookworm", "http://a/debian", str(cache), run=lambda args: None, lock_wait=0.2)
