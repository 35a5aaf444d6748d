//! DEL key [key ...]
use bytes::Bytes;
use txn::{KeyWrite, Transaction};

use crate::cmd::spec::flags::*;
use crate::cmd::{
    live, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx, Fast, FastCx,
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
    let deleted = cx.shared.engine.update(cx.db, key, false, |current| {
        let existed = current.is_some();
        Ok::<_, CmdError>((existed.then_some(KeyWrite::Delete), i64::from(existed)))
    });
    Some(deleted.map(|(n, info)| Fast::new(Frame::Integer(n), info)))
}

impl DataCommand for Cmd {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let mut n = 0;
        for key in &self.keys {
            if live(tx, cx, key)?.is_some() {
                n += 1;
                tx.delete(cx.db, key)?;
            }
        }
        Ok(Frame::Integer(n))
    }
}
