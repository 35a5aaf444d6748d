//! Redis-style glob matching (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes.
//!
//! Invariant: matching takes O(pattern × text) steps and constant stack, whatever the
//! pattern. Every token but `*` matches exactly one byte, so on a mismatch only the most
//! recent `*` needs to take one more byte: an earlier `*` taking more could only reach a
//! position the latest one reaches too. (A recursive matcher that retries every `*` is
//! exponential: `a*a*a*…b` against a long run of `a`s spun a core for minutes, issue #13
//! item 2; Redis bounded the same class in 7.0.9.)

/// Whether `text` matches the glob `pattern`; `nocase` folds ASCII case.
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    // After the latest `*`: where the pattern resumes, and the text position it resumed at.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match pattern.get(p) {
            Some(b'*') => {
                while pattern.get(p) == Some(&b'*') {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, s));
                continue;
            }
            Some(_) => {
                if let Some(next) = text.get(s).and_then(|&c| one(pattern, p, c, nocase)) {
                    p = next;
                    s += 1;
                    continue;
                }
            }
            None if s == text.len() => return true,
            None => {}
        }
        // A mismatch: the latest `*` takes one more byte, or there is no match.
        match star {
            Some((resume, at)) if at < text.len() => {
                star = Some((resume, at + 1));
                p = resume;
                s = at + 1;
            }
            _ => return false,
        }
    }
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Whether the one-byte token at `pattern[p]` (not `*`) matches `c`: the position after the
/// token if it does.
fn one(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    let rest = pattern.get(p + 1..).unwrap_or_default();
    match pattern.get(p)? {
        b'?' => Some(p + 1),
        b'[' => {
            let (matched, len) = class(rest, c, nocase);
            matched.then_some(p + 1 + len)
        }
        b'\\' if !rest.is_empty() => rest
            .first()
            .is_some_and(|&x| eq(x, c, nocase))
            .then_some(p + 2),
        &pc => eq(pc, c, nocase).then_some(p + 1),
    }
}

/// Matches `c` against the class whose body (after `[`) starts `q`: whether it matches, and
/// the bytes of the body up to and including its `]` (the rest of the pattern if unclosed).
fn class(q: &[u8], c: u8, nocase: bool) -> (bool, usize) {
    let not = q.first() == Some(&b'^');
    let mut i = usize::from(not);
    let mut matched = false;
    loop {
        match q.get(i..).unwrap_or_default() {
            [] => break,
            [b'\\', x, ..] => {
                matched |= eq(*x, c, nocase);
                i += 2;
            }
            [b']', ..] => {
                i += 1;
                break;
            }
            [a, b'-', b, ..] if *b != b']' => {
                let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                let (lo, hi, cc) = if nocase {
                    (
                        lo.to_ascii_lowercase(),
                        hi.to_ascii_lowercase(),
                        c.to_ascii_lowercase(),
                    )
                } else {
                    (lo, hi, c)
                };
                matched |= cc >= lo && cc <= hi;
                i += 3;
            }
            [x, ..] => {
                matched |= eq(*x, c, nocase);
                i += 1;
            }
        }
    }
    (matched != not, i)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_follow_redis() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h*llo", b"heeeello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[ae]llo", b"hillo", false));
        assert!(matches(b"h[^e]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"max*", b"maxmemory", false));
        assert!(matches(b"MAX*", b"maxclients", true));
        assert!(!matches(b"MAX*", b"maxclients", false));
        assert!(matches(b"a\\*b", b"a*b", false));
        assert!(!matches(b"a\\*b", b"axb", false));
        assert!(!matches(b"abc", b"ab", false));
        assert!(matches(b"user:*:name", b"user:42:name", false));
        assert!(
            matches(b"a\\", b"a\\", false),
            "a trailing backslash is literal"
        );
        assert!(
            matches(b"[abc", b"b", false),
            "an unclosed class ends the pattern"
        );
        assert!(!matches(b"[abc", b"bx", false));
        assert!(
            !matches(b"*[]]*", b"x]y", false),
            "as in Redis, `[]` is an empty class"
        );
        assert!(matches(b"", b"", false) && !matches(b"", b"x", false));
        assert!(matches(b"**", b"", false) && matches(b"a*", b"a", false));
        assert!(!matches(b"?", b"", false));
    }

    /// Issue #13 item 2: a pattern of many `*` against a long key no longer takes
    /// exponential time (the recursive matcher did not finish this in minutes).
    #[test]
    fn many_stars_against_a_long_key_answer() {
        let key = vec![b'a'; 100_000];
        let pattern = [&b"a*".repeat(50)[..], b"b"].concat();
        assert!(!matches(&pattern, &key, false));
        let pattern = [&b"*a".repeat(50)[..], b"*"].concat();
        assert!(matches(&pattern, &key, false));
    }

    /// The recursive matcher this replaced, as the model: the same answer for any pattern
    /// over a small alphabet (with `*`, `?`, classes, ranges, negation and escapes).
    fn model(p: &[u8], s: &[u8], nocase: bool) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| model(rest, &s[i..], nocase)),
            Some(_) => match s.split_first() {
                None => false,
                Some((&c, srest)) => match super::one(p, 0, c, nocase) {
                    Some(next) => model(&p[next..], srest, nocase),
                    None => false,
                },
            },
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_recursive_model(
            pattern in proptest::collection::vec(
                proptest::sample::select(b"ab*?[]^-\\A".to_vec()), 0..10),
            text in proptest::collection::vec(proptest::sample::select(b"abAB]-".to_vec()), 0..10),
            nocase in proptest::bool::ANY,
        ) {
            proptest::prop_assert_eq!(
                matches(&pattern, &text, nocase),
                model(&pattern, &text, nocase)
            );
        }
    }
}
