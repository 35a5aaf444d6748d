//! DEL key [key ...]
use bytes::Bytes;
use txn::Transaction;

use crate::cmd::spec::flags::*;
use crate::cmd::{
    peek_meta, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx, Fast, FastCx,
};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec =
    CommandSpec::new("del", -2, WRITE, "generic", "Deletes one or more keys.").keys(1, -1, 1);

/// DEL.
pub struct Cmd {
    keys: Vec<Bytes>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(Cmd { keys: args.rest() }))
}

/// The fast path for one key: one `Engine::update` (read and delete under the commit lock).
/// Several keys take the general path.
pub fn fast(args: &[Bytes], cx: &FastCx<'_>) -> Option<Result<Fast, CmdError>> {
    let [key] = args else { return None };
    // Existence only: a value on SSD is not read to delete it.
    let deleted = cx.shared.engine.delete_one(cx.db, key);
    Some(
        deleted
            .map(|(existed, info)| Fast::new(Frame::Integer(i64::from(existed)), info))
            .map_err(CmdError::from),
    )
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let mut n = 0;
        for key in &self.keys {
            if peek_meta(tx, cx, key)?.is_some() {
                n += 1;
                tx.delete(cx.db, key)?;
            }
        }
        Ok(Frame::Integer(n))
    }
}
