//! INCRBYFLOAT's arithmetic, bit for bit as Redis: `long double` (80-bit on x86-64), parsed by
//! `strtold`, printed with `"%.17Lf"` and trailing zeros trimmed. Rust has no `long double`,
//! so the arithmetic is the C function in `long_double.c`; this module is its safe face.
//!
//! Invariant: for the same inputs on the same platform, the text returned is the text Redis
//! stores and replies (checked against a real `redis-server` in tests/interop.rs), including
//! its binary noise (`5000 + 0.1` is `5000.10000000000000009`) and its errors.

use crate::cmd::CmdError;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer text is not a float, and every finite result fits.
const LONG_DOUBLE_CHARS_MAX: usize = 5 * 1024;

extern "C" {
    fn tkv_incrbyfloat(
        current: *const u8,
        current_len: usize,
        increment: *const u8,
        increment_len: usize,
        out: *mut u8,
        cap: usize,
    ) -> std::os::raw::c_long;
}

/// `current` (`None`: a missing key, 0) plus `increment`, as the text Redis would store.
pub fn incr_by_float(current: Option<&[u8]>, increment: &[u8]) -> Result<String, CmdError> {
    let mut out = vec![0u8; LONG_DOUBLE_CHARS_MAX + 32];
    let (current_ptr, current_len) = match current {
        Some(c) => (c.as_ptr(), c.len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: every pointer is valid for the length passed with it (or null with 0 for a
    // missing key, which the C side checks first); the C side reads at most those lengths,
    // copies what it parses into its own NUL-terminated buffer, and writes at most `cap`
    // bytes to `out`.
    let n = unsafe {
        tkv_incrbyfloat(
            current_ptr,
            current_len,
            increment.as_ptr(),
            increment.len(),
            out.as_mut_ptr(),
            out.len(),
        )
    };
    match n {
        -3 => Err(CmdError::NanOrInfinity),
        n if n <= 0 => Err(CmdError::NotFloat),
        n => {
            out.truncate(usize::try_from(n).unwrap_or(0));
            // snprintf of a number writes ASCII only.
            String::from_utf8(out).map_err(|_| CmdError::NotFloat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::incr_by_float;
    use crate::cmd::CmdError;

    /// Replies of Debian's redis-server 7.0.15 on x86-64 (`SET k a`, `INCRBYFLOAT k b`).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn matches_redis_on_x86_64() {
        let cases: [(&str, &str, &str); 9] = [
            ("5000", "0.1", "5000.10000000000000009"),
            ("10.5", "0.1", "10.6"),
            ("1e20", "1.5", "100000000000000000000"),
            ("0.1", "0.2", "0.3"),
            ("3.0e3", "2.0e2", "3200"),
            ("123456789.123", "0.000001", "123456789.12300099999993108"),
            ("-0.0", "0", "0"),
            ("10", "-10.00000000000000000001", "0"),
            ("0x10", "1", "17"),
        ];
        for (a, b, want) in cases {
            let got = incr_by_float(Some(a.as_bytes()), b.as_bytes()).unwrap();
            assert_eq!(got, want, "{a} + {b}");
        }
    }

    #[test]
    fn errors_like_redis() {
        assert_eq!(incr_by_float(None, b"1.5").unwrap(), "1.5");
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"abc",
            b"nan",
            b"1e99999",
            b"1\x002",
        ] {
            assert!(
                matches!(incr_by_float(None, bad), Err(CmdError::NotFloat)),
                "{bad:?}"
            );
            assert!(
                matches!(incr_by_float(Some(bad), b"1"), Err(CmdError::NotFloat)),
                "{bad:?}"
            );
        }
        assert!(matches!(
            incr_by_float(Some(b"inf"), b"1"),
            Err(CmdError::NanOrInfinity)
        ));
        assert!(matches!(
            incr_by_float(Some(b"1.1e4932"), b"1.1e4932"),
            Err(CmdError::NanOrInfinity)
        ));
        let long = "1".repeat(5 * 1024);
        assert!(matches!(
            incr_by_float(None, long.as_bytes()),
            Err(CmdError::NotFloat)
        ));
        // The largest finite results still fit the reply buffer.
        let big = incr_by_float(Some(b"1.18e4932"), b"0").unwrap();
        assert_eq!(big.len(), 4933);
    }
}
