//! weft's error type. Every variant names what the user must look at (file and JSON path,
//! table and partition, expression) and, where one exists, the fix.

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

impl Error {
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
