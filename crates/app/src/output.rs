//! Output formats shared by every command: aligned tables for people, and JSON, CSV and Markdown
//! for pipes. Values are prepared by the caller as [`Cell`]s, so numbers keep their exact text.

use std::borrow::Cow;
use std::io::Write;

/// Text from the data (names, ids, reasons) made safe for a terminal: control characters (escape
/// sequences, newlines, carriage returns) are shown as escapes instead of acting on the terminal.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a totals row.
    Table,
    /// An array of objects.
    Json,
    /// A header row, then one row per object.
    Csv,
    /// A GitHub-flavoured Markdown table.
    Markdown,
    /// `query` only: the JSON `aws logs get-query-results` prints.
    Aws,
}

/// A value: text, or a number given as its exact decimal text.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(String),
    Null,
}

impl Cell {
    /// The cell as a table shows it (`-` for none).
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Number(s) => s.clone(),
            Cell::Null => "-".into(),
        }
    }
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }
    pub fn int(n: u64) -> Cell {
        Cell::Number(n.to_string())
    }
    fn plain(&self) -> &str {
        match self {
            Cell::Text(s) | Cell::Number(s) => s,
            Cell::Null => "",
        }
    }
}

/// Rows of named fields; `display` gives each field's text in a table (numbers grouped,
/// dollars formatted), while JSON and CSV get the exact values.
pub struct Records {
    pub fields: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// A table for people.
pub struct Table {
    pub headers: Vec<String>,
    pub right: Vec<bool>,
    pub rows: Vec<Vec<String>>,
    pub footer: Option<Vec<String>>,
}

impl Table {
    pub fn render(&self) -> String {
        let cleaned = self.cleaned();
        let this = cleaned.as_ref().unwrap_or(self);
        this.render_clean()
    }

    /// The table with every cell [`clean`]ed, if any cell needed it.
    fn cleaned(&self) -> Option<Table> {
        let dirty = |r: &[String]| r.iter().any(|c| c.chars().any(char::is_control));
        let any = dirty(&self.headers)
            || self.rows.iter().any(|r| dirty(r))
            || self.footer.as_ref().is_some_and(|f| dirty(f));
        any.then(|| {
            let c = |r: &[String]| r.iter().map(|x| clean(x).into_owned()).collect();
            Table {
                headers: c(&self.headers),
                right: self.right.clone(),
                rows: self.rows.iter().map(|r| c(r)).collect(),
                footer: self.footer.as_ref().map(|f| c(f)),
            }
        })
    }

    fn render_clean(&self) -> String {
        let n = self.headers.len();
        let mut width = vec![0usize; n];
        let all = std::iter::once(&self.headers)
            .chain(self.rows.iter())
            .chain(self.footer.iter());
        for row in all {
            for (i, c) in row.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |row: &[String]| -> String {
            let mut s = String::new();
            for (i, c) in row.iter().enumerate().take(n) {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = width[i] - c.chars().count();
                if self.right[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < n {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.headers);
        let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        if let Some(f) = &self.footer {
            out.push_str(&line(&rule));
            out.push_str(&line(f));
        }
        out
    }

    /// Prints as a table, or as Markdown with `--format markdown`.
    pub fn print(&self, format: Format) -> std::io::Result<()> {
        emit(&if format == Format::Markdown {
            self.render_markdown()
        } else {
            self.render()
        })
    }

    pub fn render_markdown(&self) -> String {
        let esc = |s: &str| clean(s).replace('|', "\\|");
        let mut out = format!(
            "| {} |\n",
            self.headers
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out.push_str(&format!(
            "|{}|\n",
            self.right
                .iter()
                .map(|r| if *r { "---:" } else { "---" })
                .collect::<Vec<_>>()
                .join("|")
        ));
        for r in self.rows.iter().chain(self.footer.iter()) {
            out.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }
}

pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl Records {
    /// Prints in `format`; tables right-align numbers and group whole ones by thousands.
    pub fn print(&self, format: Format) -> std::io::Result<()> {
        match format {
            Format::Json | Format::Aws => emit(&self.to_json()),
            Format::Csv => emit(&self.to_csv()),
            Format::Table | Format::Markdown => {
                let right = (0..self.fields.len())
                    .map(|i| {
                        self.rows
                            .iter()
                            .any(|r| matches!(r.get(i), Some(Cell::Number(_))))
                    })
                    .collect();
                let rows = self
                    .rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|c| match c {
                                Cell::Number(n) => n
                                    .parse::<u64>()
                                    .map(bedrock_usage_core::money::group_thousands)
                                    .unwrap_or_else(|_| n.clone()),
                                Cell::Text(t) => t.clone(),
                                Cell::Null => "-".to_string(),
                            })
                            .collect()
                    })
                    .collect();
                Table {
                    headers: self.fields.clone(),
                    right,
                    rows,
                    footer: None,
                }
                .print(format)
            }
        }
    }

    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (i, row) in self.rows.iter().enumerate() {
            out.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
            for (j, (f, c)) in self.fields.iter().zip(row).enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                out.push_str(&json_string(f));
                out.push_str(": ");
                match c {
                    Cell::Text(s) => out.push_str(&json_string(s)),
                    Cell::Number(s) => out.push_str(s),
                    Cell::Null => out.push_str("null"),
                }
            }
            out.push('}');
        }
        out.push_str(if self.rows.is_empty() { "]\n" } else { "\n]\n" });
        out
    }

    pub fn to_csv(&self) -> String {
        let mut out = csv_line(self.fields.iter().map(|f| (f.as_str(), true)));
        for row in &self.rows {
            out.push_str(&csv_line(
                row.iter().map(|c| (c.plain(), matches!(c, Cell::Text(_)))),
            ));
        }
        out
    }
}

fn csv_line<'a>(cells: impl Iterator<Item = (&'a str, bool)>) -> String {
    let v: Vec<String> = cells
        .map(|(c, text)| {
            // A text starting like a formula is not run by a spreadsheet that opens the file.
            let c: Cow<str> = if text && c.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                Cow::Owned(format!("'{c}"))
            } else {
                Cow::Borrowed(c)
            };
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.into_owned()
            }
        })
        .collect();
    v.join(",") + "\n"
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}
