//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
//!
//! A port of Redis's dynamic-programming LCS, including the exact order in which IDX ranges
//! are emitted (from the end of the strings backwards).
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "lcs",
    -3,
    READONLY | MAY_BLOCK | READS_VALUE,
    "string",
    "Finds the longest common substring.",
)
.keys(1, 1, 1);

/// LCS.
pub struct Lcs {
    a: Bytes,
    b: Bytes,
    len: bool,
    idx: bool,
    min_match_len: i64,
    with_match_len: bool,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let a = args.next_bytes()?;
    let b = args.next_bytes()?;
    let mut lcs = Lcs {
        a,
        b,
        len: false,
        idx: false,
        min_match_len: 0,
        with_match_len: false,
    };
    while let Some(opt) = args.next_upper() {
        match opt.as_str() {
            "LEN" => lcs.len = true,
            "IDX" => lcs.idx = true,
            "WITHMATCHLEN" => lcs.with_match_len = true,
            "MINMATCHLEN" => lcs.min_match_len = args.next_i64()?.max(0),
            _ => return Err(CmdError::Syntax),
        }
    }
    if lcs.len && lcs.idx {
        return Err(CmdError::Static(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    Ok(Command::data(lcs))
}

impl DataCommand for Lcs {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let a = get_string(tx, cx, &self.a)?.unwrap_or_default();
        let b = get_string(tx, cx, &self.b)?.unwrap_or_default();
        let cells = (a.len() as u64 + 1).saturating_mul(b.len() as u64 + 1);
        if cells.saturating_mul(4) > cx.shared.config.read().proto_max_bulk_len_bytes {
            return Err(CmdError::Static(
                "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
            ));
        }
        Ok(self.compute(&a, &b))
    }
}

impl Lcs {
    fn compute(&self, a: &[u8], b: &[u8]) -> Frame {
        let (alen, blen) = (a.len(), b.len());
        let width = blen + 1;
        let mut table = vec![0u32; (alen + 1) * width];
        let at = |t: &[u32], i: usize, j: usize| t.get(i * width + j).copied().unwrap_or(0);
        for i in 1..=alen {
            for j in 1..=blen {
                let v = if a.get(i - 1) == b.get(j - 1) {
                    at(&table, i - 1, j - 1) + 1
                } else {
                    at(&table, i - 1, j).max(at(&table, i, j - 1))
                };
                if let Some(cell) = table.get_mut(i * width + j) {
                    *cell = v;
                }
            }
        }
        let total = at(&table, alen, blen) as usize;
        let mut result = vec![0u8; total];
        let mut matches = Vec::new();
        let (mut i, mut j, mut idx) = (alen, blen, total);
        let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0usize, 0usize, 0usize);
        while i > 0 && j > 0 {
            let mut emit = false;
            if a.get(i - 1) == b.get(j - 1) {
                if let (Some(slot), Some(&c)) = (result.get_mut(idx.wrapping_sub(1)), a.get(i - 1))
                {
                    *slot = c;
                }
                if a_start == alen {
                    (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
                } else if a_start == i && b_start == j {
                    a_start -= 1;
                    b_start -= 1;
                } else {
                    emit = true;
                }
                if a_start == 0 || b_start == 0 {
                    emit = true;
                }
                idx = idx.saturating_sub(1);
                i -= 1;
                j -= 1;
            } else {
                if at(&table, i - 1, j) > at(&table, i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                if a_start != alen {
                    emit = true;
                }
            }
            if emit {
                let match_len = (a_end - a_start + 1) as i64;
                if self.min_match_len == 0 || match_len >= self.min_match_len {
                    let range = |s: usize, e: usize| {
                        Frame::Array(vec![Frame::Integer(s as i64), Frame::Integer(e as i64)])
                    };
                    let mut m = vec![range(a_start, a_end), range(b_start, b_end)];
                    if self.with_match_len {
                        m.push(Frame::Integer(match_len));
                    }
                    matches.push(Frame::Array(m));
                }
                a_start = alen;
            }
        }
        if self.idx {
            Frame::Map(vec![
                (Frame::bulk_static("matches"), Frame::Array(matches)),
                (Frame::bulk_static("len"), Frame::Integer(total as i64)),
            ])
        } else if self.len {
            Frame::Integer(total as i64)
        } else {
            Frame::Bulk(Bytes::from(result))
        }
    }
}
