//! The sidecar's configuration: one typed struct, from flags and `GOALSTORE_*` environment.
//!
//! Every default is safe: listen on loopback, the embedded table. A bad value is reported with
//! the name of its setting before anything starts.

use clap::Parser;
use std::net::SocketAddr;
use std::str::FromStr;

/// Runs the goalstore gRPC sidecar.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "goalstore-sidecar", version, about, long_about = None)]
pub struct Config {
    /// Address to serve gRPC on. Loopback by default; binding beyond it is an explicit choice.
    #[arg(long, env = "GOALSTORE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// The system of record: `memory` (an embedded, in-process table; data is lost on exit)
    /// or `dynamodb:<table name>` (region and credentials from the standard AWS chain).
    #[arg(long, env = "GOALSTORE_TABLE", default_value = "memory")]
    pub table: TableChoice,

    /// DynamoDB endpoint override, e.g. `http://127.0.0.1:8000` for a local DynamoDB-compatible server.
    #[arg(long, env = "GOALSTORE_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,

    /// Read DynamoDB strongly consistently (the default; read-your-writes needs it) or
    /// eventually consistently (half the read units).
    #[arg(long, env = "GOALSTORE_CONSISTENT_READS", default_value_t = true, action = clap::ArgAction::Set)]
    pub consistent_reads: bool,
}

/// Which table backs the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChoice {
    /// The embedded in-process table.
    Memory,
    /// A DynamoDB table of this name.
    DynamoDb(String),
}

impl FromStr for TableChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            None if text == "memory" => Ok(TableChoice::Memory),
            Some(("dynamodb", name)) if valid_table_name(name) => {
                Ok(TableChoice::DynamoDb(name.to_owned()))
            }
            Some(("dynamodb", name)) => Err(format!(
                "`{name}` is not a DynamoDB table name (3-255 characters of A-Z a-z 0-9 _ - .)"
            )),
            _ => Err(format!(
                "`{text}` is neither `memory` nor `dynamodb:<table name>`"
            )),
        }
    }
}

fn valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let config = Config::try_parse_from(["goalstore-sidecar"]).expect("defaults parse");
        assert!(config.listen.ip().is_loopback());
        assert_eq!(config.table, TableChoice::Memory);
        assert!(config.consistent_reads);
    }

    #[test]
    fn table_choices_parse_or_name_the_problem() {
        assert_eq!(
            "dynamodb:goals-prod".parse(),
            Ok(TableChoice::DynamoDb("goals-prod".into()))
        );
        assert!("dynamodb:a".parse::<TableChoice>().is_err());
        assert!("postgres".parse::<TableChoice>().is_err());
        let error = Config::try_parse_from(["goalstore-sidecar", "--table", "redis"])
            .expect_err("not a table");
        assert!(error.to_string().contains("--table"), "{error}");
    }
}
