//! Files only their owner may read: the store (ARNs, e-mail addresses, request metadata) and the
//! credentials cache (secrets). Directories 0700, files 0600; elsewhere than Unix, plain files.

use std::path::Path;

/// A regular file of this user that no one else may read or write (not a link).
#[cfg(unix)]
pub fn is_private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_file() && m.uid() == uid && m.mode() & 0o077 == 0)
}

#[cfg(not(unix))]
pub fn is_private(path: &Path) -> bool {
    path.is_file()
}

/// Creates `dir` (and its parents) readable by its owner only; a directory already there is left
/// as it is (it may be the user's own, shared on purpose).
#[cfg(unix)]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates a new file (it must not exist) that only this user may read.
#[cfg(unix)]
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A new store file is readable by its owner only (SQLite gives its -wal and -shm the same).
#[cfg(unix)]
pub fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
pub fn make_private(_: &Path) {}
