//! API-key formats of the model providers: recognise, validate and redact without ever
//! showing the key.

use std::{fmt, str::FromStr};

use crate::{CryptoError, LockedSecret};

/// The longest key text accepted (no provider comes near it).
pub const API_KEY_MAX_LEN: usize = 512;

/// A model provider whose key format is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    /// OpenAI: `sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…`.
    OpenAi,
    /// Anthropic: `sk-ant-…`.
    Anthropic,
    /// Nomic Atlas: `nk-…`.
    Nomic,
    /// Cohere: 40 letters and digits.
    Cohere,
    /// Google (Gemini / AI Studio): `AIza` and 35 more characters.
    Google,
    /// Any other well-formed token.
    Unknown,
}

impl Provider {
    /// Every provider, in a fixed order.
    pub const ALL: [Provider; 6] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Nomic,
        Provider::Cohere,
        Provider::Google,
        Provider::Unknown,
    ];

    /// The lowercase name used in the JS API (`"openai"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Nomic => "nomic",
            Provider::Cohere => "cohere",
            Provider::Google => "google",
            Provider::Unknown => "unknown",
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            Provider::OpenAi => "OpenAI",
            Provider::Anthropic => "Anthropic",
            Provider::Nomic => "Nomic",
            Provider::Cohere => "Cohere",
            Provider::Google => "Google",
            Provider::Unknown => "unknown-provider",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = CryptoError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "openai" => Ok(Provider::OpenAi),
            "anthropic" => Ok(Provider::Anthropic),
            "nomic" => Ok(Provider::Nomic),
            "cohere" => Ok(Provider::Cohere),
            "google" | "gemini" => Ok(Provider::Google),
            "unknown" => Ok(Provider::Unknown),
            _ => Err(CryptoError::UnknownProvider {
                name: name.to_owned(),
            }),
        }
    }
}

/// Prefixes that identify a provider, longest first so `sk-ant-` wins over `sk-`.
const PREFIXES: [(&str, Provider); 7] = [
    ("sk-svcacct-", Provider::OpenAi),
    ("sk-admin-", Provider::OpenAi),
    ("sk-proj-", Provider::OpenAi),
    ("sk-ant-", Provider::Anthropic),
    ("sk-", Provider::OpenAi),
    ("nk-", Provider::Nomic),
    ("AIza", Provider::Google),
];

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The provider whose prefix `key` carries, and that prefix.
fn detect(key: &str) -> (Provider, &'static str) {
    for (prefix, provider) in PREFIXES {
        if key.starts_with(prefix) {
            return (provider, prefix);
        }
    }
    if key.len() == 40 && key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return (Provider::Cohere, "");
    }
    (Provider::Unknown, "")
}

/// Checks the shape of `key` for `provider`; the reason never quotes the key.
fn check(key: &str, provider: Provider) -> Result<(), String> {
    let (detected, prefix) = detect(key);
    let body = &key[prefix.len()..];
    let need = |what: &str| Err(format!("{} keys {what}", provider.display_name()));
    match provider {
        Provider::OpenAi | Provider::Anthropic | Provider::Nomic | Provider::Google
            if detected != provider =>
        {
            let expected = match provider {
                Provider::OpenAi => "\"sk-\"",
                Provider::Anthropic => "\"sk-ant-\"",
                Provider::Nomic => "\"nk-\"",
                _ => "\"AIza\"",
            };
            need(&format!("start with {expected}"))
        }
        Provider::OpenAi | Provider::Anthropic | Provider::Nomic if body.len() < 20 => {
            need("have at least 20 characters after the prefix")
        }
        Provider::Google if body.len() != 35 => need("are 39 characters long"),
        Provider::Cohere if detected != Provider::Cohere => need("are 40 letters and digits"),
        Provider::Unknown if key.len() < 8 => Err("API keys have at least 8 characters".into()),
        _ => Ok(()),
    }
}

/// Checks the characters every key shares: 1 to 512 of letters, digits, `-` and `_`.
fn check_charset(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.len() > API_KEY_MAX_LEN {
        return Err(format!(
            "the key is {} characters long; the limit is {API_KEY_MAX_LEN}",
            key.len()
        ));
    }
    if let Some((i, _)) = key.char_indices().find(|(_, c)| !token_char(*c)) {
        return Err(format!(
            "the key has a character other than letters, digits, '-' and '_' at position {i}"
        ));
    }
    Ok(())
}

/// Validates the format of `text` (surrounding whitespace is ignored). With `provider`, the key
/// must have that provider's format; without, any known or plausible key passes. Returns the
/// provider the key belongs to, or a reason that never contains the key.
pub fn validate_api_key_format(text: &str, provider: Option<Provider>) -> Result<Provider, String> {
    let key = text.trim();
    check_charset(key)?;
    let provider = provider.unwrap_or_else(|| detect(key).0);
    check(key, provider)?;
    Ok(provider)
}

/// `text` with every API key of a known provider in it replaced by its redacted form
/// (`sk-...abcd`), e.g. for a provider's error message that quotes the key it refused.
pub fn redact_api_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| token_char(c)) {
        out.push_str(&rest[..start]);
        let word = &rest[start..];
        let end = word.find(|c: char| !token_char(c)).unwrap_or(word.len());
        let token = &word[..end];
        match ApiKey::parse(token) {
            Ok(key) if key.provider() != Provider::Unknown => out.push_str(&key.redacted()),
            _ => out.push_str(token),
        }
        rest = &word[end..];
    }
    out.push_str(rest);
    out
}

/// An API key held as a zeroize-on-drop secret. `Debug` shows only the redacted form.
pub struct ApiKey {
    provider: Provider,
    secret: LockedSecret<String>,
}

impl ApiKey {
    /// Parses a key (surrounding whitespace ignored) and recognises its provider.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let provider =
            validate_api_key_format(text, None).map_err(|reason| CryptoError::BadFormat {
                what: "API key",
                reason,
            })?;
        Ok(ApiKey {
            provider,
            secret: LockedSecret::new(text.trim().to_owned()),
        })
    }

    /// The provider the key belongs to.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// A form safe to log: the provider prefix, `...` and the last four characters
    /// (`sk-...abcd`); keys shorter than 16 characters show only the prefix and `...`.
    pub fn redacted(&self) -> String {
        let key = self.secret.expose();
        let (_, prefix) = detect(key);
        if key.len() < 16 {
            format!("{prefix}...")
        } else {
            format!("{prefix}...{}", &key[key.len() - 4..])
        }
    }

    /// The key itself, for the code that must send it to the provider.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("provider", &self.provider)
            .field("key", &self.redacted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inside_text_are_redacted() {
        let text =
            format!("Incorrect API key provided: {OPENAI}. Also ({GOOGLE}); not-a-key stays.");
        let redacted = redact_api_keys(&text);
        assert_eq!(
            redacted,
            "Incorrect API key provided: sk-proj-...WXYZ. Also (AIza...rstuv); not-a-key stays."
                .replace("rstuv", &GOOGLE[GOOGLE.len() - 4..])
        );
        assert_eq!(redact_api_keys("plain words, 42"), "plain words, 42");
    }

    const OPENAI: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ";
    const ANTHROPIC: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-QRST";
    const GOOGLE: &str = "AIzaSyA1234567890abcdefghijklmnopqrstuv";

    #[test]
    fn recognises_providers() {
        let cases = [
            (OPENAI, Provider::OpenAi),
            (
                "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL",
                Provider::OpenAi,
            ),
            (ANTHROPIC, Provider::Anthropic),
            ("nk-abcdefghijklmnopqrstuvwxyz012345", Provider::Nomic),
            ("abcdefghijklmnopqrstuvwxyz0123456789ABCD", Provider::Cohere),
            (GOOGLE, Provider::Google),
            ("some-other-token-123", Provider::Unknown),
        ];
        for (key, provider) in cases {
            assert_eq!(ApiKey::parse(key).unwrap().provider(), provider, "{key}");
        }
        assert_eq!(GOOGLE.len(), 39);
    }

    #[test]
    fn redacts_to_prefix_and_last_four() {
        assert_eq!(ApiKey::parse(OPENAI).unwrap().redacted(), "sk-proj-...WXYZ");
        assert_eq!(
            ApiKey::parse(ANTHROPIC).unwrap().redacted(),
            "sk-ant-...QRST"
        );
        assert_eq!(
            ApiKey::parse(" sk-abcdefghijklmnopqrstuvwxyzabcd\n")
                .unwrap()
                .redacted(),
            "sk-...abcd"
        );
        assert_eq!(ApiKey::parse("short-token").unwrap().redacted(), "...");
    }

    #[test]
    fn reasons_and_debug_never_contain_the_key() {
        let secret_part = "abcdefghijklmnopqrstuvwxyz0123456789";
        for (text, provider) in [
            (format!("sk-{secret_part} x"), None),
            (format!("nk-{secret_part}"), Some(Provider::OpenAi)),
            (format!("sk-{}", &secret_part[..10]), Some(Provider::OpenAi)),
            (format!("AIza{secret_part}"), Some(Provider::Google)),
            (secret_part.to_string(), Some(Provider::Cohere)),
        ] {
            let reason = validate_api_key_format(&text, provider).unwrap_err();
            assert!(!reason.contains(&secret_part[..10]), "{reason}");
            let err = ApiKey::parse(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains(&secret_part[..10]), "{err}");
        }
        let key = ApiKey::parse(OPENAI).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("abcdefghij"), "{debug}");
        assert!(debug.contains("sk-proj-...WXYZ"));
    }

    #[test]
    fn validation_against_a_named_provider() {
        assert_eq!(
            validate_api_key_format(OPENAI, Some(Provider::OpenAi)),
            Ok(Provider::OpenAi)
        );
        assert_eq!(
            validate_api_key_format(ANTHROPIC, Some(Provider::OpenAi)).unwrap_err(),
            "OpenAI keys start with \"sk-\""
        );
        assert_eq!(
            validate_api_key_format("sk-tooshort", Some(Provider::OpenAi)).unwrap_err(),
            "OpenAI keys have at least 20 characters after the prefix"
        );
        assert_eq!(
            validate_api_key_format("", None).unwrap_err(),
            "the key is empty"
        );
        assert!(
            validate_api_key_format(&"a".repeat(600), None)
                .unwrap_err()
                .contains("limit is 512")
        );
        assert_eq!("Gemini".parse::<Provider>().unwrap(), Provider::Google);
    }
}
