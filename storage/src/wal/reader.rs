//! [`WalReader`]: iterates the records of a WAL directory in LSN order and decides, with the
//! table in [`super::tail`], how the log ends.
//!
//! Invariant: every record returned has a matching CRC and the LSN one past the previous one;
//! the reader never panics and never allocates more than the file holds, whatever the bytes.

use super::record::{
    decode_frame_header, decode_segment_header, frame_crc, parse_segment_file_name,
    SegmentHeaderError, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::tail::{classify, FrameFit, FrameObservation, TailReport, TailState, Verdict};
use crate::error::{Corruption, StorageError};
use crate::io::{read_exact_at, Disk, FileHandle};
use crate::limits::{WAL_READ_AHEAD_BYTES, WAL_RECORD_PAYLOAD_BYTES_MAX, WAL_SCAN_AHEAD_BYTES_MAX};
use crate::Lsn;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// The opaque payload handed to `append`.
    pub payload: Vec<u8>,
    /// The segment file holding it.
    pub file: PathBuf,
    /// Byte offset of its frame in `file`.
    pub offset: u64,
    /// Its stored (and verified) CRC.
    pub crc: u32,
}

/// A segment file of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Full path.
    pub path: PathBuf,
    /// First LSN, from the file name.
    pub first_lsn: Lsn,
}

/// Where the log ends; produced once the reader is exhausted, consumed by `WalWriter::resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEnd {
    /// The LSN the next appended record gets.
    pub next_lsn: Lsn,
    /// The last segment, if any.
    pub last_segment: Option<SegmentInfo>,
    /// Length of the valid prefix of the last segment.
    pub valid_len: u64,
    /// How the log ends.
    pub tail: TailReport,
}

/// Lists the segment files of `dir` in LSN order. Other files are ignored.
pub fn list_segments(disk: &dyn Disk, dir: &Path) -> Result<Vec<SegmentInfo>, StorageError> {
    let names = disk.list(dir).map_err(|e| StorageError::io_at(dir, e))?;
    let mut segs: Vec<SegmentInfo> = names
        .iter()
        .filter_map(|n| {
            parse_segment_file_name(n).map(|first_lsn| SegmentInfo {
                path: dir.join(n),
                first_lsn,
            })
        })
        .collect();
    segs.sort_by_key(|s| s.first_lsn);
    Ok(segs)
}

struct OpenSegment {
    file: FileHandle,
    len: u64,
    offset: u64,
    info: SegmentInfo,
    /// Read-ahead window: `buf` holds the file's bytes from `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
}

impl OpenSegment {
    /// Fills `out` with the bytes at `offset`, through the read-ahead window.
    fn read(&mut self, out: &mut [u8], offset: u64) -> std::io::Result<()> {
        let end = offset + out.len() as u64;
        let buffered = offset >= self.buf_start && end <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            if out.len() >= WAL_READ_AHEAD_BYTES {
                return read_exact_at(self.file.as_ref(), out, offset);
            }
            let want = self
                .len
                .saturating_sub(offset)
                .min(WAL_READ_AHEAD_BYTES as u64)
                .max(out.len() as u64);
            self.buf
                .resize(usize::try_from(want).unwrap_or(out.len()), 0);
            self.buf_start = offset;
            if let Err(e) = read_exact_at(self.file.as_ref(), &mut self.buf, offset) {
                self.buf.clear();
                return Err(e);
            }
        }
        let from = usize::try_from(offset - self.buf_start).unwrap_or(usize::MAX);
        let src = self
            .buf
            .get(from..from.saturating_add(out.len()))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        out.copy_from_slice(src);
        Ok(())
    }
}

/// Reads a WAL directory (or one segment file) record by record.
pub struct WalReader {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    segments: Vec<SegmentInfo>,
    next_segment: usize,
    cur: Option<OpenSegment>,
    from: Lsn,
    expected: Option<u64>,
    end: Option<WalEnd>,
    failed: bool,
}

impl WalReader {
    /// Reads the log in `dir`, returning records with LSN ≥ `from` (older ones are still
    /// verified). `Lsn(0)` reads everything and skips the check that the log reaches back to
    /// `from`.
    pub fn open(disk: Arc<dyn Disk>, dir: &Path, from: Lsn) -> Result<Self, StorageError> {
        let mut segments = list_segments(disk.as_ref(), dir)?;
        // Start at the last segment that begins at or before `from`.
        let start = segments
            .iter()
            .rposition(|s| s.first_lsn <= from)
            .unwrap_or(0);
        segments.drain(..start);
        if let Some(first) = segments.first() {
            if from.0 > 0 && first.first_lsn > from {
                return Err(StorageError::WalCorrupt {
                    file: first.path.clone(),
                    dir: dir.to_path_buf(),
                    offset: 0,
                    reason: Corruption::LsnGap {
                        expected: from.0,
                        found: first.first_lsn.0,
                    },
                });
            }
        }
        Ok(Self::new(disk, dir.to_path_buf(), segments, from))
    }

    /// Reads a single segment file, as if it were the whole log (for `kvtool wal dump`).
    pub fn open_file(disk: Arc<dyn Disk>, path: &Path) -> Result<Self, StorageError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // A renamed copy has no LSN in its name; the header's is then trusted.
        let first_lsn = parse_segment_file_name(name).unwrap_or(Lsn(0));
        let info = SegmentInfo {
            path: path.to_path_buf(),
            first_lsn,
        };
        Ok(Self::new(
            disk,
            crate::io::parent_dir(path),
            vec![info],
            Lsn(0),
        ))
    }

    fn new(disk: Arc<dyn Disk>, dir: PathBuf, segments: Vec<SegmentInfo>, from: Lsn) -> Self {
        WalReader {
            disk,
            dir,
            segments,
            next_segment: 0,
            cur: None,
            from,
            expected: None,
            end: None,
            failed: false,
        }
    }

    /// The segments this reader visits.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// Where the log ended; `Some` once `next_record` returned `Ok(None)`.
    pub fn end(&self) -> Option<&WalEnd> {
        self.end.as_ref()
    }

    /// Reads the rest of the log without keeping payloads and returns where it ends.
    pub fn into_end(mut self) -> Result<WalEnd, StorageError> {
        while self.next_record()?.is_some() {}
        self.end.take().ok_or(StorageError::WalClosed)
    }

    fn corrupt(&mut self, file: &Path, offset: u64, reason: Corruption) -> StorageError {
        self.failed = true;
        StorageError::WalCorrupt {
            file: file.to_path_buf(),
            dir: self.dir.clone(),
            offset,
            reason,
        }
    }

    fn finish(&mut self, state: TailState, info: Option<SegmentInfo>, offset: u64) {
        let next = self
            .expected
            .unwrap_or_else(|| info.as_ref().map_or(self.from.0.max(1), |i| i.first_lsn.0));
        self.end = Some(WalEnd {
            next_lsn: Lsn(next),
            valid_len: offset,
            tail: TailReport {
                state,
                file: info.as_ref().map(|i| i.path.clone()),
                offset,
            },
            last_segment: info,
        });
    }

    /// Opens the next segment and checks its header. Returns false when the log ended there.
    fn open_next_segment(&mut self) -> Result<bool, StorageError> {
        let Some(info) = self.segments.get(self.next_segment).cloned() else {
            let last = self.segments.last().cloned();
            let len = match &last {
                Some(l) => self
                    .disk
                    .open_read(&l.path)
                    .and_then(|f| f.len())
                    .map_err(|e| StorageError::io_at(&l.path, e))?,
                None => 0,
            };
            self.finish(TailState::Clean, last, len);
            return Ok(false);
        };
        self.next_segment += 1;
        let is_last = self.next_segment == self.segments.len();
        let file = self
            .disk
            .open_read(&info.path)
            .map_err(|e| StorageError::io_at(&info.path, e))?;
        let len = file.len().map_err(|e| StorageError::io_at(&info.path, e))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let header_read = if len >= SEGMENT_HEADER_LEN as u64 {
            read_exact_at(file.as_ref(), &mut header, 0)
                .map_err(|e| StorageError::io_at(&info.path, e))?;
            Some(decode_segment_header(&header))
        } else {
            None
        };
        let first = match header_read {
            Some(Ok(first)) => first,
            // Only a header that never finished being written may be dropped: the writer
            // syncs a new segment's header before any record goes into it.
            Some(Err(_)) | None if is_last && len <= SEGMENT_HEADER_LEN as u64 => {
                if self.expected.is_none() {
                    self.expected = Some(info.first_lsn.0.max(self.from.0));
                }
                self.finish(TailState::TornSegmentHeader, Some(info), 0);
                return Ok(false);
            }
            None => return Err(self.corrupt(&info.path, 0, Corruption::Truncated)),
            Some(Err(e)) => {
                let reason = match e {
                    SegmentHeaderError::BadMagic => Corruption::BadMagic {
                        expected: "WAL segment",
                    },
                    SegmentHeaderError::BadChecksum { stored, computed } => {
                        Corruption::BadChecksum { stored, computed }
                    }
                    SegmentHeaderError::UnsupportedVersion(v) => Corruption::UnsupportedVersion(v),
                };
                return Err(self.corrupt(&info.path, 0, reason));
            }
        };
        if info.first_lsn.0 != 0 && info.first_lsn != first {
            let reason = Corruption::NameMismatch {
                name: info.first_lsn.0,
                header: first.0,
            };
            return Err(self.corrupt(&info.path, 0, reason));
        }
        match self.expected {
            Some(expected) if expected != first.0 => {
                let reason = Corruption::LsnGap {
                    expected,
                    found: first.0,
                };
                return Err(self.corrupt(&info.path, 0, reason));
            }
            _ => self.expected = Some(first.0),
        }
        self.cur = Some(OpenSegment {
            file,
            len,
            offset: SEGMENT_HEADER_LEN as u64,
            info,
            buf: Vec::new(),
            buf_start: 0,
        });
        Ok(true)
    }

    /// The next record, `Ok(None)` at the end of the log (then [`WalReader::end`] says how it
    /// ended), or an error for corruption recovery must not cut off.
    pub fn next_record(&mut self) -> Result<Option<WalRecord>, StorageError> {
        loop {
            if self.failed || self.end.is_some() {
                return Ok(None);
            }
            let Some(mut seg) = self.cur.take() else {
                if self.open_next_segment()? {
                    continue;
                }
                return Ok(None);
            };
            let expected = self.expected.unwrap_or(0);
            let (obs, frame) = observe(&mut seg, expected)?;
            if matches!(obs.fit, FrameFit::End | FrameFit::Zeros) {
                if self.next_segment < self.segments.len() {
                    continue; // on to the next segment
                }
                self.finish(TailState::Clean, Some(seg.info), seg.offset);
                return Ok(None);
            }
            let obs = if obs.fit == FrameFit::Complete && obs.crc_ok && obs.lsn_expected {
                obs
            } else {
                let later_segment = self.next_segment < self.segments.len();
                let valid_at = if later_segment {
                    None
                } else {
                    scan_ahead(&seg, expected)?
                };
                let valid_after = later_segment || valid_at.is_some();
                let obs = FrameObservation { valid_after, ..obs };
                if let Verdict::End(state) = classify(obs) {
                    let frame_state = classify(FrameObservation {
                        valid_after: false,
                        ..obs
                    });
                    let frame_state = match frame_state {
                        Verdict::End(s) => s,
                        Verdict::Record => TailState::Clean,
                    };
                    match state {
                        TailState::Gap => {
                            let found = frame.map_or(0, |f| f.0.lsn.0);
                            let reason = Corruption::LsnGap { expected, found };
                            return Err(self.corrupt(&seg.info.path, seg.offset, reason));
                        }
                        TailState::CorruptBeforeTail => {
                            let reason = match valid_at {
                                Some(at) => Corruption::BeforeTail {
                                    frame: frame_state,
                                    valid_at: at,
                                },
                                None => Corruption::BeforeLaterSegment { frame: frame_state },
                            };
                            return Err(self.corrupt(&seg.info.path, seg.offset, reason));
                        }
                        _ => {
                            tracing::warn!(
                                file = %seg.info.path.display(),
                                offset = seg.offset,
                                reason = %state,
                                "WAL ends in a damaged tail"
                            );
                            self.finish(state, Some(seg.info), seg.offset);
                            return Ok(None);
                        }
                    }
                }
                obs
            };
            debug_assert!(obs.fit == FrameFit::Complete);
            let Some((mut record, frame_len)) = frame else {
                return Ok(None);
            };
            record.file = seg.info.path.clone();
            let lsn = record.lsn;
            self.expected = Some(lsn.0 + 1);
            self.cur = Some(OpenSegment {
                offset: seg.offset + frame_len,
                ..seg
            });
            if lsn >= self.from {
                return Ok(Some(record));
            }
        }
    }
}

impl Iterator for WalReader {
    type Item = Result<WalRecord, StorageError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Looks at the frame at `seg.offset`; for a complete frame also returns it with its length.
#[allow(clippy::type_complexity)]
fn observe(
    seg: &mut OpenSegment,
    expected: u64,
) -> Result<(FrameObservation, Option<(WalRecord, u64)>), StorageError> {
    let remaining = seg.len.saturating_sub(seg.offset);
    let mut obs = FrameObservation {
        fit: FrameFit::End,
        crc_ok: false,
        lsn_expected: false,
        valid_after: false,
    };
    if remaining == 0 {
        return Ok((obs, None));
    }
    let mut h = [0u8; RECORD_HEADER_LEN];
    let n = usize::try_from(remaining).map_or(RECORD_HEADER_LEN, |r| r.min(RECORD_HEADER_LEN));
    seg.read(h.get_mut(..n).unwrap_or_default(), seg.offset)
        .map_err(|e| StorageError::io_at(&seg.info.path, e))?;
    // Zeros written ahead may leave less than a frame header at the end of a segment, too.
    if h == [0u8; RECORD_HEADER_LEN] && rest_is_zero(seg)? {
        obs.fit = FrameFit::Zeros;
        return Ok((obs, None));
    }
    if n < RECORD_HEADER_LEN {
        obs.fit = FrameFit::ShortHeader;
        return Ok((obs, None));
    }
    let header = decode_frame_header(&h);
    obs.lsn_expected = header.lsn == expected;
    if header.length as usize > WAL_RECORD_PAYLOAD_BYTES_MAX {
        obs.fit = FrameFit::BadLength;
        return Ok((obs, None));
    }
    let frame_len = RECORD_HEADER_LEN as u64 + u64::from(header.length);
    if frame_len > remaining {
        obs.fit = FrameFit::PastEof;
        return Ok((obs, None));
    }
    obs.fit = FrameFit::Complete;
    // Bounded by the file's own length, checked just above.
    let mut payload = vec![0u8; header.length as usize];
    seg.read(&mut payload, seg.offset + RECORD_HEADER_LEN as u64)
        .map_err(|e| StorageError::io_at(&seg.info.path, e))?;
    obs.crc_ok = frame_crc(header.length, header.lsn, &payload) == header.crc;
    let record = WalRecord {
        lsn: Lsn(header.lsn),
        payload,
        file: PathBuf::new(),
        offset: seg.offset,
        crc: header.crc,
    };
    Ok((obs, Some((record, frame_len))))
}

/// True if every byte from `seg.offset` to the end of the segment is zero.
fn rest_is_zero(seg: &OpenSegment) -> Result<bool, StorageError> {
    let mut buf = vec![0u8; WAL_READ_AHEAD_BYTES];
    let mut at = seg.offset;
    while at < seg.len {
        let n = usize::try_from(seg.len - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        read_exact_at(seg.file.as_ref(), chunk, at)
            .map_err(|e| StorageError::io_at(&seg.info.path, e))?;
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Looks for a valid frame with LSN ≥ `expected` after the damaged one at `seg.offset`;
/// returns its offset. Reads at most `WAL_SCAN_AHEAD_BYTES_MAX` bytes.
fn scan_ahead(seg: &OpenSegment, expected: u64) -> Result<Option<u64>, StorageError> {
    let start = seg.offset + 1;
    if start >= seg.len {
        return Ok(None);
    }
    let n = (seg.len - start).min(WAL_SCAN_AHEAD_BYTES_MAX);
    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
    read_exact_at(seg.file.as_ref(), &mut buf, start)
        .map_err(|e| StorageError::io_at(&seg.info.path, e))?;
    for p in 0..buf.len() {
        let Some(h) = buf
            .get(p..p + RECORD_HEADER_LEN)
            .and_then(|s| <&[u8; RECORD_HEADER_LEN]>::try_from(s).ok())
        else {
            break;
        };
        let header = decode_frame_header(h);
        // Cheap filters first: a plausible LSN and a frame that fits.
        if header.lsn < expected || header.lsn - expected > u64::from(u32::MAX) {
            continue;
        }
        let body = p + RECORD_HEADER_LEN;
        let Some(payload) = buf.get(body..body + header.length as usize) else {
            continue;
        };
        if frame_crc(header.length, header.lsn, payload) == header.crc {
            return Ok(Some(start + p as u64));
        }
    }
    Ok(None)
}
