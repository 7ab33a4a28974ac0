//! Where Postgres is, as a setting: `DATABASE_URL`, parsed when the command
//! line is, so a bad one stops the service at start naming the variable.

use std::fmt;
use std::str::FromStr;

use clap::Args;
use sqlx::postgres::PgConnectOptions;

use crate::redact::redact_url;

/// Where Postgres is.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Postgres URL (`postgres://` or `postgresql://`). The password is
    /// never printed.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@db/postgres",
        hide_env_values = true,
        value_parser = DatabaseUrl::parse
    )]
    pub database_url: DatabaseUrl,
}

impl DatabaseArgs {
    /// Postgres at `url`; an error names `DATABASE_URL` without its
    /// password.
    pub fn at(url: &str) -> anyhow::Result<Self> {
        Ok(DatabaseArgs {
            database_url: DatabaseUrl::parse(url).map_err(anyhow::Error::msg)?,
        })
    }
}

/// A Postgres URL, parsed; shown without its password.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    options: PgConnectOptions,
    shown: String,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let shown = redact_url(url);
        // sqlx reads any scheme as Postgres's, so a `mysql://` URL would be
        // tried (and retried) as one.
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "invalid DATABASE_URL {shown}: not a postgres:// URL"
            ));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| format!("invalid DATABASE_URL {shown}: {e}"))?;
        Ok(DatabaseUrl { options, shown })
    }

    /// How to connect.
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_taken_and_the_password_is_hidden() {
        let url = DatabaseUrl::parse("postgres://u:secret@h/db").unwrap();
        assert_eq!(url.to_string(), "postgres://u:***@h/db");
        for bad in ["mysql://u@h/db", "not a url", "postgres://h:notaport/db"] {
            let why = DatabaseUrl::parse(bad).unwrap_err();
            assert!(why.contains("DATABASE_URL"), "{bad}: {why}");
        }
    }
}
