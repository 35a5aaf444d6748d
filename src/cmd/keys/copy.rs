//! COPY source destination [DB destination-db] [REPLACE]
use bytes::Bytes;
use txn::{DbIndex, Expiry, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{live, parse_db, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "copy",
    -3,
    WRITE | DENYOOM,
    "generic",
    "Copies the value of a key to a new key.",
)
.keys(1, 2, 1);

/// COPY.
pub struct Copy {
    from: Bytes,
    to: Bytes,
    db: Option<Bytes>,
    replace: bool,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    let from = args.next_bytes()?;
    let to = args.next_bytes()?;
    let mut copy = Copy {
        from,
        to,
        db: None,
        replace: false,
    };
    while let Some(opt) = args.next_upper() {
        match opt.as_str() {
            "REPLACE" => copy.replace = true,
            "DB" => copy.db = Some(args.next_bytes()?),
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok(Command::data(copy))
}

impl DataCommand for Copy {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let dst_db: DbIndex = match &self.db {
            Some(arg) => parse_db(cx.shared, arg)?,
            None => cx.db,
        };
        if dst_db == cx.db && self.from == self.to {
            return Err(CmdError::Static(
                "ERR source and destination objects are the same",
            ));
        }
        let Some(entry) = live(tx, cx, &self.from)? else {
            return Ok(Frame::Integer(0));
        };
        let dst_cx = DataCx {
            db: dst_db,
            now_ms: cx.now_ms,
            shared: cx.shared,
        };
        if !self.replace && live(tx, &dst_cx, &self.to)?.is_some() {
            return Ok(Frame::Integer(0));
        }
        let expiry = entry.expire_at_ms.map_or(Expiry::Persist, Expiry::At);
        tx.put(dst_db, &self.to, &entry.value, expiry)?;
        Ok(Frame::Integer(1))
    }
}
