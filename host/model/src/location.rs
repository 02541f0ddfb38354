//! Where a value of a user's file is: file, line, column.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Where a value starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file, as the user named it (or as an import resolved it).
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl Location {
    /// The start of `file`.
    pub fn start_of(file: Arc<Path>) -> Self {
        Location {
            file,
            line: 1,
            column: 1,
        }
    }
}
