//! Noticing that our certificate, private key or CA file was replaced on disk, without a
//! SIGHUP: the three files' identity (device, inode), size and modification time are compared
//! every [`CERT_POLL_INTERVAL`].
//!
//! A change is acted on only once the files have looked the same for a whole interval, so a
//! file that is still being written (`cp` over it, a configuration manager writing in place) is
//! not read half-way; a replacement by rename (what Kubernetes secret volumes and most tools
//! do) changes the inode at once and is settled one interval later. Metadata is read through
//! symbolic links, so a link switched to a new target counts as a replacement too.
//!
//! Polling rather than inotify: three `stat` calls every few seconds cost nothing, and watching
//! directories for renames of linked files across mounts is where inotify setups go wrong.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::identity_check::IdentityFiles;

/// How often the identity files are looked at; a replacement is used one to two intervals
/// after the last write to it.
pub const CERT_POLL_INTERVAL: Duration = Duration::from_secs(3);

/// What the metadata says about one file: a different value means different contents may be
/// there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_sec: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    /// The stamp of the file at `path` (through symbolic links); `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_sec: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

/// The stamps of the certificate, private key and CA file, in that order.
pub type Stamps = [Option<FileStamp>; 3];

/// The stamps of the three identity files now.
pub fn stamps(files: &IdentityFiles) -> Stamps {
    [
        FileStamp::of(&files.certificate),
        FileStamp::of(&files.private_key),
        FileStamp::of(&files.ca_cert),
    ]
}

/// What one look at the files found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// As when last loaded (or last found replaced).
    Unchanged,
    /// Different, but not yet the same for a whole interval: perhaps still being written.
    Settling,
    /// Different and settled: load them.
    Replaced,
}

/// The watcher of our identity files.
#[derive(Debug, Clone)]
pub struct CertWatch {
    files: IdentityFiles,
    /// The stamps of what was last loaded (or last tried).
    seen: Stamps,
    /// Stamps that differ from `seen`, as found by the previous look.
    pending: Option<Stamps>,
}

impl CertWatch {
    /// A watcher of `files` as they are now (just loaded).
    pub fn new(files: IdentityFiles) -> CertWatch {
        let seen = stamps(&files);
        CertWatch {
            files,
            seen,
            pending: None,
        }
    }

    /// The files watched.
    pub fn files(&self) -> &IdentityFiles {
        &self.files
    }

    /// Looks at the files (reads their metadata).
    pub fn poll(&mut self) -> Observation {
        let now = stamps(&self.files);
        self.observe(now)
    }

    /// Compares the stamps found now with the last ones: a difference is reported
    /// [`Observation::Replaced`] once two consecutive looks agree on it. After that the new
    /// stamps count as seen, whether or not loading them works, so a broken file is reported
    /// once and not again until it changes.
    pub fn observe(&mut self, now: Stamps) -> Observation {
        if now == self.seen {
            self.pending = None;
            return Observation::Unchanged;
        }
        if self.pending == Some(now) {
            self.seen = now;
            self.pending = None;
            return Observation::Replaced;
        }
        self.pending = Some(now);
        Observation::Settling
    }

    /// Starts over with `files` (perhaps other paths, after a configuration reload) as they
    /// are now, which the caller is loading.
    pub fn rebase(&mut self, files: IdentityFiles) {
        *self = CertWatch::new(files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn files(dir: &Path) -> IdentityFiles {
        let f = IdentityFiles {
            certificate: dir.join("cert.pem"),
            private_key: dir.join("key.pem"),
            ca_cert: dir.join("ca.pem"),
        };
        fs::write(&f.certificate, "cert one").unwrap();
        fs::write(&f.private_key, "key one").unwrap();
        fs::write(&f.ca_cert, "ca").unwrap();
        f
    }

    #[test]
    fn untouched_files_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = CertWatch::new(files(dir.path()));
        assert_eq!(w.poll(), Observation::Unchanged);
        assert_eq!(w.poll(), Observation::Unchanged);
    }

    #[test]
    fn file_replaced_by_rename_is_reported_once_after_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let mut w = CertWatch::new(f.clone());
        let new = dir.path().join("cert.pem.new");
        fs::write(&new, "cert two").unwrap();
        fs::rename(&new, &f.certificate).unwrap();
        assert_eq!(w.poll(), Observation::Settling);
        assert_eq!(w.poll(), Observation::Replaced);
        assert_eq!(w.poll(), Observation::Unchanged);
    }

    #[test]
    fn file_still_being_written_is_not_reported_until_it_stops_changing() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let mut w = CertWatch::new(f.clone());
        // Written in place in three steps, each seen by a look: the size keeps changing.
        let mut content = String::new();
        for part in ["-----BEGIN", " CERTIFICATE-----\n", "MIIB...\n"] {
            content.push_str(part);
            fs::write(&f.private_key, &content).unwrap();
            assert_eq!(w.poll(), Observation::Settling);
        }
        assert_eq!(w.poll(), Observation::Replaced);
    }

    #[test]
    fn missing_file_counts_as_a_change_and_its_return_as_another() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let mut w = CertWatch::new(f.clone());
        fs::remove_file(&f.ca_cert).unwrap();
        assert_eq!(w.poll(), Observation::Settling);
        assert_eq!(w.poll(), Observation::Replaced);
        assert_eq!(w.poll(), Observation::Unchanged);
        fs::write(&f.ca_cert, "ca again").unwrap();
        assert_eq!(w.poll(), Observation::Settling);
        assert_eq!(w.poll(), Observation::Replaced);
    }

    #[test]
    fn symlink_switched_to_a_new_target_is_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let old = dir.path().join("v1.pem");
        let new = dir.path().join("v2.pem");
        fs::write(&old, "v1").unwrap();
        fs::write(&new, "v2").unwrap();
        fs::remove_file(&f.certificate).unwrap();
        std::os::unix::fs::symlink(&old, &f.certificate).unwrap();
        let mut w = CertWatch::new(f.clone());
        let tmp = dir.path().join("link.tmp");
        std::os::unix::fs::symlink(&new, &tmp).unwrap();
        fs::rename(&tmp, &f.certificate).unwrap();
        assert_eq!(w.poll(), Observation::Settling);
        assert_eq!(w.poll(), Observation::Replaced);
    }

    #[test]
    fn rebase_takes_the_files_as_they_are_now() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let mut w = CertWatch::new(f.clone());
        fs::write(&f.certificate, "cert two, longer").unwrap();
        assert_eq!(w.poll(), Observation::Settling);
        w.rebase(f);
        assert_eq!(w.poll(), Observation::Unchanged);
    }
}
