//! Where a store lives: an SQLite file (the embedded default) or a PostgreSQL database named
//! by its URL. `[service] database` and `callpark migrate`'s `--from`/`--to` are read here.

use std::fmt;
use std::path::PathBuf;

/// The store's back end and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://`).
    Postgres(PgUrl),
}

impl Location {
    /// `[service] database` as written: a `postgres://` or `postgresql://` URL is PostgreSQL;
    /// anything else is the path of an SQLite file, so every configuration written before
    /// PostgreSQL keeps its meaning.
    pub fn from_setting(s: &str) -> Location {
        match PgUrl::new(s) {
            Some(url) => Location::Postgres(url),
            None => Location::Sqlite(PathBuf::from(s)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Location::Postgres(url) => url.fmt(f),
        }
    }
}

/// A PostgreSQL URL. It shows (`Display`, `Debug`) without its password, so neither a log line,
/// an error nor a printed configuration ever holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl PgUrl {
    /// `s` when it is a PostgreSQL URL (by its scheme; the rest is checked when connecting).
    pub fn new(s: &str) -> Option<PgUrl> {
        let scheme = s.split_once("://")?.0;
        (scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql"))
            .then(|| PgUrl(s.to_string()))
    }

    /// The URL with its password, for the driver only.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// `host:port` (or the socket directory) as the URL names it, for error messages.
    pub(crate) fn server(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(u) => {
                // `host=/run/postgresql` in the query names a unix socket's directory.
                let socket = u.query_pairs().find(|(k, _)| k == "host").map(|(_, v)| v);
                match (u.host_str().filter(|h| !h.is_empty()), socket) {
                    (_, Some(dir)) => dir.into_owned(),
                    (Some(h), None) => format!("{h}:{}", u.port().unwrap_or(5432)),
                    (None, None) => "localhost:5432".into(),
                }
            }
            Err(_) => self.to_string(),
        }
    }

    /// The database the URL names (the user's name when it names none, as libpq does).
    pub(crate) fn database(&self) -> String {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|u| {
                let db = u.path().trim_start_matches('/').to_string();
                if db.is_empty() {
                    Some(u.username().to_string()).filter(|n| !n.is_empty())
                } else {
                    Some(db)
                }
            })
            .unwrap_or_else(|| "postgres".into())
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(mut u) = url::Url::parse(&self.0) else {
            // Not a URL the driver could use either: shown without its user part and query,
            // where a password could be (the last `@`, as a password may hold one).
            let rest = self.0.rsplit_once('@').map_or(self.0.as_str(), |(_, r)| r);
            let rest = rest.split('?').next().unwrap_or_default();
            let rest = rest.rsplit_once("://").map_or(rest, |(_, r)| r);
            return write!(f, "postgres://…@{rest}");
        };
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        // libpq's `?password=` too.
        if u.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" { "***".into() } else { v };
                    (k.into_owned(), v.into_owned())
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(u.as_str())
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_postgresql_and_anything_else_a_file() {
        assert!(matches!(
            Location::from_setting("postgres://cp@db/callpark"),
            Location::Postgres(_)
        ));
        assert!(matches!(
            Location::from_setting("postgresql://cp@db/callpark"),
            Location::Postgres(_)
        ));
        assert_eq!(
            Location::from_setting("/var/lib/callpark/callpark.db"),
            Location::Sqlite("/var/lib/callpark/callpark.db".into())
        );
        assert_eq!(
            Location::from_setting("data/x.db"),
            Location::Sqlite("data/x.db".into())
        );
    }

    #[test]
    fn a_url_never_shows_its_password() {
        let u =
            PgUrl::new("postgres://cp:s3cret@db.example:5433/callpark?sslmode=require").unwrap();
        assert_eq!(
            u.to_string(),
            "postgres://cp:***@db.example:5433/callpark?sslmode=require"
        );
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(u.server(), "db.example:5433");
        assert_eq!(u.database(), "callpark");
        let q =
            PgUrl::new("postgresql://cp@db/callpark?password=s3cret&application_name=x").unwrap();
        assert!(!q.to_string().contains("s3cret"), "{q}");
        let bad = PgUrl::new("postgres://cp:s3cret@db:notaport/x").unwrap();
        assert!(!bad.to_string().contains("s3cret"), "{bad}");
        let sock = PgUrl::new("postgres://cp@localhost/callpark?host=/run/postgresql").unwrap();
        assert_eq!(sock.server(), "/run/postgresql");
        assert_eq!(PgUrl::new("postgres://cp@db").unwrap().database(), "cp");
    }
}
