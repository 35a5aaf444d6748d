//! Redis-style glob matching (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes.
//!
//! Invariant: matching is bounded: recursion only happens on `*` and is capped by
//! [`MAX_STAR_RECURSION`], like Redis's nesting limit, so hostile patterns can't blow the stack.

/// Deepest `*` recursion before a pattern is declared a non-match.
pub const MAX_STAR_RECURSION: usize = 1000;

/// Whether `text` matches the glob `pattern`; `nocase` folds ASCII case.
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    match_impl(pattern, text, nocase, 0)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn match_impl(mut p: &[u8], mut s: &[u8], nocase: bool, depth: usize) -> bool {
    if depth > MAX_STAR_RECURSION {
        return false;
    }
    while let Some((&pc, prest)) = p.split_first() {
        match pc {
            b'*' => {
                let mut rest = prest;
                while let Some((b'*', r)) = rest.split_first() {
                    rest = r;
                }
                if rest.is_empty() {
                    return true;
                }
                let mut tail = s;
                loop {
                    if match_impl(rest, tail, nocase, depth + 1) {
                        return true;
                    }
                    match tail.split_first() {
                        Some((_, t)) => tail = t,
                        None => return false,
                    }
                }
            }
            b'?' => {
                let Some((_, srest)) = s.split_first() else {
                    return false;
                };
                s = srest;
                p = prest;
            }
            b'[' => {
                let Some((&c, srest)) = s.split_first() else {
                    return false;
                };
                let mut q = prest;
                let not = matches!(q.first(), Some(b'^'));
                if not {
                    q = q.get(1..).unwrap_or_default();
                }
                let mut matched = false;
                loop {
                    match q {
                        [] => break,
                        [b'\\', x, r @ ..] => {
                            matched |= eq(*x, c, nocase);
                            q = r;
                        }
                        [b']', r @ ..] => {
                            q = r;
                            break;
                        }
                        [a, b'-', b, r @ ..] if *b != b']' => {
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
                            q = r;
                        }
                        [x, r @ ..] => {
                            matched |= eq(*x, c, nocase);
                            q = r;
                        }
                    }
                }
                if matched == not {
                    return false;
                }
                s = srest;
                p = q;
            }
            b'\\' if !prest.is_empty() => {
                let Some((&c, srest)) = s.split_first() else {
                    return false;
                };
                if !prest.first().is_some_and(|&x| eq(x, c, nocase)) {
                    return false;
                }
                s = srest;
                p = prest.get(1..).unwrap_or_default();
            }
            _ => {
                let Some((&c, srest)) = s.split_first() else {
                    return false;
                };
                if !eq(pc, c, nocase) {
                    return false;
                }
                s = srest;
                p = prest;
            }
        }
    }
    s.is_empty()
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
    }
}
