//! Custom music-on-hold files: copied into the data directory under their checksum and
//! recorded in the store, so a backup of the data directory (or `callpark backup`) keeps them.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::{Media, Store, StoreError};

/// SHA-256 of a file, hex.
pub(crate) fn sha256_file(path: &Path) -> Result<(String, u64), std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((format!("{:x}", h.finalize()), size))
}

/// Keeps `source` in `<data_dir>/moh/` and returns the kept copy's path. The copy is named by
/// its checksum, so a changed file gets a new name and an unchanged one is not copied again.
pub(crate) async fn keep_moh_file(
    store: &Store,
    data_dir: &Path,
    source: &Path,
    name: &str,
    now: i64,
) -> Result<PathBuf, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let (sum, size) = sha256_file(source).map_err(io(source))?;
    let dir = data_dir.join("moh");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("moh");
    let ext = source.extension().and_then(|s| s.to_str()).unwrap_or("wav");
    let kept = dir.join(format!("{stem}-{}.{ext}", &sum[..12]));
    if !kept.exists() {
        std::fs::copy(source, &kept).map_err(io(&kept))?;
    }
    let kept = std::fs::canonicalize(&kept).map_err(io(&kept))?;
    store
        .put_media(
            &Media {
                name: name.into(),
                path: kept.display().to_string(),
                sha256: sum,
                size: size as i64,
            },
            now,
        )
        .await?;
    Ok(kept)
}

/// Checks every stored media file against its checksum; returns the problems found.
pub(crate) async fn verify_media(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    for m in store.media().await? {
        match sha256_file(Path::new(&m.path)) {
            Ok((sum, _)) if sum == m.sha256 => {}
            Ok((sum, _)) => problems.push(format!(
                "{}: checksum {sum} differs from the stored {}",
                m.path, m.sha256
            )),
            Err(e) => problems.push(format!("{}: {e}", m.path)),
        }
    }
    Ok(problems)
}

/// Copies the database (consistently, while in use) and every media file into `dest`, and
/// checks the copies' checksums.
pub(crate) async fn backup(store: &Store, dest: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(dest.join("moh")).map_err(io(dest))?;
    let db = dest.join("callpark.db");
    if db.exists() {
        std::fs::remove_file(&db).map_err(io(&db))?;
    }
    store.backup_to(&db).await?;
    let mut written = vec![db];
    for m in store.media().await? {
        let src = PathBuf::from(&m.path);
        let to = dest.join("moh").join(src.file_name().unwrap_or_default());
        std::fs::copy(&src, &to).map_err(io(&src))?;
        let (sum, _) = sha256_file(&to).map_err(io(&to))?;
        if sum != m.sha256 {
            return Err(StoreError::Io {
                path: to,
                source: std::io::Error::other("copy does not match the stored checksum"),
            });
        }
        written.push(to);
    }
    Ok(written)
}
