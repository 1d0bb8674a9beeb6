//! Identity rules that need no storage: username normalisation, security settings, the password
//! policy (NIST SP 800-63B rev. 4 by default, or the strict profile), lockout delays and
//! recovery codes.

use std::collections::HashSet;
use std::sync::LazyLock;

use strongroom_proto::{EffectiveSettings, PasswordProfile, SecuritySettings};
use unicode_normalization::UnicodeNormalization;

use crate::error::{Code, Error, Result};
use crate::policy::{ROLE_ADMIN, ROLE_OPERATOR};

/// Longest accepted password, in characters (NIST asks for at least 64).
pub const MAX_PASSWORD_CHARS: u32 = 256;
/// Longest lock.
pub const MAX_LOCK_MS: i64 = 24 * 3600 * 1000;

static BLOCKLIST: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with("#!comment") && !l.is_empty())
        .map(str::to_lowercase)
        .collect()
});

/// Number of entries in the bundled list of common passwords.
pub fn blocklist_len() -> usize {
    BLOCKLIST.len()
}

/// The display form and the comparison key of a username: NFKC, then case folding, then NFKC
/// again, so `ＡＤＡ`, `Ada` and `ada` are the same user.
pub fn normalise_username(raw: &str) -> Result<(String, String)> {
    // Trimmed after NFKC as well: compatibility forms can decompose to a leading space (U+00A8
    // DIAERESIS is " \u{308}"), which would make a name that normalises to another key again.
    let display: String = raw.nfkc().collect::<String>().trim().to_owned();
    let chars = display.chars().count();
    if chars == 0 || chars > 64 || display.chars().any(|c| c.is_control()) {
        return Err(Error::new(
            Code::InvalidName,
            "a username is 1-64 printable characters",
        ));
    }
    let key: String = caseless::default_case_fold_str(&display).nfkc().collect();
    Ok((display, key))
}

fn bounded(
    name: &str,
    v: Option<u32>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32> {
    let v = v.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(Error::out_of_range(format!(
            "{name} must be between {} and {}",
            range.start(),
            range.end()
        )))
    }
}

/// Resolves settings against their profile's defaults and checks every bound.
/// Days a deleted record stays restorable unless the tenant or the collection says otherwise.
pub const DEFAULT_PURGE_GRACE_DAYS: u32 = 30;

pub fn resolve_settings(s: &SecuritySettings) -> Result<EffectiveSettings> {
    let p = &s.password;
    let strict = p.profile == PasswordProfile::Strict;
    let min_length = bounded(
        "password.min_length",
        p.min_length,
        if strict { 10 } else { 15 },
        8..=64,
    )?;
    let min_length_with_mfa = bounded(
        "password.min_length_with_mfa",
        p.min_length_with_mfa,
        if strict { 10 } else { 8 },
        8..=64,
    )?;
    let mut roles: Vec<String> = s.mfa_required_roles.clone();
    for r in &roles {
        crate::schema::check_name("role", r)?;
    }
    roles.extend([ROLE_ADMIN.to_owned(), ROLE_OPERATOR.to_owned()]);
    roles.sort();
    roles.dedup();
    Ok(EffectiveSettings {
        profile: p.profile,
        min_length,
        min_length_with_mfa: min_length_with_mfa.min(min_length),
        max_length: MAX_PASSWORD_CHARS,
        require_classes: p.require_classes.unwrap_or(strict),
        max_age_days: bounded(
            "password.max_age_days",
            p.max_age_days,
            if strict { 120 } else { 0 },
            0..=3650,
        )?,
        history: bounded(
            "password.history",
            p.history,
            if strict { 5 } else { 0 },
            0..=24,
        )?,
        purge_grace_days: bounded(
            "purge_grace_days",
            s.purge_grace_days,
            DEFAULT_PURGE_GRACE_DAYS,
            0..=3650,
        )?,
        blocklist_entries: blocklist_len() as u32,
        lockout_threshold: bounded("lockout_threshold", s.lockout_threshold, 10, 1..=100)?,
        lockout_base_seconds: bounded(
            "lockout_base_seconds",
            s.lockout_base_seconds,
            60,
            1..=3600,
        )?,
        session_idle_minutes: bounded(
            "session_idle_minutes",
            s.session_idle_minutes,
            30,
            1..=1440,
        )?,
        session_absolute_hours: bounded(
            "session_absolute_hours",
            s.session_absolute_hours,
            12,
            1..=168,
        )?,
        mfa_required_roles: roles,
    })
}

/// The settings in force when none were stored.
pub fn default_settings() -> EffectiveSettings {
    match resolve_settings(&SecuritySettings::default()) {
        Ok(s) => s,
        Err(_) => unreachable_defaults(),
    }
}

#[cold]
fn unreachable_defaults() -> ! {
    // The defaults are constants inside every bound; reaching this is a build defect.
    std::process::abort()
}

fn weak(rule: &str) -> Error {
    Error::new(Code::WeakPassword, rule.to_owned())
}

/// Checks a new password. The error names the rule it broke, never the password.
pub fn check_password(
    password: &str,
    s: &EffectiveSettings,
    has_mfa: bool,
    context: &[&str],
) -> Result<()> {
    let chars = password.chars().count() as u32;
    let min = if has_mfa {
        s.min_length_with_mfa
    } else {
        s.min_length
    };
    if chars < min {
        return Err(weak(&format!("too short: at least {min} characters")));
    }
    if chars > s.max_length {
        return Err(weak(&format!(
            "too long: at most {} characters",
            s.max_length
        )));
    }
    if password.chars().any(|c| c.is_control()) {
        return Err(weak("control characters are not allowed"));
    }
    if s.require_classes {
        let upper = password.chars().any(char::is_uppercase);
        let lower = password.chars().any(char::is_lowercase);
        let digit = password.chars().any(|c| c.is_ascii_digit());
        let special = password
            .chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace());
        if !(upper && lower && digit && special) {
            return Err(weak(
                "needs an upper-case letter, a lower-case letter, a digit and a special character",
            ));
        }
    }
    let lower = password.to_lowercase();
    if let Some(reason) = is_common(&lower) {
        return Err(weak(reason));
    }
    for word in context {
        let w = word.to_lowercase();
        if w.chars().count() >= 3 && lower.contains(&w) {
            return Err(weak("contains the username or the tenant name"));
        }
    }
    let distinct: HashSet<char> = password.chars().collect();
    if distinct.len() < 3 {
        return Err(weak("repeats too few different characters"));
    }
    Ok(())
}

/// Whether a lower-cased password is a common one, or a common one repeated or with digits and
/// symbols around it (`password`, `Password1!`, `passwordpassword`, `123password`).
fn is_common(lower: &str) -> Option<&'static str> {
    const COMMON: &str = "too common: it is on the list of frequently used passwords";
    let core = lower
        .trim_matches(|c: char| !c.is_alphanumeric())
        .trim_end_matches(|c: char| c.is_ascii_digit());
    let stripped = core.trim_start_matches(|c: char| c.is_ascii_digit());
    let candidates = [lower, core, stripped];
    for c in candidates {
        if c.is_empty() {
            continue;
        }
        if BLOCKLIST.contains(c) {
            return Some(COMMON);
        }
        let chars: Vec<char> = c.chars().collect();
        for period in 1..=chars.len() / 2 {
            if chars.len().is_multiple_of(period) {
                let unit: String = chars[..period].iter().collect();
                if unit.repeat(chars.len() / period) == c {
                    if period < 4 {
                        return Some("too predictable: a short pattern repeated");
                    }
                    if BLOCKLIST.contains(&unit) {
                        return Some(COMMON);
                    }
                }
            }
        }
    }
    None
}

/// How long the `level`-th lock lasts (level 0 is the first): the base, doubled per level,
/// capped at 24 hours.
pub fn lock_delay_ms(base_seconds: u32, level: u32) -> i64 {
    let base = i64::from(base_seconds) * 1000;
    base.saturating_mul(1i64 << level.min(20)).min(MAX_LOCK_MS)
}

/// Formats 10 random bytes as a recovery code: 16 base32 characters in groups of four.
pub fn recovery_code(bytes: &[u8; 10]) -> String {
    let s = strongroom_crypto::otp::base32(bytes).to_lowercase();
    let mut out = String::with_capacity(19);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// The form of a recovery code that is hashed: lower case, no dashes or spaces.
pub fn canonical_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_proto::PasswordRules;

    #[test]
    fn usernames_fold_width_and_case() {
        let (_, a) = normalise_username("Ada").unwrap();
        let (_, b) = normalise_username("ＡＤＡ").unwrap();
        let (_, c) = normalise_username("  ada ").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        let (_, s1) = normalise_username("Straße").unwrap();
        let (_, s2) = normalise_username("STRASSE").unwrap();
        assert_eq!(s1, s2, "full case folding");
        assert!(normalise_username("").is_err());
        assert!(normalise_username("a\u{7}b").is_err());
        assert!(normalise_username(&"x".repeat(65)).is_err());
    }

    #[test]
    fn blocklist_is_bundled_and_large() {
        assert!(blocklist_len() >= 3000, "{}", blocklist_len());
        assert!(BLOCKLIST.contains("password1"));
    }

    #[test]
    fn nist_profile() {
        let s = default_settings();
        assert_eq!(
            (s.min_length, s.min_length_with_mfa, s.lockout_threshold),
            (15, 8, 10)
        );
        assert!(!s.require_classes);
        assert_eq!(s.max_age_days, 0);
        let ok = |pw: &str, mfa: bool| check_password(pw, &s, mfa, &["ada", "acme"]);
        ok("correct horse battery staple", false).unwrap();
        ok("tr0ub4dor&3xyz", true).unwrap();
        assert_eq!(
            ok("tr0ub4dor&3xyz", false).unwrap_err().code,
            Code::WeakPassword,
            "14 chars, no MFA"
        );
        assert!(ok("password", true).unwrap_err().message.contains("common"));
        assert!(
            ok("iloveyou12345", true).is_err(),
            "common word plus digits"
        );
        assert!(ok("ada-loves-engines-1815", false)
            .unwrap_err()
            .message
            .contains("username"));
        assert!(ok("aaaaaaaaaaaaaaaaaaaa", false).is_err());
        assert!(
            ok("passwordpassword", false).is_err(),
            "a common word repeated"
        );
        assert!(ok("!!!Password123!!!", false).is_err(), "decorated");
        assert!(
            ok("abcabcabcabcabc", false).is_err(),
            "a short unit repeated"
        );
        // 64+ characters and non-ASCII are accepted, no composition rules.
        ok(&"ünïcødé pässwörd ✓ ".repeat(4), false).unwrap();
        ok(
            &"x".repeat(40)
                .chars()
                .chain("yz".chars())
                .chain("0123456789".repeat(3).chars())
                .collect::<String>(),
            false,
        )
        .unwrap();
        assert!(ok(&"ab".repeat(129), false).is_err(), "over 256 characters");
    }

    #[test]
    fn strict_profile() {
        let s = resolve_settings(&SecuritySettings {
            password: PasswordRules {
                profile: PasswordProfile::Strict,
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        assert_eq!((s.min_length, s.max_age_days, s.history), (10, 120, 5));
        let ok = |pw: &str| check_password(pw, &s, false, &[]);
        ok("Kettle#42bay").unwrap();
        assert!(ok("kettle#42bay")
            .unwrap_err()
            .message
            .contains("upper-case"));
        assert!(ok("Kettle42bay").is_err(), "no special character");
        assert!(ok("Ke#4tle").unwrap_err().message.contains("short"));
    }

    #[test]
    fn settings_are_bounded() {
        let bad = SecuritySettings {
            lockout_threshold: Some(101),
            ..Default::default()
        };
        assert!(resolve_settings(&bad).is_err());
        let bad = SecuritySettings {
            session_idle_minutes: Some(0),
            ..Default::default()
        };
        assert!(resolve_settings(&bad).is_err());
        let custom = SecuritySettings {
            mfa_required_roles: vec!["support_agent".into()],
            ..Default::default()
        };
        assert_eq!(
            resolve_settings(&custom).unwrap().mfa_required_roles,
            ["admin", "operator", "support_agent"]
        );
    }

    #[test]
    fn lock_delays_grow_and_cap() {
        assert_eq!(lock_delay_ms(60, 0), 60_000);
        assert_eq!(lock_delay_ms(60, 1), 120_000);
        assert_eq!(lock_delay_ms(60, 3), 480_000);
        assert_eq!(lock_delay_ms(60, 40), MAX_LOCK_MS);
    }

    #[test]
    fn recovery_codes_format() {
        let c = recovery_code(&[0xff; 10]);
        assert_eq!(c.len(), 19);
        assert_eq!(
            canonical_recovery_code(&c.to_uppercase()),
            c.replace('-', "")
        );
    }
}
