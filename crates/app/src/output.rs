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
    /// `report` only: one self-contained HTML document for finance (inline SVG charts, no
    /// scripts; prints to PDF).
    Html,
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

    /// Prints as a table, as Markdown with `--format markdown`, or as an HTML table.
    pub fn print(&self, format: Format) -> std::io::Result<()> {
        emit(&match format {
            Format::Markdown => self.render_markdown(),
            Format::Html => self.render_html(""),
            _ => self.render(),
        })
    }

    /// An HTML `<table>` (the footer as `<tfoot>`), every cell escaped; `class` names it.
    pub fn render_html(&self, class: &str) -> String {
        let cells = |tag: &str, row: &[String]| -> String {
            let mut s = String::from("<tr>");
            for (i, c) in row.iter().enumerate() {
                let num = self.right.get(i).copied().unwrap_or(false);
                s.push_str(&format!(
                    "<{tag}{}>{}</{tag}>",
                    if num { " class=\"num\"" } else { "" },
                    html_escape(c)
                ));
            }
            s + "</tr>\n"
        };
        let mut out = if class.is_empty() {
            "<table>\n".to_string()
        } else {
            format!("<table class=\"{}\">\n", html_escape(class))
        };
        out.push_str("<thead>");
        out.push_str(&cells("th", &self.headers));
        out.push_str("</thead>\n<tbody>\n");
        for r in &self.rows {
            out.push_str(&cells("td", r));
        }
        out.push_str("</tbody>\n");
        if let Some(f) = &self.footer {
            out.push_str("<tfoot>");
            out.push_str(&cells("td", f));
            out.push_str("</tfoot>\n");
        }
        out + "</table>\n"
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

/// Text made safe inside HTML elements and quoted attributes; control characters are shown as
/// escapes (as [`clean`] does for terminals).
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
            Format::Table | Format::Markdown | Format::Html => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_quotes_and_control_characters() {
        assert_eq!(
            html_escape("<b>\"x\" & 'y'\u{1b}[2J"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;\\u{1b}[2J"
        );
        let t = Table {
            headers: vec!["developer".into(), "cost".into()],
            right: vec![false, true],
            rows: vec![vec!["<script>".into(), "$1.00".into()]],
            footer: Some(vec!["total".into(), "$1.00".into()]),
        };
        let h = t.render_html("figures");
        assert!(
            h.contains("<td>&lt;script&gt;</td><td class=\"num\">$1.00</td>"),
            "{h}"
        );
        assert!(h.contains("<tfoot><tr><td>total</td>"), "{h}");
    }
}
