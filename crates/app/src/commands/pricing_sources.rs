//! `pricing import-aws | diff | check`: AWS's own prices as an override catalog, what a catalog
//! file changes, and a second opinion from LiteLLM's price map. The mapping is in the core
//! (`bedrock_usage_core::pricing_sources`); this reads the files and prints.

use std::path::Path;
use std::time::Duration;

use bedrock_usage_core::pricing::PriceCatalog;
use bedrock_usage_core::pricing_sources::{check_litellm, diff, import_aws};
use bedrock_usage_core::time::format_date;

use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::invalid;
use crate::output::{emit, Cell, Format, Records, Table};

/// Where AWS publishes the current bulk offer file for Amazon Bedrock (public, no credentials).
pub const OFFER_URL: &str =
    "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBedrock/current/index.json";

fn read_json(path: &Path, what: &str) -> Result<serde_json::Value> {
    let text = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("{}: cannot read {what}: {e}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::Invalid(format!(
            "{}: not JSON ({what}): line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// Prints `rec` as a table (with `headers` and right-aligned `right` columns) or as records.
fn print_records(format: Format, rec: &Records, right: &[bool]) -> Result<()> {
    match format {
        Format::Json | Format::Csv | Format::Aws => rec.print(format)?,
        Format::Table | Format::Markdown | Format::Html => {
            let t = Table {
                headers: rec.fields.clone(),
                right: right.to_vec(),
                rows: rec
                    .rows
                    .iter()
                    .map(|r| r.iter().map(Cell::display).collect())
                    .collect(),
                footer: None,
            };
            t.print(format)?;
        }
    }
    Ok(())
}

/// `pricing import-aws [FILE | --api [--offer-url URL]] [--output FILE]`.
pub fn import(
    ctx: &Context,
    file: Option<&Path>,
    api: bool,
    offer_url: Option<&str>,
    output: Option<&Path>,
) -> Result<u8> {
    let offer = match (file, api) {
        (Some(f), false) => read_json(f, "an AWS Price List offer file")?,
        (None, true) => {
            let url = offer_url.unwrap_or(OFFER_URL);
            eprintln!("downloading the Amazon Bedrock offer file from {url} ...");
            let (status, body) =
                crate::publish::http::get_blocking(url, &[], Duration::from_secs(300))
                    .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
            if status != 200 {
                invalid!("{url}: HTTP {status}");
            }
            serde_json::from_slice(&body)
                .map_err(|e| Error::Invalid(format!("{url}: not JSON: {e}")))?
        }
        (Some(_), true) => invalid!("give an offer FILE or --api, not both"),
        (None, false) => invalid!(
            "give an offer FILE (the Price List bulk file for Amazon Bedrock, from {OFFER_URL}) or --api to download it"
        ),
    };
    let origin = file.map_or_else(
        || offer_url.unwrap_or(OFFER_URL).to_string(),
        |f| f.display().to_string(),
    );
    let got =
        import_aws(&offer, &ctx.catalog).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
    // The file must read back as a catalog: what is written is what will be used.
    PriceCatalog::parse(&got.catalog_toml, "the imported catalog").map_err(|e| {
        Error::Invalid(format!(
            "the catalog written from {origin} does not parse ({e}): please report this"
        ))
    })?;
    match output {
        Some(p) => {
            std::fs::write(p, &got.catalog_toml)
                .map_err(|e| Error::Invalid(format!("{}: cannot write: {e}", p.display())))?;
        }
        None => print!("{}", got.catalog_toml),
    }
    // The summary goes where the catalog does not.
    let mut say = format!(
        "{} prices of {} Claude model(s) mapped ({}); {} product(s) of other providers skipped.\n",
        got.mapped.len(),
        got.models.len(),
        got.models.join(", "),
        got.other_products
    );
    if !got.new_models.is_empty() {
        say.push_str(&format!(
            "New to the catalog: {}\n",
            got.new_models.join(", ")
        ));
    }
    for n in &got.notes {
        say.push_str(&format!("note: {n}\n"));
    }
    if !got.unmapped.is_empty() {
        say.push_str(&format!(
            "{} usage type(s) not mapped (never guessed):\n",
            got.unmapped.len()
        ));
        for u in &got.unmapped {
            say.push_str(&format!("  {} ({}): {}\n", u.usage_type, u.sku, u.why));
        }
    }
    if let Some(p) = output {
        say.push_str(&format!(
            "Wrote {}. Review it with `bedrock-usage pricing diff {}`, then set `[pricing] catalog` to it.\n",
            p.display(),
            p.display()
        ));
        emit(&say)?;
    } else {
        eprint!("{say}");
    }
    Ok(EXIT_OK)
}

/// `-` (no such rate or rule) as an empty cell.
fn none_or(v: &str) -> Cell {
    if v == "-" {
        Cell::Null
    } else {
        Cell::text(v)
    }
}

/// `pricing diff FILE`: what FILE changes against the embedded catalog.
pub fn diff_file(ctx: &Context, file: &Path) -> Result<u8> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Invalid(format!("{}: cannot read: {e}", file.display())))?;
    let new = PriceCatalog::parse(&text, &file.display().to_string())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let d = diff(&PriceCatalog::embedded(), &new);
    if d.is_empty() && matches!(ctx.format, Format::Table | Format::Markdown) {
        emit(&format!(
            "{} changes nothing against the embedded catalog\n",
            file.display()
        ))?;
        return Ok(EXIT_OK);
    }
    let rec = Records {
        fields: ["model", "from", "what", "embedded", "file"]
            .map(String::from)
            .to_vec(),
        rows: d
            .iter()
            .map(|x| {
                vec![
                    Cell::text(&x.key),
                    x.from_day
                        .map_or(Cell::Null, |day| Cell::text(format_date(day))),
                    Cell::text(&x.what),
                    none_or(&x.old),
                    none_or(&x.new),
                ]
            })
            .collect(),
    };
    print_records(ctx.format, &rec, &[false; 5])?;
    Ok(EXIT_OK)
}

/// `pricing check LITELLM_JSON [--date]`: each difference with LiteLLM's price map.
pub fn check(ctx: &Context, file: &Path, date: Option<&str>) -> Result<u8> {
    let day = match date {
        Some(d) => match bedrock_usage_core::time::parse_date(d) {
            Some(day) => day,
            None => invalid!("--date: `{d}` is not a date (YYYY-MM-DD)"),
        },
        None => ctx.clock.today(),
    };
    let map = read_json(
        file,
        "a LiteLLM price map (model_prices_and_context_window.json)",
    )?;
    let got = check_litellm(&map, &ctx.catalog, day)
        .map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
    let rec = Records {
        fields: ["litellm_key", "field", "catalog", "litellm"]
            .map(String::from)
            .to_vec(),
        rows: got
            .differences
            .iter()
            .map(|x| {
                vec![
                    Cell::text(&x.litellm_key),
                    Cell::text(&x.field),
                    Cell::text(&x.catalog),
                    Cell::text(&x.litellm),
                ]
            })
            .collect(),
    };
    print_records(ctx.format, &rec, &[false, false, true, true])?;
    if matches!(ctx.format, Format::Table) {
        emit(&format!(
            "\n{} Bedrock Claude entries compared on {} (USD per million tokens); {} difference(s); {} entries not compared (provisioned throughput, Claude Platform on AWS).\nLiteLLM's map is a second opinion, not a source: see docs/pricing.md for where the catalog is known to be right and it is not.\n",
            got.compared,
            format_date(day),
            got.differences.len(),
            got.skipped.len()
        ))?;
    }
    Ok(EXIT_OK)
}
