//! `store check` and `store backup`: is the store sound, and a copy that is.

use std::path::Path;

use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::invalid;
use crate::output::{Cell, Records};

/// `store check`: exit 1 if any check failed.
pub fn check(ctx: &Context, full: bool) -> Result<u8> {
    let store = ctx.existing_store()?;
    let checks = store.check(full)?;
    Records {
        fields: ["check", "status", "detail"].map(String::from).to_vec(),
        rows: checks
            .iter()
            .map(|c| {
                vec![
                    Cell::text(&c.name),
                    Cell::text(if c.ok { "ok" } else { "FAIL" }),
                    Cell::text(&c.detail),
                ]
            })
            .collect(),
    }
    .print(ctx.format)?;
    Ok(if checks.iter().all(|c| c.ok) {
        EXIT_OK
    } else {
        EXIT_CHECK_FAILED
    })
}

/// `store backup PATH`.
pub fn backup(ctx: &Context, to: &Path) -> Result<u8> {
    if to.exists() {
        invalid!("{} exists: a backup goes to a new file", to.display());
    }
    let store = ctx.existing_store()?;
    store.backup(to)?;
    eprintln!("backed up to {}", to.display());
    Ok(EXIT_OK)
}
