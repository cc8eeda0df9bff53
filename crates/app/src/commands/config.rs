//! `config check`: validates the configuration file (and the catalog it names) and reports
//! every problem at once, each naming the field and the bad value.

use std::path::Path;

use bedrock_usage_core::pricing::normalize_model_id;

use bedrock_usage_core::{Config, PriceCatalog};

use crate::context::{load_catalog, Clock, LoadedConfig};
use crate::error::{Error, Result, EXIT_ERROR, EXIT_OK};
use crate::invalid;
use crate::output::emit;

/// The one command that loads the config itself: its job is to say what is wrong with it.
pub fn check(path: Option<&Path>) -> Result<u8> {
    let Some(path) = path else {
        invalid!("no configuration file: pass --config PATH or set BEDROCK_USAGE_CONFIG");
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        what: "cannot read the config file",
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    // Every problem at once: the sections' types, the checks, the catalog and the [models]
    // targets it must price, whatever else is wrong.
    let (raw, mut problems) = match Config::read(&text, &origin) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_ERROR);
        }
    };
    let models: Vec<(String, String)> = raw.models.clone().into_iter().collect();
    let catalog_path = raw.pricing.catalog.clone();
    let config = match Config::from_raw(raw) {
        Ok(c) => Some(c),
        Err(more) => {
            problems.extend(more);
            None
        }
    };
    let loaded = LoadedConfig {
        config: {
            let mut c = Config::defaults();
            c.catalog_path = catalog_path;
            c
        },
        path: Some(path.to_path_buf()),
    };
    // The [models] targets are checked against the catalog as configured, or the embedded one
    // if that cannot be read.
    let catalog = match load_catalog(&loaded, None) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!("`pricing.catalog`: {}", e.chain()));
            Some(PriceCatalog::embedded())
        }
    };
    if let Some(cat) = &catalog {
        let today = Clock::from_env()?.today();
        for (from, to) in &models {
            let m = normalize_model_id(to, &Default::default());
            if let Err(why) = cat.decide(&m, to, "", today, Default::default()) {
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
    let Some(c) = &config else {
        return Ok(EXIT_ERROR);
    };
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
