/* INCRBYFLOAT's arithmetic exactly as Redis does it: the platform's `long double` (80-bit x87
 * on x86-64), parsed by strtold and printed with "%.17Lf", trailing zeros trimmed (Redis 7
 * util.c: string2ld, and ld2string with LD_STR_HUMAN). Rust has no `long double`, so this
 * one function is C. Called from src/cmd/long_double.rs; keep the two in sync. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Redis's MAX_LONG_DOUBLE_CHARS: longer input is not a float; every finite result fits. */
#define TKV_LD_CHARS_MAX (5 * 1024)

/* Redis's string2ld: the whole text must be one strtold number, not NaN, no leading space, and
 * not an overflow or underflow. */
static int parse_ld(const unsigned char *s, size_t len, long double *out) {
    char buf[TKV_LD_CHARS_MAX];
    char *end;
    long double v;
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtold(buf, &end);
    if (isspace((unsigned char)buf[0]) || *end != '\0' || (size_t)(end - buf) != len ||
        (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) ||
        isnan(v))
        return 0;
    *out = v;
    return 1;
}

/* current + increment, printed like Redis. `current` NULL means a missing key (0). Returns the
 * length written to `out` (not NUL-terminated for the caller's purposes), or -1: the current
 * value is not a float, -2: the increment is not a float, -3: the sum is NaN or infinite,
 * -4: `cap` too small. */
long tkv_incrbyfloat(const unsigned char *current, size_t current_len,
                     const unsigned char *increment, size_t increment_len,
                     char *out, size_t cap) {
    long double value = 0, by = 0;
    int l;
    if (current != NULL && !parse_ld(current, current_len, &value)) return -1;
    if (!parse_ld(increment, increment_len, &by)) return -2;
    value += by;
    if (isnan(value) || isinf(value)) return -3;
    l = snprintf(out, cap, "%.17Lf", value);
    if (l < 0 || (size_t)l + 1 > cap) return -4;
    if (strchr(out, '.') != NULL) {
        char *p = out + l - 1;
        while (*p == '0') { p--; l--; }
        if (*p == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') { out[0] = '0'; l = 1; }
    return l;
}
