//! kvtool's commands, one module per file kind. anyhow for errors (this is a binary);
//! storage's typed errors are kept in the chain so `main` can tell corruption from misuse.

pub mod checkpoint;
pub mod logrec;
pub mod replay;
pub mod wal;

use std::fmt::Write as _;

/// What a check found.
pub enum Outcome {
    /// Nothing wrong.
    Intact,
    /// Damage found and reported on stderr.
    Damaged,
}

/// A JSON string literal for `s`.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Printable ASCII of `b`, other bytes as '.'.
pub fn ascii(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

/// A progress line on stderr for long passes, shown only when stderr is a terminal (so pipes,
/// tests and logs stay clean).
pub struct Progress {
    label: &'static str,
    enabled: bool,
    last: std::time::Instant,
}

impl Progress {
    /// Starts a progress line labelled `label`.
    pub fn new(label: &'static str) -> Self {
        use std::io::IsTerminal;
        Progress {
            label,
            enabled: std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
        }
    }

    /// Reports `count` items (and `bytes`) done; redraws at most 10 times a second.
    pub fn tick(&mut self, count: u64, bytes: u64) {
        if self.enabled && self.last.elapsed() >= std::time::Duration::from_millis(100) {
            self.last = std::time::Instant::now();
            eprint!("\r{}: {count} records, {} MiB", self.label, bytes >> 20);
        }
    }

    /// Clears the line.
    pub fn finish(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
