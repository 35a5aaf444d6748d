//! `ArgCursor`: walks a command's arguments, converting with Redis's rules and errors.
//!
//! Invariant: every accessor returns a typed [`CmdError`] instead of panicking, so no client
//! input can crash a connection.

use bytes::Bytes;

use super::CmdError;
use crate::resp::parse_i64;

/// The arguments of one command after its name.
#[derive(Debug)]
pub struct ArgCursor {
    args: std::vec::IntoIter<Bytes>,
}

impl ArgCursor {
    /// Wraps the arguments (without the command name).
    pub fn new(args: Vec<Bytes>) -> Self {
        ArgCursor {
            args: args.into_iter(),
        }
    }

    /// The next argument, or a syntax error.
    pub fn next_bytes(&mut self) -> Result<Bytes, CmdError> {
        self.args.next().ok_or(CmdError::Syntax)
    }

    /// The next argument if any.
    pub fn next_opt(&mut self) -> Option<Bytes> {
        self.args.next()
    }

    /// The next argument as an `i64` (`string2ll` rules).
    pub fn next_i64(&mut self) -> Result<i64, CmdError> {
        parse_int(&self.next_bytes()?)
    }

    /// The next argument uppercased, for option keywords.
    pub fn next_upper(&mut self) -> Option<String> {
        self.args
            .next()
            .map(|b| String::from_utf8_lossy(&b).to_ascii_uppercase())
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.args.len()
    }

    /// All remaining arguments.
    pub fn rest(&mut self) -> Vec<Bytes> {
        self.args.by_ref().collect()
    }

    /// Fails with a syntax error if anything is left.
    pub fn finish(&mut self) -> Result<(), CmdError> {
        if self.args.len() == 0 {
            Ok(())
        } else {
            Err(CmdError::Syntax)
        }
    }
}

/// Parses an integer argument like Redis's `getLongLongFromObject`.
pub fn parse_int(b: &[u8]) -> Result<i64, CmdError> {
    parse_i64(b).ok_or(CmdError::NotInteger)
}

/// Parses a float argument like Redis's `getLongDoubleFromObject` (no spaces, no NaN).
pub fn parse_float(b: &[u8]) -> Result<f64, CmdError> {
    let s = std::str::from_utf8(b).map_err(|_| CmdError::NotFloat)?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err(CmdError::NotFloat);
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().map_err(|_| CmdError::NotFloat)?,
    };
    if v.is_nan() {
        return Err(CmdError::NotFloat);
    }
    Ok(v)
}
