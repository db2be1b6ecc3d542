//! weft's error type. Every variant names what the user must look at (file and JSON path,
//! table and partition, expression) and, where one exists, the fix; [`Error::kind`] says
//! whose problem it is and [`Error::retry`] whether trying again can help, so a long-running
//! process can tell "back off and retry" from "report this input and carry on" from "stop".

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the warehouse a data problem was found.
#[derive(Debug, Clone, Default)]
pub struct Location {
    pub table: String,
    pub partition: Option<String>,
    pub column: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table `{}`", self.table)?;
        if let Some(p) = &self.partition {
            write!(f, ", partition {p}")?;
        }
        if let Some(c) = &self.column {
            write!(f, ", column `{c}`")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file is malformed or inconsistent.
    #[error("config {file}: at `{path}`: {message}")]
    Config {
        file: String,
        path: String,
        message: String,
    },

    /// Something the command needs does not exist.
    #[error("{what} not found; {fix}")]
    NotFound { what: String, fix: String },

    /// Data in the warehouse cannot be used as asked.
    #[error("{location}: {message}{}", fix_suffix(fix))]
    Data {
        location: Location,
        message: String,
        fix: Option<String>,
    },

    /// A SQL expression or query failed to plan or run.
    #[error("{context}: {message}{}", fix_suffix(fix))]
    Sql {
        context: String,
        message: String,
        fix: Option<String>,
    },

    /// A command-line argument or combination of settings is invalid.
    #[error("{0}")]
    Usage(String),

    /// A feature the config asks for is not available in this version of weft.
    #[error("{what} is not supported yet ({detail})")]
    Unsupported { what: String, detail: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    #[error("{context}: {source}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// A service weft talks to failed: a Kafka broker, Redis, an HTTP handler.
    #[error("{service}: {message}")]
    External { service: String, message: String },

    /// weft itself failed (a dataflow worker died, an invariant broke): a bug to report.
    #[error("internal error: {0}")]
    Internal(String),

    /// An error raised in a dataflow worker (perhaps of another process of a cluster) and
    /// carried back as text, with its kind.
    #[error("{message}")]
    Worker { kind: ErrorKind, message: String },

    /// Several independent problems, reported together.
    #[error("{} problems:\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
}

fn fix_suffix(fix: &Option<String>) -> String {
    match fix {
        Some(f) => format!("; fix: {f}"),
        None => String::new(),
    }
}

/// Whose problem an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// A config, argument or SQL expression the user wrote: fix it and run again.
    User,
    /// Data in the warehouse (a partition, a column, a table that is missing): fix or land
    /// the input; other pipelines are unaffected.
    Data,
    /// A service or the file system failed: retrying later may succeed.
    External,
    /// weft failed: a bug; the process should stop.
    Internal,
}

impl ErrorKind {
    /// The lower-case name used in metrics and status (`user`, `data`, `external`, `internal`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::User => "user",
            ErrorKind::Data => "data",
            ErrorKind::External => "external",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind [`ErrorKind::as_str`] names (anything else is internal).
    pub fn parse(s: &str) -> ErrorKind {
        match s {
            "user" => ErrorKind::User,
            "data" => ErrorKind::Data,
            "external" => ErrorKind::External,
            _ => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether trying the same work again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Only a change to the input or config helps.
    No,
    /// Back off and try again (a service may come back, a file may finish landing).
    WithBackoff,
}

impl Error {
    /// Whose problem this is (for several problems: the most severe kind among them).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. }
            | Error::Usage(_)
            | Error::Unsupported { .. }
            | Error::Sql { .. } => ErrorKind::User,
            Error::NotFound { .. }
            | Error::Data { .. }
            | Error::Arrow { .. }
            | Error::Parquet { .. } => ErrorKind::Data,
            Error::Io { .. } | Error::External { .. } => ErrorKind::External,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Worker { kind, .. } => *kind,
            Error::Many(errors) => errors
                .iter()
                .map(Error::kind)
                .max()
                .unwrap_or(ErrorKind::User),
        }
    }

    /// Whether retrying can help: failures of services and the file system, yes; bad
    /// configs, bad data and bugs, no.
    pub fn retry(&self) -> Retry {
        match self.kind() {
            ErrorKind::External => Retry::WithBackoff,
            _ => Retry::No,
        }
    }

    /// A service failure (`service` names it: "Kafka broker localhost:9092", "Redis", …).
    pub fn external(service: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::External {
            service: service.into(),
            message: message.to_string(),
        }
    }

    /// A failure of weft itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }
    pub fn parquet(context: impl Into<String>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            context: context.into(),
            source,
        }
    }
    pub fn data(table: &str, partition: Option<&str>, message: impl Into<String>) -> Self {
        Error::Data {
            location: Location {
                table: table.to_string(),
                partition: partition.map(str::to_string),
                column: None,
            },
            message: message.into(),
            fix: None,
        }
    }
    /// Attaches a fix to a data or SQL error.
    pub fn with_fix(mut self, f: impl Into<String>) -> Self {
        match &mut self {
            Error::Data { fix, .. } | Error::Sql { fix, .. } => *fix = Some(f.into()),
            _ => {}
        }
        self
    }
    /// Collapses a list of errors: none → Ok, one → itself, several → `Many`.
    pub fn collect(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.pop().unwrap()),
            _ => Err(Error::Many(errors)),
        }
    }
}
