//! `SecurityContext`: the vault of API keys, session keys and storage keys.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{Ipv4Addr, Ipv6Addr},
};

use chrysalis_crypto::{
    AesGcmKey, LockedSecret, Provider, fill_random, scrub_stack, validate_api_key_format,
};
use zeroize::Zeroizing;

use crate::{
    SecurityError,
    envelope::{self, Kind},
    vault::{StoredApiKey, StoredKey, StoredSession, VaultContents, VaultKey, VaultOpening},
};

/// How many past session key generations a new context keeps by default.
pub const DEFAULT_RETAINED_SESSION_KEYS: u32 = 2;

/// Settings of a new [`SecurityContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Past generations of each session key kept after a rotation, so that data encrypted under
    /// them still decrypts; older data fails with `KEY_RETIRED`.
    pub retained_session_keys: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            retained_session_keys: DEFAULT_RETAINED_SESSION_KEYS,
        }
    }
}

/// A 256-bit key kept both raw (for vault export) and expanded (for use); wiped on drop.
struct Key {
    raw: LockedSecret<[u8; 32]>,
    cipher: AesGcmKey,
}

impl Key {
    /// Copies `raw` straight into its boxed home (no stack copy to leave behind).
    fn new(raw: &[u8; 32]) -> Result<Self, SecurityError> {
        let mut secret = LockedSecret::new([0u8; 32]);
        secret.expose_mut().copy_from_slice(raw);
        Self::expand(secret)
    }

    fn random() -> Result<Self, SecurityError> {
        let mut secret = LockedSecret::new([0u8; 32]);
        fill_random(secret.expose_mut())?;
        Self::expand(secret)
    }

    fn expand(raw: LockedSecret<[u8; 32]>) -> Result<Self, SecurityError> {
        let cipher = AesGcmKey::new(raw.expose())?;
        Ok(Key { raw, cipher })
    }
}

/// A context being unlocked from a vault: [`run`](Self::run) scrypt a bounded number of steps
/// at a time (a page's thread yields between slices), then [`finish`](Self::finish). Made by
/// [`SecurityContext::unlocking`]; every intermediate secret is wiped on drop.
pub struct Unlocking(VaultOpening);

impl Unlocking {
    /// Runs at most `max_steps` steps of scrypt (one BlockMix of 1 KiB each); returns whether
    /// the key is derived.
    pub fn run(&mut self, max_steps: u64) -> bool {
        self.0.run(max_steps)
    }

    /// How much of the key derivation has run, from 0 to 1.
    pub fn progress(&self) -> f64 {
        self.0.progress()
    }

    /// The unlocked context (deriving what is left of the key first): `AUTH_FAILED` for a wrong
    /// passphrase or a modified vault, `BAD_FORMAT` for contents that do not decode.
    pub fn finish(self) -> Result<SecurityContext, SecurityError> {
        let context = self
            .0
            .finish()
            .and_then(|(contents, key)| SecurityContext::from_vault(&contents, key));
        scrub_stack();
        context
    }
}

/// Everything an unlocked context holds. Dropping it wipes every key.
struct Unlocked {
    master: Key,
    retained_session_keys: u32,
    /// API keys sealed under the master key (AAD: the provider name).
    api_keys: BTreeMap<Provider, Vec<u8>>,
    /// Each session's key generations, oldest first; the last is current.
    sessions: BTreeMap<String, VecDeque<(u32, Key)>>,
    storage_keys: BTreeMap<u32, Key>,
    current_storage_key: u32,
    /// The passphrase-derived key of the last export or unlock, for `seal_vault`.
    vault_key: Option<VaultKey>,
}

/// The security context of a page: API keys, session keys with rotation, storage keys, all in
/// memory that is wiped on [`lock`](Self::lock) or drop, and a passphrase-sealed export.
pub struct SecurityContext {
    state: Option<Box<Unlocked>>,
    /// Origins besides the provider's public API that may receive its key (not persisted).
    extra_origins: BTreeMap<Provider, BTreeSet<String>>,
}

/// The origin of each provider's public API: the only place its key goes unless a page allows
/// another with [`SecurityContext::allow_api_origin`].
pub fn default_api_origin(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::OpenAi => Some("https://api.openai.com"),
        Provider::Anthropic => Some("https://api.anthropic.com"),
        Provider::Nomic => Some("https://api-atlas.nomic.ai"),
        Provider::Cohere => Some("https://api.cohere.com"),
        Provider::Google => Some("https://generativelanguage.googleapis.com"),
        Provider::Unknown => None,
    }
}

/// Splits `host[:port]` (the host may be a bracketed IPv6 address) into the host and whether it
/// was bracketed; `None` when it is not of that form or the port is not a number below 65536.
fn split_authority(authority: &str) -> Option<(&str, bool)> {
    let (host, port, bracketed) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, port) = bracketed.split_once(']')?;
            (host, port, true)
        }
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            (host, port, false)
        }
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    (port_ok && !host.is_empty()).then_some((host, bracketed))
}

/// Whether `host` is a loopback host: `localhost`, an IPv4 address in `127.0.0.0/8`, or (in
/// brackets) `::1`. What the parsers do not take exactly (`127.1`, `0x7f.0.0.1`,
/// `localhost.example`) is not loopback.
fn is_loopback_host(host: &str, bracketed: bool) -> bool {
    if bracketed {
        host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
    } else {
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }
}

fn api_key_aad(provider: Provider) -> Vec<u8> {
    [b"chrysalis api key ".as_slice(), provider.name().as_bytes()].concat()
}

impl SecurityContext {
    /// A fresh context with a random master key and a first storage key.
    pub fn new(config: SecurityConfig) -> Result<Self, SecurityError> {
        let context = Self::with_master(Key::random()?, config);
        scrub_stack();
        context
    }

    /// A fresh context around a caller-supplied 32-byte master key (e.g. derived from a
    /// hardware-backed secret).
    pub fn from_master_key(
        master_key: &[u8],
        config: SecurityConfig,
    ) -> Result<Self, SecurityError> {
        let master: &[u8; 32] =
            master_key
                .try_into()
                .map_err(|_| chrysalis_crypto::CryptoError::BadLength {
                    what: "master key",
                    expected: "32".into(),
                    actual: master_key.len(),
                })?;
        let context = Self::with_master(Key::new(master)?, config);
        scrub_stack();
        context
    }

    fn with_master(master: Key, config: SecurityConfig) -> Result<Self, SecurityError> {
        let mut storage_keys = BTreeMap::new();
        storage_keys.insert(1, Key::random()?);
        Ok(SecurityContext {
            state: Some(Box::new(Unlocked {
                master,
                retained_session_keys: config.retained_session_keys,
                api_keys: BTreeMap::new(),
                sessions: BTreeMap::new(),
                storage_keys,
                current_storage_key: 1,
                vault_key: None,
            })),
            extra_origins: BTreeMap::new(),
        })
    }

    /// Opens a vault blob made by [`export_vault`](Self::export_vault).
    ///
    /// Wrong passphrase: `AUTH_FAILED`; truncated, corrupt or unknown-version blob: `BAD_FORMAT`;
    /// a scrypt cost other than what [`export_vault`](Self::export_vault) writes:
    /// `BAD_KDF_PARAMS`, refused before scrypt runs; over [`MAX_VAULT_LEN`](crate::MAX_VAULT_LEN)
    /// bytes: `TOO_LARGE`, before it is copied.
    pub fn unlock(blob: &[u8], passphrase: &[u8]) -> Result<Self, SecurityError> {
        crate::check_vault_len(blob.len())?;
        Self::unlocking(blob.to_vec(), passphrase)?.finish()
    }

    /// Starts opening a vault blob a slice at a time (see [`Unlocking`]); the blob's header is
    /// checked here, with [`unlock`](Self::unlock)'s errors, before any of scrypt's cost runs.
    pub fn unlocking(blob: Vec<u8>, passphrase: &[u8]) -> Result<Unlocking, SecurityError> {
        VaultOpening::start(blob, passphrase).map(Unlocking)
    }

    fn from_vault(contents: &VaultContents, vault_key: VaultKey) -> Result<Self, SecurityError> {
        let bad = |reason: &str| SecurityError::bad_format("vault", reason.to_owned());
        let mut api_keys = BTreeMap::new();
        let master = Key::new(&contents.master_key)?;
        for stored in &contents.api_keys {
            let provider: Provider = stored
                .provider
                .parse()
                .map_err(|_| bad("unknown provider in the vault"))?;
            let sealed = master
                .cipher
                .seal(stored.key.as_bytes(), &api_key_aad(provider))?;
            api_keys.insert(provider, sealed);
        }
        let mut sessions = BTreeMap::new();
        for session in &contents.sessions {
            let mut keys = VecDeque::new();
            for stored in &session.keys {
                keys.push_back((stored.id, Key::new(&stored.key)?));
            }
            if keys.is_empty() {
                return Err(bad("a session without keys"));
            }
            sessions.insert(session.id.clone(), keys);
        }
        let mut storage_keys = BTreeMap::new();
        for stored in &contents.storage_keys {
            storage_keys.insert(stored.id, Key::new(&stored.key)?);
        }
        if !storage_keys.contains_key(&contents.current_storage_key) {
            return Err(bad("the current storage key is missing"));
        }
        Ok(SecurityContext {
            state: Some(Box::new(Unlocked {
                master,
                retained_session_keys: contents.retained_session_keys,
                api_keys,
                sessions,
                storage_keys,
                current_storage_key: contents.current_storage_key,
                vault_key: Some(vault_key),
            })),
            extra_origins: BTreeMap::new(),
        })
    }

    fn unlocked(&self) -> Result<&Unlocked, SecurityError> {
        self.state.as_deref().ok_or(SecurityError::Locked)
    }

    fn unlocked_mut(&mut self) -> Result<&mut Unlocked, SecurityError> {
        self.state.as_deref_mut().ok_or(SecurityError::Locked)
    }

    /// Seals the whole context under `passphrase` (scrypt with N = 2^`log_n`, r = 8, p = 1 and a
    /// fresh salt) and remembers the derived key for [`seal_vault`](Self::seal_vault).
    /// `log_n` must be in [`VAULT_LOG_N_RANGE`](crate::VAULT_LOG_N_RANGE) (`BAD_PARAMS`).
    /// A failed export (`TOO_LARGE`) leaves the key of the last export or unlock in place.
    pub fn export_vault(&mut self, passphrase: &[u8], log_n: u8) -> Result<Vec<u8>, SecurityError> {
        let key = VaultKey::derive(passphrase, log_n)?;
        let state = self.unlocked_mut()?;
        let blob = state.contents().and_then(|contents| key.seal(&contents));
        scrub_stack();
        let blob = blob?;
        state.vault_key = Some(key);
        Ok(blob)
    }

    /// Seals the context with the key of the last export or unlock (no passphrase needed).
    pub fn seal_vault(&self) -> Result<Vec<u8>, SecurityError> {
        let state = self.unlocked()?;
        let key = state
            .vault_key
            .as_ref()
            .ok_or(SecurityError::NoPassphrase)?;
        let blob = state.contents().and_then(|contents| key.seal(&contents));
        scrub_stack();
        blob
    }

    /// Stores (or replaces) the API key of `provider` after checking its format.
    pub fn store_api_key(&mut self, provider: Provider, key: &str) -> Result<(), SecurityError> {
        let state = self.unlocked_mut()?;
        let key = key.trim();
        validate_api_key_format(key, Some(provider)).map_err(|reason| {
            chrysalis_crypto::CryptoError::BadFormat {
                what: "API key",
                reason,
            }
        })?;
        let sealed = state
            .master
            .cipher
            .seal(key.as_bytes(), &api_key_aad(provider))?;
        state.api_keys.insert(provider, sealed);
        Ok(())
    }

    /// Whether an API key is stored for `provider`.
    pub fn has_api_key(&self, provider: Provider) -> Result<bool, SecurityError> {
        Ok(self.unlocked()?.api_keys.contains_key(&provider))
    }

    /// Removes the API key of `provider`; returns whether there was one.
    pub fn remove_api_key(&mut self, provider: Provider) -> Result<bool, SecurityError> {
        Ok(self.unlocked_mut()?.api_keys.remove(&provider).is_some())
    }

    /// The providers with a stored API key, in a fixed order.
    pub fn list_providers(&self) -> Result<Vec<Provider>, SecurityError> {
        Ok(self.unlocked()?.api_keys.keys().copied().collect())
    }

    /// Runs `f` with the plaintext API key of `provider`; the plaintext is wiped afterwards.
    /// This is how other SDK modules use a key without a page ever holding it.
    pub fn with_api_key<R>(
        &self,
        provider: Provider,
        f: impl FnOnce(&str) -> R,
    ) -> Result<R, SecurityError> {
        let key = self.get_api_key(provider)?;
        Ok(f(&key))
    }

    /// The plaintext API key of `provider`, in a string wiped on drop.
    pub fn get_api_key(&self, provider: Provider) -> Result<Zeroizing<String>, SecurityError> {
        let state = self.unlocked()?;
        let sealed = state
            .api_keys
            .get(&provider)
            .ok_or_else(|| SecurityError::NoApiKey(provider.name().to_owned()))?;
        let bytes = Zeroizing::new(state.master.cipher.open(sealed, &api_key_aad(provider))?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| SecurityError::bad_format("API key", "not UTF-8"))?;
        Ok(Zeroizing::new(text.to_owned()))
    }

    /// The redacted form of `provider`'s API key (`sk-...abcd`).
    pub fn redacted_api_key(&self, provider: Provider) -> Result<String, SecurityError> {
        let key = self.get_api_key(provider)?;
        Ok(chrysalis_crypto::ApiKey::parse(&key)?.redacted())
    }

    /// Lets the key of `provider` also go to `origin` (`scheme://host[:port]`, e.g. a proxy or a
    /// test server); kept in memory only. The scheme must be `https`, except for a loopback
    /// host (`localhost`, `127.0.0.0/8`, `[::1]`), which may use `http`: anywhere else plain
    /// HTTP would show the key to the network (`INSECURE_ORIGIN`).
    pub fn allow_api_origin(
        &mut self,
        provider: Provider,
        origin: &str,
    ) -> Result<(), SecurityError> {
        self.unlocked()?;
        let origin = origin.trim_end_matches('/');
        let bad = || SecurityError::bad_format("origin", "expected scheme://host[:port]");
        let (scheme, authority) = origin.split_once("://").ok_or_else(bad)?;
        if authority.contains(['/', '@', '?', '#', '\\']) {
            return Err(bad());
        }
        let (host, bracketed) = split_authority(authority).ok_or_else(bad)?;
        match scheme {
            "https" => {}
            "http" if is_loopback_host(host, bracketed) => {}
            "http" => {
                return Err(SecurityError::InsecureOrigin {
                    origin: origin.to_owned(),
                });
            }
            _ => return Err(bad()),
        }
        self.extra_origins
            .entry(provider)
            .or_default()
            .insert(origin.to_owned());
        Ok(())
    }

    /// Whether the key of `provider` may be sent to `origin` (as the browser's URL parser
    /// reports it: `scheme://host[:port]`, no trailing slash).
    pub fn api_origin_allowed(&self, provider: Provider, origin: &str) -> bool {
        default_api_origin(provider) == Some(origin)
            || self
                .extra_origins
                .get(&provider)
                .is_some_and(|set| set.contains(origin))
    }

    /// Every origin the key of `provider` may be sent to: its public API's (if it has one), then
    /// those allowed with [`allow_api_origin`](Self::allow_api_origin). For a caller that can
    /// test a request's origin against candidates but should not trust a copy of it (the JS
    /// face compares bytes in code captured before page scripts could patch its helpers).
    pub fn api_origins(&self, provider: Provider) -> impl Iterator<Item = &str> {
        default_api_origin(provider).into_iter().chain(
            self.extra_origins
                .get(&provider)
                .into_iter()
                .flatten()
                .map(String::as_str),
        )
    }

    /// The `Authorization` header value (`Bearer <key>`) for a request to `origin`, refused
    /// unless [`api_origin_allowed`](Self::api_origin_allowed); wiped on drop.
    pub fn authorization_for(
        &self,
        provider: Provider,
        origin: &str,
    ) -> Result<Zeroizing<String>, SecurityError> {
        if !self.api_origin_allowed(provider, origin) {
            return Err(SecurityError::OriginNotAllowed {
                provider: provider.name().to_owned(),
                origin: origin.to_owned(),
            });
        }
        let key = self.get_api_key(provider)?;
        let mut header = Zeroizing::new(String::with_capacity(7 + key.len()));
        header.push_str("Bearer ");
        header.push_str(&key);
        Ok(header)
    }

    /// Starts a new key generation for `session` (creating the session if needed) and drops
    /// generations beyond the retention; returns the new generation number.
    pub fn rotate_session_key(&mut self, session: &str) -> Result<u32, SecurityError> {
        let state = self.unlocked_mut()?;
        let retained = state.retained_session_keys as usize;
        let keys = state.sessions.entry(session.to_owned()).or_default();
        let generation = keys.back().map_or(Ok(0), |(g, _)| {
            g.checked_add(1)
                .ok_or_else(|| SecurityError::bad_format("session", "generation counter exhausted"))
        })?;
        keys.push_back((generation, Key::random()?));
        while keys.len() > retained + 1 {
            keys.pop_front();
        }
        Ok(generation)
    }

    /// Encrypts under the current key of `session` (generation 0 is created on first use).
    pub fn session_encrypt(
        &mut self,
        session: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, SecurityError> {
        if !self.unlocked()?.sessions.contains_key(session) {
            self.rotate_session_key(session)?;
        }
        let state = self.unlocked()?;
        let (generation, key) = state.sessions[session].back().expect("a session has a key");
        envelope::seal(
            Kind::Session,
            *generation,
            &key.cipher,
            session.as_bytes(),
            plaintext,
            aad,
        )
    }

    /// Decrypts a session envelope under the generation it names.
    ///
    /// `KEY_RETIRED` when that generation was rotated out; `UNKNOWN_SESSION`, `KEY_NOT_FOUND`,
    /// `AUTH_FAILED`, `BAD_FORMAT` otherwise.
    pub fn session_decrypt(
        &self,
        session: &str,
        envelope_bytes: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, SecurityError> {
        let state = self.unlocked()?;
        let parsed = envelope::parse(Kind::Session, envelope_bytes)?;
        let keys = state
            .sessions
            .get(session)
            .ok_or_else(|| SecurityError::UnknownSession(session.to_owned()))?;
        let oldest = keys.front().expect("a session has a key").0;
        let Some((_, key)) = keys.iter().find(|(g, _)| *g == parsed.id) else {
            let current = keys.back().expect("a session has a key").0;
            return Err(if parsed.id < oldest {
                SecurityError::KeyRetired {
                    session: session.to_owned(),
                    generation: parsed.id,
                    oldest,
                }
            } else {
                debug_assert!(parsed.id > current);
                SecurityError::KeyNotFound {
                    what: "session",
                    id: parsed.id,
                }
            });
        };
        envelope::open(&parsed, &key.cipher, session.as_bytes(), aad)
    }

    /// Encrypts `plaintext` into a storage envelope under the newest storage key.
    pub fn encrypt_for_storage(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, SecurityError> {
        let state = self.unlocked()?;
        let key = &state.storage_keys[&state.current_storage_key];
        envelope::seal(
            Kind::Storage,
            state.current_storage_key,
            &key.cipher,
            &[],
            plaintext,
            aad,
        )
    }

    /// Decrypts a storage envelope under whichever storage key it names.
    pub fn decrypt_from_storage(
        &self,
        envelope_bytes: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, SecurityError> {
        let state = self.unlocked()?;
        let parsed = envelope::parse(Kind::Storage, envelope_bytes)?;
        let key = state
            .storage_keys
            .get(&parsed.id)
            .ok_or(SecurityError::KeyNotFound {
                what: "storage",
                id: parsed.id,
            })?;
        envelope::open(&parsed, &key.cipher, &[], aad)
    }

    /// Adds a new storage key that new envelopes use; old ones stay readable. Returns its id.
    pub fn rotate_storage_key(&mut self) -> Result<u32, SecurityError> {
        let state = self.unlocked_mut()?;
        let id = state
            .current_storage_key
            .checked_add(1)
            .ok_or_else(|| SecurityError::bad_format("storage key", "id counter exhausted"))?;
        state.storage_keys.insert(id, Key::random()?);
        state.current_storage_key = id;
        Ok(id)
    }

    /// The id of the storage key new envelopes use.
    pub fn current_storage_key_id(&self) -> Result<u32, SecurityError> {
        Ok(self.unlocked()?.current_storage_key)
    }

    /// Re-encrypts an envelope under the newest storage key (same `aad`).
    pub fn reencrypt(&self, envelope_bytes: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecurityError> {
        let plaintext = Zeroizing::new(self.decrypt_from_storage(envelope_bytes, aad)?);
        self.encrypt_for_storage(&plaintext, aad)
    }

    /// Wipes every key; every later call fails with `LOCKED`.
    pub fn lock(&mut self) {
        self.state = None;
        scrub_stack();
    }

    /// Whether [`lock`](Self::lock) was called.
    pub fn is_locked(&self) -> bool {
        self.state.is_none()
    }
}

impl Unlocked {
    fn contents(&self) -> Result<VaultContents, SecurityError> {
        let mut contents = VaultContents::default();
        contents
            .master_key
            .copy_from_slice(self.master.raw.expose());
        contents.retained_session_keys = self.retained_session_keys;
        contents.current_storage_key = self.current_storage_key;
        for (provider, sealed) in &self.api_keys {
            let key = Zeroizing::new(self.master.cipher.open(sealed, &api_key_aad(*provider))?);
            contents.api_keys.push(StoredApiKey {
                provider: provider.name().to_owned(),
                key: String::from_utf8(key.to_vec())
                    .map_err(|_| SecurityError::bad_format("API key", "not UTF-8"))?,
            });
        }
        for (id, keys) in &self.sessions {
            contents.sessions.push(StoredSession {
                id: id.clone(),
                keys: keys
                    .iter()
                    .map(|(g, k)| StoredKey::copy_of(*g, k.raw.expose()))
                    .collect(),
            });
        }
        contents.storage_keys = self
            .storage_keys
            .iter()
            .map(|(id, k)| StoredKey::copy_of(*id, k.raw.expose()))
            .collect();
        Ok(contents)
    }
}

impl Drop for SecurityContext {
    fn drop(&mut self) {
        self.lock();
    }
}

impl std::fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state.as_deref() {
            None => f.write_str("SecurityContext { locked }"),
            Some(state) => f
                .debug_struct("SecurityContext")
                .field(
                    "providers",
                    &state.api_keys.keys().map(|p| p.name()).collect::<Vec<_>>(),
                )
                .field("sessions", &state.sessions.len())
                .field("storage_keys", &state.storage_keys.len())
                .finish_non_exhaustive(),
        }
    }
}
