//! The SQLite database file that holds the grants (`crate::access::store`)
//! and the KMIP objects (`crate::store`): created before SQLite opens it, so
//! that a new file is readable by its owner only. Uses no other module.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the database file or its directory could not be created.
#[derive(Debug, Error)]
pub enum FileError {
    /// The database's directory could not be created.
    #[error("cannot create the database directory {dir}: {source}")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A new database file could not be created.
    #[error("cannot create the database {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Makes sure the database file `path` exists: creates its missing
/// directories (mode 0700) and, when the file is missing, an empty file of
/// mode 0600. SQLite's own default follows the umask (0644 under most), and
/// the database names every user, their rights and the (wrapped) keys; SQLite
/// creates its `-wal` and `-shm` files with the database's mode. An existing
/// file is left as it is.
///
/// Errors: [`FileError`] naming the directory or the file and the OS error.
pub fn create_private(path: &Path) -> Result<(), FileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| FileError::Directory {
                    dir: dir.to_owned(),
                    source,
                })?;
        }
    }
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(FileError::Create {
            path: path.to_owned(),
            source,
        }),
    }
}
