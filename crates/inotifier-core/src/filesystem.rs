//! Which filesystem a path is on (statfs `f_type`), what inotify sees there, and the mounts
//! below a directory: what the `auto` backend decides from, and what the doctor reports.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// What inotify sees on a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every change made through this kernel.
    Local,
    /// Only changes made through this machine: another host's (a file server, a FUSE daemon
    /// writing on its own behalf) are never reported.
    ThisHostOnly,
    /// Pseudo-files the kernel makes up: inotify reports (almost) nothing.
    Nothing,
}

/// A filesystem type of the table below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filesystem {
    pub name: &'static str,
    pub magic: u64,
    pub reach: Reach,
}

/// statfs magic numbers (linux/magic.h and the filesystems' own sources), the only table of
/// them in the project.
const FILESYSTEMS: &[Filesystem] = &[
    fs("ext2/ext3/ext4", 0xEF53, Reach::Local),
    fs("xfs", 0x5846_5342, Reach::Local),
    fs("btrfs", 0x9123_683E, Reach::Local),
    fs("tmpfs", 0x0102_1994, Reach::Local),
    fs("ramfs", 0x8584_58F6, Reach::Local),
    fs("overlayfs", 0x794C_7630, Reach::Local),
    fs("zfs", 0x2FC1_2FC1, Reach::Local),
    fs("f2fs", 0xF2F5_2010, Reach::Local),
    fs("bcachefs", 0xCA45_1A4E, Reach::Local),
    fs("reiserfs", 0x5265_4973, Reach::Local),
    fs("jfs", 0x3153_464A, Reach::Local),
    fs("nilfs2", 0x3434, Reach::Local),
    fs("vfat", 0x4D44, Reach::Local),
    fs("exfat", 0x2011_BAB0, Reach::Local),
    fs("ntfs", 0x5346_544E, Reach::Local),
    fs("ntfs3", 0x7366_746E, Reach::Local),
    fs("squashfs", 0x7371_7368, Reach::Local),
    fs("iso9660", 0x9660, Reach::Local),
    fs("nfs", 0x6969, Reach::ThisHostOnly),
    fs("smb", 0x517B, Reach::ThisHostOnly),
    fs("cifs", 0xFF53_4D42, Reach::ThisHostOnly),
    fs("smb2", 0xFE53_4D42, Reach::ThisHostOnly),
    fs("fuse", 0x6573_5546, Reach::ThisHostOnly),
    fs("9p", 0x0102_1997, Reach::ThisHostOnly),
    fs("ceph", 0x00C3_6400, Reach::ThisHostOnly),
    fs("afs", 0x5346_414F, Reach::ThisHostOnly),
    fs("kafs", 0x6B41_4653, Reach::ThisHostOnly),
    fs("coda", 0x7375_7245, Reach::ThisHostOnly),
    fs("ocfs2", 0x7461_636F, Reach::ThisHostOnly),
    fs("gfs2", 0x0116_1970, Reach::ThisHostOnly),
    fs("lustre", 0x0BD0_0BD0, Reach::ThisHostOnly),
    fs("proc", 0x9FA0, Reach::Nothing),
    fs("sysfs", 0x6265_6572, Reach::Nothing),
    fs("cgroup2", 0x6367_7270, Reach::Nothing),
    fs("debugfs", 0x6462_6720, Reach::Nothing),
];

const fn fs(name: &'static str, magic: u64, reach: Reach) -> Filesystem {
    Filesystem { name, magic, reach }
}

/// The filesystem `path` is on, and its magic number (for one the table does not know).
pub fn filesystem_of(path: &Path) -> io::Result<(Option<Filesystem>, u64)> {
    let c_path = c_path(path)?;
    // SAFETY: zeroed statfs is a valid value to be overwritten by the call.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs to fill, both alive across the call.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type is signed on some targets: the magic numbers are its bits, as unsigned 32-bit.
    let magic = u64::from(stat.f_type as u32);
    Ok((
        FILESYSTEMS.iter().copied().find(|fs| fs.magic == magic),
        magic,
    ))
}

impl Filesystem {
    /// inotify misses changes made there by other hosts (or the filesystem's server): a
    /// watch there needs polling.
    pub fn inotify_misses_changes(&self) -> bool {
        self.reach != Reach::Local
    }
}

/// The mount points strictly below `root` (from `/proc/self/mountinfo`), shortest first; none
/// when the table cannot be read.
pub fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let Ok(table) = std::fs::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = table
        .split(|&byte| byte == b'\n')
        .filter_map(|line| line.split(|&byte| byte == b' ').nth(4))
        .map(|field| PathBuf::from(std::ffi::OsString::from_vec(unescape_mount_path(field))))
        .filter(|mount| mount != root && mount.starts_with(root))
        .collect();
    found.sort_by_key(|mount| mount.as_os_str().len());
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo` (octal).
fn unescape_mount_path(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut index = 0;
    while index < field.len() {
        let digits = field.get(index + 1..index + 4);
        match digits {
            Some(digits)
                if field[index] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)) =>
            {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                out.push(value as u8);
                index += 4;
            }
            _ => {
                out.push(field[index]);
                index += 1;
            }
        }
    }
    out
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_magic_number_once() {
        let mut magics: Vec<u64> = FILESYSTEMS.iter().map(|fs| fs.magic).collect();
        magics.sort_unstable();
        magics.dedup();
        assert_eq!(magics.len(), FILESYSTEMS.len());
    }

    #[test]
    fn proc_is_known_and_sees_nothing() {
        let (found, _) = filesystem_of(Path::new("/proc")).unwrap();
        let found = found.unwrap();
        assert_eq!(found.name, "proc");
        assert!(found.inotify_misses_changes());
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(br"/mnt/a\040b"), b"/mnt/a b");
        assert_eq!(unescape_mount_path(br"/x\134y"), b"/x\\y");
        assert_eq!(unescape_mount_path(br"/plain\9"), br"/plain\9");
    }

    #[test]
    fn proc_is_a_mount_below_the_root() {
        assert!(mounts_below(Path::new("/")).contains(&PathBuf::from("/proc")));
        assert!(!mounts_below(Path::new("/proc")).contains(&PathBuf::from("/proc")));
    }
}
