//! MGET key [key ...]: one snapshot across all keys
use bytes::Bytes;
use txn::{Transaction, TxnError};

use crate::cmd::spec::flags::*;
use crate::cmd::{get_string, ArgCursor, CmdError, Command, CommandSpec, DataCommand, DataCx};
use crate::resp::Frame;

/// Metadata.
pub const SPEC: CommandSpec = CommandSpec::new(
    "mget",
    -2,
    READONLY | FAST | READS_VALUE | COUNTS_LOOKUPS,
    "string",
    "Atomically returns the string values of one or more keys.",
)
.keys(1, -1, 1);

/// MGET.
pub struct MGet {
    keys: Vec<Bytes>,
}

/// Parses the arguments after the name.
pub fn parse(mut args: ArgCursor) -> Result<Command, CmdError> {
    Ok(Command::data(MGet { keys: args.rest() }))
}

impl DataCommand for MGet {
    fn execute(&self, tx: &mut Transaction, cx: &DataCx<'_>) -> Result<Frame, CmdError> {
        let mut out = Vec::with_capacity(self.keys.len());
        // Values on SSD: every one this run meets, so the connection fetches them together
        // and the command runs again once, not once per cold key.
        let mut missed = Vec::new();
        for key in &self.keys {
            match get_string(tx, cx, key) {
                Ok(value) => out.push(Frame::bulk_or_null(value)),
                Err(CmdError::Txn(e)) if e.value_not_resident().is_some() => {
                    missed.extend(e.value_not_resident());
                }
                Err(e) => return Err(e),
            }
        }
        if !missed.is_empty() {
            return Err(CmdError::Txn(TxnError::ValuesNotResident(missed)));
        }
        Ok(Frame::Array(out))
    }
}
