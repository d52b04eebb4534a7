//! The nearest instruction keyword to a mistyped one, for `(did you mean COPY?)` hints.

use super::instruction::KEYWORDS;

/// The keyword within edit distance 2 (and less than the word's length) of `word`.
pub(crate) fn nearest(word: &str) -> Option<&'static str> {
    let word = word.to_ascii_uppercase();
    KEYWORDS
        .iter()
        .map(|k| (distance(&word, k), *k))
        .filter(|&(d, _)| d <= 2 && d < word.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
