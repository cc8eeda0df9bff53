//! A line diff for golden tests: the lines removed and inserted between an expected and an
//! actual text, so that one changed line reads as one change (not as every later line).

/// The lines removed (`-`) and inserted (`+`) between two texts, with two lines of context, from
/// a longest common subsequence: one changed line shows as one change, not as every later line.
pub fn line_diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Common head and tail first, so the quadratic table covers only the changed middle.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out = String::new();
    if am.len() * bm.len() > 25_000_000 {
        out.push_str(&format!(
            "@@ line {} @@ (too many changes for a line diff)\n",
            head + 1
        ));
        return out;
    }
    // lcs[i][j]: the longest common subsequence of am[i..] and bm[j..].
    let mut lcs = vec![vec![0u32; bm.len() + 1]; am.len() + 1];
    for i in (0..am.len()).rev() {
        for j in (0..bm.len()).rev() {
            lcs[i][j] = if am[i] == bm[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut edits: Vec<(char, &str)> = Vec::new();
    let from = head.saturating_sub(2);
    edits.extend(a[from..head].iter().map(|l| (' ', *l)));
    let (mut i, mut j) = (0, 0);
    while i < am.len() || j < bm.len() {
        if i < am.len() && j < bm.len() && am[i] == bm[j] {
            edits.push((' ', am[i]));
            i += 1;
            j += 1;
        } else if i < am.len() && (j == bm.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            edits.push(('-', am[i]));
            i += 1;
        } else {
            edits.push(('+', bm[j]));
            j += 1;
        }
    }
    let after = a.len() - tail;
    edits.extend(a[after..(after + 2).min(a.len())].iter().map(|l| (' ', *l)));
    out.push_str(&format!("@@ line {} @@\n", from + 1));
    // Long runs of unchanged lines inside the change are cut to their first and last two.
    let mut k = 0;
    while k < edits.len() {
        let run = edits[k..].iter().take_while(|e| e.0 == ' ').count();
        if run > 5 && k > 0 && k + run < edits.len() {
            for e in &edits[k..k + 2] {
                out.push_str(&format!("  {}\n", e.1));
            }
            out.push_str("  ...\n");
            for e in &edits[k + run - 2..k + run] {
                out.push_str(&format!("  {}\n", e.1));
            }
            k += run;
            continue;
        }
        let e = edits[k];
        out.push_str(&format!("{} {}\n", e.0, e.1));
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_diff_shows_only_what_changed() {
        let a = "one\ntwo\nthree\nfour\nfive\nsix\n";
        let b = "one\ntwo\nthree and a half\nfour\nfive\nsix\nseven\n";
        let d = line_diff(a, b);
        assert!(d.contains("- three\n+ three and a half\n"), "{d}");
        assert!(d.contains("+ seven\n"), "{d}");
        // Lines after a change are not shown as changed.
        assert!(!d.contains("- four") && !d.contains("+ four"), "{d}");
        let inserted = line_diff("a\nb\nc\n", "a\nX\nb\nc\n");
        assert!(
            inserted.contains("+ X\n") && !inserted.contains("- b"),
            "{inserted}"
        );
    }
}
