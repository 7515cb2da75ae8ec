//! The runner's verdict: a scenario's observed lines against the lines its
//! seed document shows (`expected/*.txt`, written from the documents, never
//! recorded from procshare's output), with only the freedoms the document
//! leaves.
//!
//! # Expected files
//!
//! One line per printed line. `#` starts a comment line (each file says where
//! in the document its lines come from and which freedoms apply). A line may
//! start with a tag naming the start methods it is expected under, e.g.
//! `[fork] ...` or `[spawn forkserver] ...`; untagged lines are expected under
//! every method.
//!
//! # Freedoms
//!
//! Each [`Freedom`] first checks the property that makes it legitimate and
//! then normalizes: a line that breaks the property is reported as such
//! (and fails the verdict).

use procshare::StartMethod;

/// What a document leaves free in a program's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freedom {
    /// `This machine has N CPUs`: N must be this machine's count; it becomes `<cpus>`.
    Cpus,
    /// The number after `id` (CPython's `id(...)`): the N-th distinct number
    /// becomes `<id N>`, so equal ids stay equal and different ones different.
    Ids,
    /// Seed 001's random values: `Got (i, v)` with v in [0, 5) becomes `Got (i, <value>)`.
    Random,
    /// Seed 000's manager list: any interleaving of the two workers' words
    /// that keeps each worker's five words once and in order becomes the
    /// document's order.
    Interleaving,
    /// The order of lines printed by concurrent workers: lines are sorted.
    Order,
}

impl Freedom {
    /// A short name, as the expected files and the verdict line call it.
    pub fn name(self) -> &'static str {
        match self {
            Freedom::Cpus => "cpus",
            Freedom::Ids => "ids",
            Freedom::Random => "random",
            Freedom::Interleaving => "interleaving",
            Freedom::Order => "order",
        }
    }
}

/// Python's (and the runner's) name of a start method.
pub fn method_name(m: StartMethod) -> &'static str {
    match m {
        StartMethod::Spawn => "spawn",
        StartMethod::ForkServer => "forkserver",
        _ => "fork",
    }
}

const METHOD_TAGS: [&str; 3] = ["fork", "spawn", "forkserver"];

/// The lines `expected` (an expected file's text) holds for `method`.
pub fn expected_lines(expected: &str, method: StartMethod) -> Result<Vec<String>, String> {
    let me = method_name(method);
    let mut out = Vec::new();
    for line in expected.lines() {
        if line.starts_with('#') {
            continue;
        }
        // `[fork] text` / `[spawn forkserver] text`; a line such as `[]` or
        // `['one', ...]` whose brackets hold no method names is literal text.
        let tagged = line.strip_prefix('[').and_then(|rest| {
            let (tags, text) = rest.split_once("] ")?;
            let tags: Vec<&str> = tags.split(' ').collect();
            tags.iter()
                .all(|t| METHOD_TAGS.contains(t))
                .then_some((tags, text))
        });
        match tagged {
            Some((tags, text)) => {
                if tags.contains(&me) {
                    out.push(text.to_string());
                }
            }
            None => out.push(line.to_string()),
        }
    }
    Ok(out)
}

fn cpus(lines: Vec<String>) -> Result<Vec<String>, String> {
    let want = format!("This machine has {} CPUs", procshare::cpu_count());
    lines
        .into_iter()
        .map(|l| {
            if l.starts_with("This machine has ") {
                if l != want {
                    return Err(format!("the CPU count is not this machine's: {l:?}"));
                }
                Ok("This machine has <cpus> CPUs".to_string())
            } else {
                Ok(l)
            }
        })
        .collect()
}

fn ids(lines: Vec<String>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    lines
        .into_iter()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let mut out = Vec::with_capacity(words.len());
            for (i, w) in words.iter().enumerate() {
                let after_id = i > 0 && words[i - 1] == "id";
                if after_id && !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()) {
                    let n = match seen.iter().position(|s| s == w) {
                        Some(n) => n,
                        None => {
                            seen.push(w.to_string());
                            seen.len() - 1
                        }
                    };
                    out.push(format!("<id {}>", n + 1));
                } else {
                    out.push(w.to_string());
                }
            }
            out.join(" ")
        })
        .collect()
}

fn random(lines: Vec<String>) -> Result<Vec<String>, String> {
    lines
        .into_iter()
        .map(|l| {
            let inner = l
                .strip_prefix("Got (")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("not a whole `Got (i, value)` line: {l:?}"))?;
            let (i, v) = inner
                .split_once(", ")
                .ok_or_else(|| format!("not a whole `Got (i, value)` line: {l:?}"))?;
            let v: f64 = v
                .parse()
                .map_err(|_| format!("not a number: {v:?} in {l:?}"))?;
            if !(0.0..5.0).contains(&v) {
                return Err(format!("random value outside [0, 5): {l:?}"));
            }
            Ok(format!("Got ({i}, <value>)"))
        })
        .collect()
}

fn interleaving(lines: Vec<String>) -> Result<Vec<String>, String> {
    lines
        .into_iter()
        .map(|l| {
            if crate::seed000::is_valid_manager_output(&l) {
                let doc = [
                    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                ];
                Ok(crate::seed000::py_list_repr(&doc))
            } else {
                Err(format!(
                    "not the ten words with each worker's five once and in order: {l:?}"
                ))
            }
        })
        .collect()
}

/// Applies `freedoms` to the observed lines (after checking each is legitimate).
pub fn normalize(observed: &[String], freedoms: &[Freedom]) -> Result<Vec<String>, String> {
    let mut lines = observed.to_vec();
    for f in [
        Freedom::Cpus,
        Freedom::Ids,
        Freedom::Random,
        Freedom::Interleaving,
        Freedom::Order,
    ] {
        if !freedoms.contains(&f) {
            continue;
        }
        lines = match f {
            Freedom::Cpus => cpus(lines)?,
            Freedom::Ids => ids(lines),
            Freedom::Random => random(lines)?,
            Freedom::Interleaving => interleaving(lines)?,
            Freedom::Order => {
                lines.sort();
                lines
            }
        };
    }
    Ok(lines)
}

/// The verdict on one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The observed lines are the document's (within its freedoms).
    Match,
    /// They are not: why, with the expected and observed (normalized) lines.
    Mismatch {
        /// What went wrong.
        why: String,
        /// The document's lines for this method.
        expected: Vec<String>,
        /// What the run printed (normalized where that was possible).
        observed: Vec<String>,
    },
}

/// Compares a run's output with the expected file's text.
pub fn judge(
    expected_text: &str,
    method: StartMethod,
    freedoms: &[Freedom],
    observed: &[String],
) -> Verdict {
    let expected = match expected_lines(expected_text, method) {
        Ok(e) => e,
        Err(why) => {
            return Verdict::Mismatch {
                why,
                expected: Vec::new(),
                observed: observed.to_vec(),
            }
        }
    };
    match normalize(observed, freedoms) {
        Err(why) => Verdict::Mismatch {
            why,
            expected,
            observed: observed.to_vec(),
        },
        Ok(seen) if seen == expected => Verdict::Match,
        Ok(seen) => {
            let first = expected
                .iter()
                .zip(&seen)
                .position(|(a, b)| a != b)
                .unwrap_or(expected.len().min(seen.len()));
            Verdict::Mismatch {
                why: format!(
                    "line {} differs ({} lines expected, {} observed)",
                    first + 1,
                    expected.len(),
                    seen.len()
                ),
                expected,
                observed: seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn tags_select_lines_per_method() {
        let text = "# c\na\n[fork] b\n[spawn forkserver] c\n";
        assert_eq!(
            expected_lines(text, StartMethod::Fork).unwrap(),
            v(&["a", "b"])
        );
        assert_eq!(
            expected_lines(text, StartMethod::Spawn).unwrap(),
            v(&["a", "c"])
        );
        // Brackets without method names are text (Python's lists).
        assert_eq!(
            expected_lines("[]\n['a', 'b']\n", StartMethod::Spawn).unwrap(),
            v(&["[]", "['a', 'b']"])
        );
    }

    #[test]
    fn ids_keep_equality_and_difference() {
        let same = v(&["x with id 17", "y with id 17 z"]);
        let diff = v(&["x with id 17", "y with id 18 z"]);
        assert_eq!(ids(same), v(&["x with id <id 1>", "y with id <id 1> z"]));
        assert_eq!(ids(diff), v(&["x with id <id 1>", "y with id <id 2> z"]));
    }

    #[test]
    fn a_wrong_line_is_a_mismatch() {
        let text = "Counter: 10\n";
        assert_eq!(
            judge(text, StartMethod::Fork, &[], &v(&["Counter: 10"])),
            Verdict::Match
        );
        assert!(matches!(
            judge(text, StartMethod::Fork, &[], &v(&["Counter: 9"])),
            Verdict::Mismatch { .. }
        ));
        assert!(matches!(
            judge(text, StartMethod::Fork, &[], &v(&["Counter: 10", "extra"])),
            Verdict::Mismatch { .. }
        ));
    }

    #[test]
    fn freedoms_check_before_they_normalize() {
        let out = v(&["Got (1, 7.5)"]);
        assert!(normalize(&out, &[Freedom::Random]).is_err());
        let out = v(&["Got (1, 4.5)", "Got (0, 0.25)"]);
        assert_eq!(
            normalize(&out, &[Freedom::Random, Freedom::Order]).unwrap(),
            v(&["Got (0, <value>)", "Got (1, <value>)"])
        );
        assert!(normalize(&v(&["This machine has 999 CPUs"]), &[Freedom::Cpus]).is_err());
    }
}
