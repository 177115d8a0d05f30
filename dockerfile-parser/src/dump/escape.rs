//! JSON string escapes as serde_json writes them, with the scan for the bytes that need one done
//! sixteen bytes at a time.

/// Whether any byte is a control character, a quote or a backslash.
#[cfg(test)]
fn needs_escape(bytes: &[u8]) -> bool {
    first_special::<false>(bytes).is_some()
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
    _mm_set1_epi8, _mm_storeu_si128,
};

/// One bit per special byte of the 16 in `v`: a control character, a quote or a backslash (or,
/// with `F4`, the byte 0xF4 that starts the reserved code points of [`crate::bytes`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn mask<const F4: bool>(v: __m128i) -> u32 {
    // SAFETY: SSE2 is in the x86-64 baseline; these work on registers only.
    unsafe {
        // Below 0x20 (unsigned): the byte is its minimum with 0x1F.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let mut m = _mm_or_si128(control, _mm_or_si128(quote, backslash));
        if F4 {
            m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(0xF4_u8 as i8)));
        }
        _mm_movemask_epi8(m) as u32
    }
}

/// The 16 bytes at `p`.
///
/// # Safety
/// `p` must be valid for reading 16 bytes (no alignment needed).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load(p: *const u8) -> __m128i {
    // SAFETY: the caller vouches for the 16 bytes; SSE2 is in the x86-64 baseline.
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// The index of the first byte that is a control character, a quote or a backslash (or, with
/// `F4`, the byte 0xF4), found sixteen bytes at a time with SSE2 (part of every x86-64
/// processor).
#[cfg(target_arch = "x86_64")]
#[inline]
fn first_special<const F4: bool>(bytes: &[u8]) -> Option<usize> {
    let len = bytes.len();
    let mut at = 0;
    while at + 16 <= len {
        // SAFETY: `at + 16 <= len`.
        let m = mask::<F4>(unsafe { load(bytes.as_ptr().add(at)) });
        if m != 0 {
            return Some(at + m.trailing_zeros() as usize);
        }
        at += 16;
    }
    if at == len {
        return None;
    }
    let m = if len >= 16 {
        // The last 16 bytes, without the ones already looked at.
        let base = len - 16;
        // SAFETY: `base + 16 == len`.
        mask::<F4>(unsafe { load(bytes.as_ptr().add(base)) }) >> (at - base)
    } else {
        // Short: padded with a byte that needs no escape.
        let mut padded = [b'a'; 16];
        padded[..len].copy_from_slice(bytes);
        // SAFETY: `padded` holds 16 bytes.
        mask::<F4>(unsafe { load(padded.as_ptr()) })
    };
    (m != 0).then(|| at + m.trailing_zeros() as usize)
}

/// Appends the longest prefix of `bytes` without a byte that [`first_special`] (with `F4`) stops
/// at, and returns its length: from sixteen bytes on, the scan and the copy in one pass, sixteen
/// bytes at a time (each block is stored whole, past the prefix's end too, into room reserved
/// for all of `bytes`), which saves a `memcpy` call; a shorter one is scanned, then copied (a
/// copy of its own for short strings, two overlapping words, cost more instructions than the
/// call it saved).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn copy_plain(buf: &mut Vec<u8>, bytes: &[u8]) -> usize {
    let len = bytes.len();
    if len < 16 {
        let plain = first_special::<true>(bytes).unwrap_or(len);
        buf.extend_from_slice(&bytes[..plain]);
        return plain;
    }
    buf.reserve(len);
    let at = buf.len();
    let src = bytes.as_ptr();
    // SAFETY: `reserve(len)` made room for `len` bytes after `at`; every block stored below lies
    // in `dst..dst + len` (`i + 16 <= len`, and the last block ends at `len`), and every block
    // loaded in `src..src + len`. The length is set to cover written bytes only.
    unsafe {
        let dst = buf.as_mut_ptr().add(at);
        let mut i = 0;
        while i + 16 <= len {
            let v = load(src.add(i));
            _mm_storeu_si128(dst.add(i).cast(), v);
            let m = mask::<true>(v);
            if m != 0 {
                let k = i + m.trailing_zeros() as usize;
                buf.set_len(at + k);
                return k;
            }
            i += 16;
        }
        if i < len {
            // The last 16 bytes (overlapping the ones already copied, which they rewrite with
            // the same values), without the bits of the ones already looked at.
            let base = len - 16;
            let v = load(src.add(base));
            _mm_storeu_si128(dst.add(base).cast(), v);
            let m = mask::<true>(v) >> (i - base);
            if m != 0 {
                let k = i + m.trailing_zeros() as usize;
                buf.set_len(at + k);
                return k;
            }
        }
        buf.set_len(at + len);
    }
    len
}

/// [`copy_plain`] elsewhere: the scan, then one copy.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(super) fn copy_plain(buf: &mut Vec<u8>, bytes: &[u8]) -> usize {
    let plain = first_special::<true>(bytes).unwrap_or(bytes.len());
    buf.extend_from_slice(&bytes[..plain]);
    plain
}

/// [`first_special`] elsewhere: eight bytes at a time in a `u64`.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn first_special<const F4: bool>(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `v` below `n` (n <= 0x80). Borrows can set bits above a
    // byte that is below `n`, never below the first one: the lowest set bit is exact.
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGH;
    let special = |v: u64| {
        let m = below(v, 0x20) | below(v ^ (ONES * 0x22), 1) | below(v ^ (ONES * 0x5C), 1);
        if F4 {
            m | below(v ^ (ONES * 0xF4), 1)
        } else {
            m
        }
    };
    let mut at = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let m = special(u64::from_le_bytes(w));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    // The tail in one more word, padded with a byte that needs no escape.
    let tail = chunks.remainder();
    if tail.is_empty() {
        return None;
    }
    let mut w = [b'a'; 8];
    w[..tail.len()].copy_from_slice(tail);
    let m = special(u64::from_le_bytes(w));
    (m != 0).then(|| at + (m.trailing_zeros() / 8) as usize)
}

/// Appends `bytes` with serde_json's escapes: `\"`, `\\`, the short forms of backspace, form
/// feed, newline, carriage return and tab, `\u00XX` (lower-case hex) for other control
/// characters. Runs without escapes are copied whole. With `F4`, stops at the first byte 0xF4
/// (it may start a reserved code point, see [`crate::bytes`]) and returns false: the caller
/// converts the string and writes it again; without, every such byte is copied as it is.
pub(super) fn escape_into<const F4: bool>(buf: &mut Vec<u8>, bytes: &[u8]) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    while let Some(off) = first_special::<F4>(&bytes[start..]) {
        let i = start + off;
        let b = bytes[i];
        if F4 && b == 0xF4 {
            return false;
        }
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0C => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => b"",
        };
        buf.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xF)]);
        } else {
            buf.extend_from_slice(short);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    true
}

#[cfg(test)]
mod tests {
    use super::{copy_plain, first_special, needs_escape};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
        #[test]
        fn word_at_a_time_check_is_exact(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let slow = bytes.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(needs_escape(&bytes), slow.is_some());
            prop_assert_eq!(first_special::<false>(&bytes), slow);
            let slow_f4 = bytes
                .iter()
                .position(|&b| b < 0x20 || b == b'"' || b == b'\\' || b == 0xF4);
            prop_assert_eq!(first_special::<true>(&bytes), slow_f4);
        }

        /// The copy stops where the scan does, after the bytes already in the buffer, and
        /// leaves exactly the plain prefix behind them.
        #[test]
        fn plain_prefix_is_copied(
            bytes in proptest::collection::vec(
                prop_oneof![8 => b'a'..=b'z', 1 => any::<u8>()],
                0..80,
            ),
            before in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let plain = first_special::<true>(&bytes).unwrap_or(bytes.len());
            let mut buf = before.clone();
            prop_assert_eq!(copy_plain(&mut buf, &bytes), plain);
            prop_assert_eq!(&buf[..before.len()], &before[..]);
            prop_assert_eq!(&buf[before.len()..], &bytes[..plain]);
        }
    }

    #[test]
    fn edges() {
        for b in 0u8..=255 {
            let mut v = vec![b'a'; 17];
            v[9] = b;
            assert_eq!(needs_escape(&v), b < 0x20 || b == b'"' || b == b'\\', "{b}");
        }
        // Every length around the 16-byte blocks, the special byte at every place.
        for len in 0..50 {
            for at in 0..=len {
                let mut v = vec![b'x'; len];
                if at < len {
                    v[at] = 0xF4;
                }
                let mut buf = b"ab".to_vec();
                assert_eq!(copy_plain(&mut buf, &v), at, "{len} {at}");
                assert_eq!(buf.len(), 2 + at);
            }
        }
    }
}
