//! `config check`: validates the configuration file (and the catalog it names) and reports
//! every problem at once, each naming the field and the bad value.

use std::path::Path;

use bedrock_usage_core::pricing::normalize_model_id;

use crate::context::{load_catalog, load_config, Clock};
use crate::error::{Error, Result, EXIT_ERROR, EXIT_OK};
use crate::invalid;
use crate::output::emit;

/// The one command that loads the config itself: its job is to say what is wrong with it.
pub fn check(path: Option<&Path>) -> Result<u8> {
    let Some(path) = path else {
        invalid!("no configuration file: pass --config PATH or set BEDROCK_USAGE_CONFIG");
    };
    let cfg = match load_config(Some(path)) {
        Ok(c) => c,
        Err(Error::Config(ce)) => {
            eprintln!("error: {ce}");
            return Ok(EXIT_ERROR);
        }
        Err(e) => return Err(e),
    };
    let mut problems = Vec::new();
    let catalog = match load_catalog(&cfg, None) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!("`pricing.catalog`: {}", e.chain()));
            None
        }
    };
    if let Some(cat) = &catalog {
        let today = Clock.today();
        for (from, to) in &cfg.config.models {
            let m = normalize_model_id(to, &Default::default());
            if let Err(why) = cat.decide(&m, to, today, false) {
                problems.push(format!(
                    "`models.\"{from}\"` = `{to}`: cannot be priced: {why}"
                ));
            }
        }
    }
    if !problems.is_empty() {
        eprintln!("error: {}: {} problem(s):", path.display(), problems.len());
        for p in &problems {
            eprintln!("  - {p}");
        }
        return Ok(EXIT_ERROR);
    }
    let c = &cfg.config;
    emit(&format!(
        "{}: ok\n  metadata keys read: {}\n  aliases: {}\n  developers: {} in {} teams with cost centers\n  application profiles mapped: {}\n  shared principals listed: {}\n  price catalog: embedded{}\n",
        path.display(),
        c.metadata_keys.join(", "),
        c.aliases.len(),
        c.developers.len(),
        c.team_cost_centers.len(),
        c.models.len(),
        c.shared_principals.len(),
        c.catalog_path.as_deref().map(|p| format!(" + {p}")).unwrap_or_default()
    ))?;
    Ok(EXIT_OK)
}
