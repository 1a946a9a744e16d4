//! Writing a plan: each changed file backed up once, then replaced whole.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Change;

/// The suffix of a backup. Neither Asterisk's `*.conf` includes nor FreeSWITCH's `*.xml`
/// includes match it, so a backup is never loaded beside the file it keeps.
pub const BACKUP_SUFFIX: &str = ".callpark-bak";

/// The backup of `path`.
pub fn backup_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(BACKUP_SUFFIX);
    PathBuf::from(s)
}

/// Why a change could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: {what} ({source}): run setup as a user who may write there (root, or the PBX's own user); the files listed before this one are written already, each with its {BACKUP_SUFFIX} beside it"
)]
pub struct WriteError {
    pub path: String,
    pub what: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Writes every change: an existing file is first copied to its backup unless one exists
/// already (a second run keeps the file as it was before callpark touched it), then replaced
/// by a new file with the same owner and mode, renamed into place so that the PBX never reads
/// it half written. A file that did not exist gets the owner and mode of `like` (a file the
/// PBX reads beside it) and its directory is made as its parent is. Returns the files written.
pub fn apply(changes: &[Change], like: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let mut done = Vec::new();
    for c in changes {
        let err = |what, source| WriteError {
            path: c.path.display().to_string(),
            what,
            source,
        };
        let model = if c.old.is_some() {
            c.path.clone()
        } else {
            like.to_path_buf()
        };
        let meta = fs::metadata(&model).ok();
        if c.old.is_some() {
            let bak = backup_of(&c.path);
            if !bak.exists() {
                fs::copy(&c.path, &bak).map_err(|e| err("cannot back it up", e))?;
                if let Some(m) = &meta {
                    own(&bak, m);
                }
            }
        } else if let Some(dir) = c.path.parent().filter(|d| !d.exists()) {
            fs::create_dir_all(dir).map_err(|e| err("cannot make its directory", e))?;
            if let Some(pm) = dir.parent().and_then(|p| fs::metadata(p).ok()) {
                own(dir, &pm);
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(pm.mode() & 0o7777));
            }
        }
        let tmp = {
            let mut s = c.path.as_os_str().to_owned();
            s.push(".callpark-new");
            PathBuf::from(s)
        };
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(c.new.as_bytes())?;
            f.sync_all()?;
            if let Some(m) = &meta {
                fs::set_permissions(&tmp, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                own(&tmp, m);
            }
            fs::rename(&tmp, &c.path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(err("cannot write it", e));
        }
        done.push(c.path.clone());
    }
    Ok(done)
}

/// Gives `path` the owner and group of `m`, where this user may (root may; anyone else may
/// only keep their own): the PBX often runs as its own user and must still read the file.
fn own(path: &Path, m: &fs::Metadata) {
    let _ = std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_backed_up_once_and_a_new_one_gets_its_directory() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.conf");
        fs::write(&a, "one\n").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o640)).unwrap();
        let change = |old: &str, new: &str| Change {
            path: a.clone(),
            old: Some(old.into()),
            new: new.into(),
            secrets: vec![],
        };
        let n = d.path().join("sub/new.xml");
        let created = Change {
            path: n.clone(),
            old: None,
            new: "x\n".into(),
            secrets: vec![],
        };
        apply(&[change("one\n", "two\n"), created], &a).unwrap();
        apply(&[change("two\n", "three\n")], &a).unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "three\n");
        assert_eq!(fs::read_to_string(backup_of(&a)).unwrap(), "one\n");
        assert_eq!(fs::metadata(&a).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read_to_string(&n).unwrap(), "x\n");
        assert_eq!(fs::metadata(&n).unwrap().mode() & 0o777, 0o640);
        assert!(!backup_of(&n).exists());
    }
}
