//! The WAL tail decision table: what the reader concludes from the bytes at one frame position,
//! and what recovery does about it.
//!
//! Invariant: recovery cuts bytes off the log only when nothing valid follows them (in that
//! segment or in a later one); anything else is reported as corruption and refuses to start,
//! because cutting it could drop an acknowledged record.
//!
//! | frame at the position                          | valid record after? | state             | action        |
//! |------------------------------------------------|---------------------|-------------------|---------------|
//! | nothing (end of segment)                       | –                   | Clean             | Accept        |
//! | zeros to the end of segment (written ahead)    | –                   | Clean             | Accept        |
//! | complete, CRC ok, LSN = expected               | –                   | (a record)        | –             |
//! | complete, CRC ok, LSN ≠ expected               | –                   | Gap               | Refuse        |
//! | < 16 bytes left                                | no                  | TornRecord        | Truncate      |
//! | header ok, LSN = expected, runs past EOF       | no                  | TornRecord        | Truncate      |
//! | complete, LSN = expected, CRC bad              | no                  | BadChecksum       | Truncate      |
//! | length > limit, or LSN ≠ expected and CRC bad or runs past EOF | no  | Garbage           | Truncate      |
//! | any of the four rows above                     | yes                 | CorruptBeforeTail | Refuse        |
//! | last segment shorter than/only a torn header   | –                   | TornSegmentHeader | RemoveSegment |

use std::path::PathBuf;

/// How the bytes at a frame position end (or don't).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFit {
    /// No bytes left in the segment.
    End,
    /// Only zero bytes left in the segment: space the writer zeroed ahead of its position
    /// (`WalConfig::preallocate_bytes`). No frame header is all zeros (LSNs start at 1).
    Zeros,
    /// Fewer bytes than a frame header.
    ShortHeader,
    /// The length field exceeds `WAL_RECORD_PAYLOAD_BYTES_MAX`.
    BadLength,
    /// The frame would run past the end of the segment.
    PastEof,
    /// The whole frame is present.
    Complete,
}

/// Everything the reader observed at one frame position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameObservation {
    /// How the frame fits in the segment.
    pub fit: FrameFit,
    /// The CRC matched (only meaningful when `fit == Complete`).
    pub crc_ok: bool,
    /// The header's LSN is the expected next LSN (meaningful for `PastEof` and `Complete`).
    pub lsn_expected: bool,
    /// A valid record follows later in the segment, or a later segment exists.
    pub valid_after: bool,
}

/// The conclusion about one frame position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A valid record: read it and go on.
    Record,
    /// The log ends here in this state.
    End(TailState),
}

/// How a WAL ends. See the table in the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TailState {
    /// Ends exactly after a valid record.
    Clean,
    /// The last record is incomplete (a write cut short by a crash).
    TornRecord,
    /// The last record is complete but its checksum does not match.
    BadChecksum,
    /// Bytes after the last valid record are not a record.
    Garbage,
    /// The last segment holds only part of its header (crash while creating it).
    TornSegmentHeader,
    /// A valid record carries an LSN other than the expected one (missing or reordered records).
    Gap,
    /// A damaged frame is followed by valid records: the middle of the log is damaged.
    CorruptBeforeTail,
}

/// What recovery does about a [`TailState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailAction {
    /// Nothing to do.
    Accept,
    /// Cut the last segment at the reported offset.
    Truncate,
    /// Delete the last segment file.
    RemoveSegment,
    /// Refuse to start: report file, offset and the `kvtool wal verify` command.
    Refuse,
}

impl TailState {
    /// The recovery action for this state.
    pub const fn action(self) -> TailAction {
        match self {
            TailState::Clean => TailAction::Accept,
            TailState::TornRecord | TailState::BadChecksum | TailState::Garbage => {
                TailAction::Truncate
            }
            TailState::TornSegmentHeader => TailAction::RemoveSegment,
            TailState::Gap | TailState::CorruptBeforeTail => TailAction::Refuse,
        }
    }
}

impl std::fmt::Display for TailState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TailState::Clean => "clean end",
            TailState::TornRecord => "torn record",
            TailState::BadChecksum => "bad checksum",
            TailState::Garbage => "garbage after the last record",
            TailState::TornSegmentHeader => "torn segment header",
            TailState::Gap => "LSN gap",
            TailState::CorruptBeforeTail => "corruption before the tail",
        })
    }
}

/// The decision table as code.
pub fn classify(o: FrameObservation) -> Verdict {
    let candidate = match o.fit {
        FrameFit::End | FrameFit::Zeros => return Verdict::End(TailState::Clean),
        FrameFit::Complete if o.crc_ok && o.lsn_expected => return Verdict::Record,
        FrameFit::Complete if o.crc_ok => return Verdict::End(TailState::Gap),
        FrameFit::Complete if o.lsn_expected => TailState::BadChecksum,
        FrameFit::Complete => TailState::Garbage,
        FrameFit::ShortHeader => TailState::TornRecord,
        FrameFit::PastEof if o.lsn_expected => TailState::TornRecord,
        FrameFit::PastEof | FrameFit::BadLength => TailState::Garbage,
    };
    if o.valid_after {
        Verdict::End(TailState::CorruptBeforeTail)
    } else {
        Verdict::End(candidate)
    }
}

/// Where and how the log ended, as found by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailReport {
    /// The state.
    pub state: TailState,
    /// The segment in which it ends (`None` for an empty log).
    pub file: Option<PathBuf>,
    /// Byte offset in `file` of the first byte not part of a valid record.
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FITS: [FrameFit; 6] = [
        FrameFit::End,
        FrameFit::Zeros,
        FrameFit::ShortHeader,
        FrameFit::BadLength,
        FrameFit::PastEof,
        FrameFit::Complete,
    ];

    /// Every input of the table: the safety rules hold for each.
    #[test]
    fn every_input_of_the_table() {
        let mut seen = std::collections::HashSet::new();
        for fit in FITS {
            for crc_ok in [false, true] {
                for lsn_expected in [false, true] {
                    for valid_after in [false, true] {
                        let o = FrameObservation {
                            fit,
                            crc_ok,
                            lsn_expected,
                            valid_after,
                        };
                        let v = classify(o);
                        // A record needs a complete, checksummed frame with the right LSN.
                        assert_eq!(
                            v == Verdict::Record,
                            fit == FrameFit::Complete && crc_ok && lsn_expected,
                            "{o:?}"
                        );
                        if let Verdict::End(state) = v {
                            seen.insert(state);
                            // Never cut off bytes that valid records follow.
                            let end = matches!(fit, FrameFit::End | FrameFit::Zeros);
                            if valid_after && !end {
                                assert_eq!(state.action(), TailAction::Refuse, "{o:?}");
                            }
                            if end {
                                assert_eq!(state, TailState::Clean);
                            }
                        }
                    }
                }
            }
        }
        // Every state but TornSegmentHeader (decided from the segment header) is reachable.
        assert_eq!(seen.len(), 6, "{seen:?}");
    }
}
