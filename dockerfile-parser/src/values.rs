//! Parsers for flag values that follow Go or Docker conventions: Go durations (HEALTHCHECK),
//! Docker's human sizes (`--mount=type=tmpfs,size=64m`) and `--chmod` modes.

use std::time::Duration;

/// Parses a Go duration string (`time.ParseDuration`): a sequence of decimal numbers with units
/// `ns`, `us` (or `µs`/`μs`), `ms`, `s`, `m`, `h`, e.g. `1h30m`, `2.5s`, `300ms`. A bare `0` is
/// allowed. Negative durations are rejected since no Dockerfile setting accepts them.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let bad = || format!("invalid duration \"{orig}\"");
    let mut s = s;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if s.starts_with('-') {
        if s == "-0" {
            return Ok(Duration::ZERO);
        }
        return Err(format!("negative duration \"{orig}\""));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..n];
            s = &rest[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit: u128 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => return Err(format!("missing unit in duration \"{orig}\"")),
            u => return Err(format!("unknown unit \"{u}\" in duration \"{orig}\"")),
        };
        s = &s[unit_len..];
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut nanos = whole.checked_mul(unit).ok_or_else(bad)?;
        if !frac_part.is_empty() {
            let digits = &frac_part[..frac_part.len().min(30)];
            let scale = 10u128.pow(digits.len() as u32);
            let frac: u128 = digits.parse().map_err(|_| bad())?;
            nanos += frac.checked_mul(unit).ok_or_else(bad)? / scale;
        }
        total = total.checked_add(nanos).ok_or_else(bad)?;
        if total > i64::MAX as u128 {
            return Err(bad());
        }
    }
    let secs = (total / 1_000_000_000) as u64;
    let sub = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// Parses a size with Docker's `RAMInBytes` rules: a number, optionally with a binary unit
/// `k`, `m`, `g`, `t`, `p` (optionally followed by `b`/`ib`), e.g. `64m`, `1.5GiB`, `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size: '{s}'");
    let num_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    if num_len == 0 {
        return Err(bad());
    }
    let num: f64 = s[..num_len].parse().map_err(|_| bad())?;
    let unit = s[num_len..]
        .strip_prefix(' ')
        .unwrap_or(&s[num_len..])
        .to_ascii_lowercase();
    let unit = unit.trim_end_matches('b');
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mul: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    if s[num_len..].to_ascii_lowercase().matches('b').count() > 1 {
        return Err(bad());
    }
    let v = num * mul;
    if !v.is_finite() || v > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Octal, e.g. `0755`.
    Octal(u32),
    /// Symbolic clauses, e.g. `u+x,g-w` (applied to each file's existing mode).
    Symbolic(String),
}

/// Parses a `--chmod` value: octal (`755`, `0644`) or symbolic (`u+x`, `a=rX,u+w`).
pub fn parse_chmod(s: &str) -> Result<Chmod, String> {
    if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        let v = u32::from_str_radix(s, 8).map_err(|e| e.to_string())?;
        if v > 0o7777 {
            return Err(format!("invalid chmod parameter '{s}': mode out of range"));
        }
        return Ok(Chmod::Octal(v));
    }
    let bad = || format!("invalid chmod parameter '{s}': expected octal (0755) or symbolic (u+x)");
    if s.is_empty() {
        return Err(bad());
    }
    for clause in s.split(',') {
        let who_len = clause.bytes().take_while(|b| b"ugoa".contains(b)).count();
        let mut rest = &clause[who_len..];
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let Some(op) = rest.strip_prefix(['+', '-', '=']) else {
                return Err(bad());
            };
            let perm_len = op.bytes().take_while(|b| b"rwxXstugo".contains(b)).count();
            rest = &op[perm_len..];
        }
    }
    Ok(Chmod::Symbolic(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(parse_go_duration(".5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("30").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10 kb"), Ok(10240));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5q").is_err());
    }

    #[test]
    fn chmods() {
        assert_eq!(parse_chmod("755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(parse_chmod("0644"), Ok(Chmod::Octal(0o644)));
        assert_eq!(
            parse_chmod("u+x,g-w"),
            Ok(Chmod::Symbolic("u+x,g-w".into()))
        );
        assert_eq!(parse_chmod("a=rX"), Ok(Chmod::Symbolic("a=rX".into())));
        assert!(parse_chmod("999").is_err());
        assert!(parse_chmod("u").is_err());
        assert!(parse_chmod("rwx").is_err());
        assert!(parse_chmod("").is_err());
    }
}
