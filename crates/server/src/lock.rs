//! The data directory lock: one server per `server.data_dir`.
//!
//! Two servers on one data directory (a second one started by mistake on
//! another port) share the SQLite file and the admin socket path: the
//! second replaced the first's admin socket and removed it on exit. So
//! [`crate::Server::start`] takes an exclusive advisory lock (`flock`) on
//! `<data_dir>/chorus.lock` before it opens anything else there, and holds
//! it as long as the server lives; for the `chorus` binary that is the
//! process lifetime. The holder writes its PID into the file, so the
//! refused server can say who holds it.
//!
//! `flock` rather than a PID file alone: the kernel releases the lock when
//! the holder dies, even on SIGKILL, so a stale file never blocks a
//! restart, and no PID is ever trusted without the lock behind it. The
//! file itself stays; removing it would race with a server taking it.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "chorus.lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error(
        "data directory {dir} is in use by another Chorus server ({holder}, holding {file}); \
         stop it, or give this server another server.data_dir"
    )]
    Held {
        dir: PathBuf,
        file: PathBuf,
        /// `PID 1234`, or a description when the holder has not written
        /// its PID yet.
        holder: String,
    },
    #[error("cannot lock {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The held lock; dropping it (closing the file) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    /// Kept open: the lock belongs to this open file description.
    _file: std::fs::File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock on `data_dir`, which must exist, without waiting.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |e| LockError::Io(path.clone(), e);
        // Not truncated on open: the holder's PID must survive a refused
        // attempt.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("PID {pid}"),
                    // Locked, but the PID not written yet: the holder is
                    // starting this very moment.
                    Err(_) => "a process that is starting".to_owned(),
                };
                return Err(LockError::Held {
                    dir: data_dir.to_owned(),
                    file: path,
                    holder,
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        // Ours now: replace whatever a previous holder wrote.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("chorus-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_until_the_first_drops() {
        let d = dir("twice");
        let first = DataDirLock::acquire(&d).unwrap();
        assert_eq!(
            std::fs::read_to_string(first.path()).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock belongs to the open file, so a second open in the same
        // process conflicts like another process would.
        let err = DataDirLock::acquire(&d).unwrap_err().to_string();
        assert!(
            err.contains(&format!("PID {}", std::process::id()))
                && err.contains(&d.join(LOCK_FILE).display().to_string()),
            "{err}"
        );
        drop(first);
        let again = DataDirLock::acquire(&d).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_stale_pid_without_a_lock_does_not_block() {
        let d = dir("stale");
        std::fs::write(d.join(LOCK_FILE), "999999999\n").unwrap();
        let lock = DataDirLock::acquire(&d).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
