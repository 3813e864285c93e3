//! `SecurityContext`: the key vault, session keys, storage envelopes, vault export and
//! IndexedDB persistence.

use chrysalis_crypto::Provider;
use chrysalis_security::{self as security, DEFAULT_VAULT_LOG_N, SecurityConfig};
use js_sys::{JsString, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use zeroize::Zeroizing;

use crate::{
    error::{CodedError, JsResult, js},
    input::{bytes_or_text, integer_option, or_undefined},
    kdf::{ProgressControl, Resumable, SliceControl, run_in_slices},
};

impl Resumable for security::Unlocking {
    fn run(&mut self, max_steps: u64) -> bool {
        security::Unlocking::run(self, max_steps)
    }

    fn progress(&self) -> f64 {
        security::Unlocking::progress(self)
    }
}

#[wasm_bindgen(module = "/js/indexeddb.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = idbPutVault)]
    async fn idb_put_vault(name: &str, bytes: Uint8Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = idbGetVault)]
    async fn idb_get_vault(name: &str) -> Result<JsValue, JsValue>;
}

/// The vault blob persisted in IndexedDB store `store`. Any script of the origin can write there:
/// it must be bytes (`BAD_FORMAT`) of at most `MAX_VAULT_LEN` (`TOO_LARGE`), checked before the
/// copy into wasm; `NOT_FOUND` when the store holds none.
pub(crate) async fn stored_vault(store: &str) -> Result<Vec<u8>, JsValue> {
    let blob = idb_get_vault(store).await?;
    if blob.is_undefined() {
        return Err(js(CodedError::new(
            "NOT_FOUND",
            format!("no vault in IndexedDB store {store:?}"),
        )));
    }
    let blob = blob.dyn_into::<Uint8Array>().map_err(|_| {
        js(CodedError::new(
            "BAD_FORMAT",
            format!("the vault in IndexedDB store {store:?} is not bytes"),
        ))
    })?;
    security::check_vault_len(blob.length() as usize).map_err(js)?;
    Ok(blob.to_vec())
}

// authorizedFetch's JS half: fetch, Request, URL and every helper it calls are captured when the
// module is imported (see the file's header for what that protects and its limit).
#[wasm_bindgen(module = "/js/authorized-fetch.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = prepareAuthorizedRequest)]
    fn prepare_authorized_request(url: &JsValue, init: &JsValue) -> Result<u32, JsValue>;
    #[wasm_bindgen(js_name = preparedRequestOrigin)]
    fn prepared_request_origin(ticket: u32) -> String;
    #[wasm_bindgen(js_name = authorizedRequestOriginIs)]
    fn authorized_request_origin_is(ticket: u32, memory: &JsValue, ptr: usize, len: usize) -> bool;
    #[wasm_bindgen(js_name = attachAuthorization)]
    fn attach_authorization(ticket: u32, memory: &JsValue, ptr: usize, len: usize);
    #[wasm_bindgen(catch, js_name = dispatchAuthorizedRequest)]
    fn dispatch_authorized_request(ticket: u32) -> Result<Promise, JsValue>;
}

#[wasm_bindgen(typescript_custom_section)]
const SECURITY_TS: &str = r#"
/** Options of `new SecurityContext()`. */
export interface SecurityContextOptions {
  /** Past generations of each session key kept after a rotation (default 2). */
  retainedSessionKeys?: number;
}

/** Options of `exportVault`. */
export interface ExportVaultOptions {
  /** scrypt cost: N = 2^logN with r = 8, p = 1; 10 to 18, default 15. */
  logN?: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// The `SecurityContextOptions` object type declared above.
    #[wasm_bindgen(typescript_type = "SecurityContextOptions")]
    pub type SecurityContextOptions;
    /// The `ExportVaultOptions` object type declared above.
    #[wasm_bindgen(typescript_type = "ExportVaultOptions")]
    pub type ExportVaultOptions;
}

impl From<security::SecurityError> for CodedError {
    fn from(err: security::SecurityError) -> Self {
        CodedError::new(err.code(), err.to_string())
    }
}

fn provider(name: &str) -> Result<Provider, CodedError> {
    Ok(name.parse::<Provider>()?)
}

fn config(options: &JsValue) -> Result<SecurityConfig, CodedError> {
    let retained = integer_option(
        options,
        "retainedSessionKeys",
        u64::from(security::DEFAULT_RETAINED_SESSION_KEYS),
    )?;
    let retained_session_keys = u32::try_from(retained)
        .ok()
        .filter(|n| *n <= 1000)
        .ok_or_else(|| {
            CodedError::new(
                "BAD_PARAMS",
                "bad parameter retainedSessionKeys: must be at most 1000",
            )
        })?;
    Ok(SecurityConfig {
        retained_session_keys,
    })
}

/// The security context of a page: API keys, session keys with rotation and storage keys, held
/// in wasm memory and wiped on `lock()` / `free()`, with a passphrase-sealed vault export and
/// IndexedDB persistence. After `lock()` every call fails with `code: "LOCKED"`.
#[wasm_bindgen]
pub struct SecurityContext {
    inner: security::SecurityContext,
}

#[wasm_bindgen]
impl SecurityContext {
    /// A fresh context with a random master key.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Option<SecurityContextOptions>) -> JsResult<SecurityContext> {
        let inner = security::SecurityContext::new(config(&or_undefined(options))?).map_err(js)?;
        Ok(SecurityContext { inner })
    }

    /// A fresh context around your own 32-byte master key (e.g. from a hardware-backed secret).
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` unless the key is 32 bytes.
    #[wasm_bindgen(js_name = fromMasterKey)]
    pub fn from_master_key(
        #[wasm_bindgen(js_name = masterKey)] master_key: Vec<u8>,
        options: Option<SecurityContextOptions>,
    ) -> JsResult<SecurityContext> {
        let master_key = Zeroizing::new(master_key);
        let inner = security::SecurityContext::from_master_key(
            &master_key,
            config(&or_undefined(options))?,
        )
        .map_err(js)?;
        Ok(SecurityContext { inner })
    }

    /// Opens a vault made by `exportVault` (blocks for the scrypt cost stored in it, which may be
    /// only what `exportVault` writes: at most logN 18, r = 8, p = 1).
    ///
    /// @throws {Error} `code: "AUTH_FAILED"` for a wrong passphrase; `"BAD_FORMAT"` for a truncated or corrupt vault; `"TOO_LARGE"` over 16 MiB; `"BAD_KDF_PARAMS"` for any other scrypt cost (refused before scrypt runs).
    pub fn unlock(
        vault: &[u8],
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] passphrase: JsValue,
    ) -> JsResult<SecurityContext> {
        let passphrase = bytes_or_text(&passphrase, "passphrase")?;
        let inner = security::SecurityContext::unlock(vault, &passphrase).map_err(js)?;
        Ok(SecurityContext { inner })
    }

    /// Loads the vault persisted in IndexedDB store `store` and unlocks it, running scrypt in
    /// slices of about 12 ms (the page stays responsive), with progress and abort.
    ///
    /// @throws {Error} `code: "NOT_FOUND"` when the store holds no vault; `"BAD_FORMAT"` when it holds something other than bytes, `"TOO_LARGE"` over 16 MiB (both refused before any copy); `"ABORTED"` when the signal aborts; `"BAD_ARGUMENT"` for an `onProgress` that is not a function; as `unlock` otherwise.
    #[wasm_bindgen(unchecked_return_type = "Promise<SecurityContext>")]
    pub fn load(
        store: String,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] passphrase: JsValue,
        control: Option<ProgressControl>,
    ) -> JsResult<Promise> {
        let passphrase = bytes_or_text(&passphrase, "passphrase")?;
        let control = SliceControl::new(&or_undefined(control))?;
        Ok(future_to_promise(async move {
            let vault = stored_vault(&store).await?;
            let mut unlocking =
                security::SecurityContext::unlocking(vault, &passphrase).map_err(js)?;
            drop(passphrase);
            run_in_slices(&mut unlocking, &control).await?;
            let inner = unlocking.finish().map_err(js)?;
            Ok(SecurityContext { inner }.into())
        }))
    }

    /// Seals the whole context (API keys, session keys, storage keys) under `passphrase` with
    /// scrypt and a fresh salt; the result is safe to store anywhere.
    ///
    /// @throws {Error} `code: "BAD_PARAMS"` for `logN` outside 10 to 18.
    #[wasm_bindgen(js_name = exportVault)]
    pub fn export_vault(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] passphrase: JsValue,
        options: Option<ExportVaultOptions>,
    ) -> JsResult<Vec<u8>> {
        let passphrase = bytes_or_text(&passphrase, "passphrase")?;
        let log_n = integer_option(
            &or_undefined(options),
            "logN",
            u64::from(DEFAULT_VAULT_LOG_N),
        )?;
        let log_n = u8::try_from(log_n).unwrap_or(u8::MAX);
        self.inner.export_vault(&passphrase, log_n).map_err(js)
    }

    /// Persists the sealed vault in IndexedDB store `store`. Without `passphrase` it re-seals with
    /// the key of the last `exportVault` / `unlock` / `load`.
    ///
    /// @throws {Error} `code: "NO_PASSPHRASE"` when there is no passphrase to seal with.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn persist(&mut self, store: String, passphrase: Option<String>) -> JsResult<Promise> {
        let blob = match passphrase.map(Zeroizing::new) {
            None => self.inner.seal_vault().map_err(js)?,
            Some(passphrase) => self
                .inner
                .export_vault(passphrase.as_bytes(), DEFAULT_VAULT_LOG_N)
                .map_err(js)?,
        };
        Ok(future_to_promise(async move {
            idb_put_vault(&store, Uint8Array::from(&blob[..])).await?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Stores (or replaces) the API key of `provider` after checking its format.
    ///
    /// @throws {Error} `code: "BAD_FORMAT"` (the reason never quotes the key) or `"UNKNOWN_PROVIDER"`.
    #[wasm_bindgen(js_name = storeApiKey)]
    pub fn store_api_key(
        &mut self,
        #[wasm_bindgen(js_name = provider, unchecked_param_type = "ApiKeyProvider")] provider_name: String,
        key: String,
    ) -> JsResult<()> {
        let key = Zeroizing::new(key);
        self.inner
            .store_api_key(provider(&provider_name)?, &key)
            .map_err(js)
    }

    /// Whether an API key is stored for `provider`.
    #[wasm_bindgen(js_name = hasApiKey)]
    pub fn has_api_key(
        &self,
        #[wasm_bindgen(js_name = provider, unchecked_param_type = "ApiKeyProvider")] provider_name: String,
    ) -> JsResult<bool> {
        self.inner
            .has_api_key(provider(&provider_name)?)
            .map_err(js)
    }

    /// Removes the API key of `provider`; returns whether there was one.
    #[wasm_bindgen(js_name = removeApiKey)]
    pub fn remove_api_key(
        &mut self,
        #[wasm_bindgen(js_name = provider, unchecked_param_type = "ApiKeyProvider")] provider_name: String,
    ) -> JsResult<bool> {
        self.inner
            .remove_api_key(provider(&provider_name)?)
            .map_err(js)
    }

    /// The providers with a stored API key.
    #[wasm_bindgen(js_name = listProviders, unchecked_return_type = "ApiKeyProvider[]")]
    pub fn list_providers(&self) -> JsResult<Vec<String>> {
        let providers = self.inner.list_providers().map_err(js)?;
        Ok(providers.into_iter().map(|p| p.name().to_owned()).collect())
    }

    /// The redacted API key of `provider` (`sk-...abcd`), safe to show.
    ///
    /// @throws {Error} `code: "NO_API_KEY"` when none is stored.
    #[wasm_bindgen(js_name = redactedApiKey)]
    pub fn redacted_api_key(
        &self,
        #[wasm_bindgen(js_name = provider, unchecked_param_type = "ApiKeyProvider")] provider_name: String,
    ) -> JsResult<String> {
        self.inner
            .redacted_api_key(provider(&provider_name)?)
            .map_err(js)
    }

    /// Lets the API key of `provider` also go to `origin` (`"https://proxy.example"`, or
    /// `"http://127.0.0.1:8787"` for a test server). By default a key goes only to its provider's
    /// public API. `http://` is allowed only for loopback hosts (`localhost`, `127.0.0.0/8`,
    /// `[::1]`). Kept in memory.
    ///
    /// @throws {Error} `code: "INSECURE_ORIGIN"` for `http://` to any other host; `"BAD_FORMAT"` unless `origin` is `scheme://host[:port]`.
    #[wasm_bindgen(js_name = allowApiOrigin)]
    pub fn allow_api_origin(
        &mut self,
        #[wasm_bindgen(js_name = provider, unchecked_param_type = "ApiKeyProvider")] provider_name: String,
        origin: String,
    ) -> JsResult<()> {
        self.inner
            .allow_api_origin(provider(&provider_name)?, &origin)
            .map_err(js)
    }

    /// `fetch(url, init)` with `Authorization: Bearer <key of provider>` added, so the page never
    /// holds the key. Only to the provider's API origin or one allowed with `allowApiOrigin`;
    /// redirects are refused and no cookies are sent. The embedding service calls this for its
    /// remote providers.
    ///
    /// `fetch`, `Request`, `URL` and the helpers this uses were captured when the package was
    /// imported: a script that patches them later neither sees the key nor can change where it
    /// goes (one that runs before the import can; only an isolated worker vault closes that).
    ///
    /// @throws {Error} `code: "ORIGIN_NOT_ALLOWED"`, `"NO_API_KEY"`, `"LOCKED"` or `"BAD_ARGUMENT"` (`url` and `init` do not make a request).
    #[wasm_bindgen(js_name = authorizedFetch, unchecked_return_type = "Promise<Response>")]
    pub fn authorized_fetch(
        &self,
        #[wasm_bindgen(js_name = provider, unchecked_param_type = "ApiKeyProvider")] provider_name: String,
        #[wasm_bindgen(unchecked_param_type = "string | URL")] url: JsValue,
        #[wasm_bindgen(unchecked_param_type = "RequestInit")] init: Option<js_sys::Object>,
    ) -> JsResult<Promise> {
        let provider = provider(&provider_name)?;
        // Page code may run here (it reads `init`), before any key is decrypted.
        let ticket =
            prepare_authorized_request(&url, &init.map_or(JsValue::UNDEFINED, Into::into))?;
        // The origin is compared in the snippet, against bytes read from wasm memory: no string
        // crosses through wasm-bindgen's (patchable) text encoder or decoder.
        let memory = wasm_bindgen::memory();
        let Some(origin) = self.inner.api_origins(provider).find(|origin| {
            authorized_request_origin_is(ticket, &memory, origin.as_ptr() as usize, origin.len())
        }) else {
            return Err(js(security::SecurityError::OriginNotAllowed {
                provider: provider.name().to_owned(),
                origin: prepared_request_origin(ticket),
            }));
        };
        let authorization = self.inner.authorization_for(provider, origin).map_err(js)?;
        // While the key is in wasm memory only the snippet's captured code runs: it copies the
        // bytes into the prepared request and returns nothing (no glue that could call page
        // code). The fetch starts once the key is wiped here.
        attach_authorization(
            ticket,
            &memory,
            authorization.as_ptr() as usize,
            authorization.len(),
        );
        drop(authorization);
        dispatch_authorized_request(ticket)
    }

    /// The plaintext API key of `provider`. SDK modules read keys inside wasm; call this only
    /// when the page itself must send the key somewhere.
    ///
    /// @throws {Error} `code: "NO_API_KEY"` when none is stored.
    #[wasm_bindgen(js_name = getApiKey)]
    pub fn get_api_key(
        &self,
        #[wasm_bindgen(js_name = provider, unchecked_param_type = "ApiKeyProvider")] provider_name: String,
    ) -> JsResult<JsString> {
        let key = self
            .inner
            .get_api_key(provider(&provider_name)?)
            .map_err(js)?;
        // Built from a view of wasm memory, so the only wasm copy is `key`, wiped on drop.
        Ok(JsString::from(key.as_str()))
    }

    /// Starts a new key generation for `sessionId`; returns its number. Older generations stay
    /// usable for decryption up to the retention, then fail with `KEY_RETIRED`.
    #[wasm_bindgen(js_name = rotateSessionKey)]
    pub fn rotate_session_key(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
    ) -> JsResult<u32> {
        self.inner.rotate_session_key(session_id).map_err(js)
    }

    /// Encrypts under the current key of `sessionId` (created on first use).
    #[wasm_bindgen(js_name = sessionEncrypt)]
    pub fn session_encrypt(
        &mut self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        plaintext: &[u8],
        aad: Option<Vec<u8>>,
    ) -> JsResult<Vec<u8>> {
        self.inner
            .session_encrypt(session_id, plaintext, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Decrypts a session envelope.
    ///
    /// @throws {Error} `code: "KEY_RETIRED"`, `"UNKNOWN_SESSION"`, `"KEY_NOT_FOUND"`, `"AUTH_FAILED"` or `"BAD_FORMAT"`.
    #[wasm_bindgen(js_name = sessionDecrypt)]
    pub fn session_decrypt(
        &self,
        #[wasm_bindgen(js_name = sessionId)] session_id: &str,
        ciphertext: &[u8],
        aad: Option<Vec<u8>>,
    ) -> JsResult<Vec<u8>> {
        self.inner
            .session_decrypt(session_id, ciphertext, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Encrypts into a versioned storage envelope (magic, version, key id, nonce, ciphertext ‖ tag)
    /// under the newest storage key.
    #[wasm_bindgen(js_name = encryptForStorage)]
    pub fn encrypt_for_storage(&self, plaintext: &[u8], aad: Option<Vec<u8>>) -> JsResult<Vec<u8>> {
        self.inner
            .encrypt_for_storage(plaintext, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Decrypts a storage envelope under whichever storage key it names.
    ///
    /// @throws {Error} `code: "AUTH_FAILED"`, `"KEY_NOT_FOUND"` or `"BAD_FORMAT"`.
    #[wasm_bindgen(js_name = decryptFromStorage)]
    pub fn decrypt_from_storage(&self, envelope: &[u8], aad: Option<Vec<u8>>) -> JsResult<Vec<u8>> {
        self.inner
            .decrypt_from_storage(envelope, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Adds a storage key for new envelopes (old ones stay readable); returns its id.
    #[wasm_bindgen(js_name = rotateStorageKey)]
    pub fn rotate_storage_key(&mut self) -> JsResult<u32> {
        self.inner.rotate_storage_key().map_err(js)
    }

    /// The id of the storage key new envelopes use.
    #[wasm_bindgen(getter, js_name = currentStorageKeyId)]
    pub fn current_storage_key_id(&self) -> JsResult<u32> {
        self.inner.current_storage_key_id().map_err(js)
    }

    /// Re-encrypts an envelope under the newest storage key (same `aad`).
    pub fn reencrypt(&self, envelope: &[u8], aad: Option<Vec<u8>>) -> JsResult<Vec<u8>> {
        self.inner
            .reencrypt(envelope, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Wipes every key from memory; every later call fails with `LOCKED`.
    pub fn lock(&mut self) {
        self.inner.lock();
    }

    /// Whether `lock()` was called.
    #[wasm_bindgen(getter)]
    pub fn locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// A summary without secrets, e.g. `"SecurityContext(openai, nomic)"`.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        match self.inner.list_providers() {
            Err(_) => "SecurityContext(locked)".into(),
            Ok(providers) => {
                let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
                format!("SecurityContext({})", names.join(", "))
            }
        }
    }

    /// The same summary as `toString()`, so `JSON.stringify` never shows a key.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> String {
        self.to_js_string()
    }
}
