//! `VaultWorker`: a `SecurityContext` in a worker realm of its own, for
//! `SecurityContext.isolated(...)` (the package's `vault.js` and `vault-worker.js`).
//!
//! In the page, the vault's keys sit in the core module's wasm memory, which any script of the
//! page can read, and `authorizedFetch` runs with the page's globals. In an isolated vault they
//! live in a dedicated worker's instance of the module: the page sends requests and gets back
//! what each may return (a redacted key, a sealed vault, a response's status, headers and body),
//! never a key. The requests a page may make are decided here: there is no `getApiKey`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use web_sys::Response;

use crate::error::{CodedError, JsResult, js};
use crate::input::object;
use crate::security::{SecurityContext, stored_vault};

/// What a worker vault runs: the page's requests, one at a time, against its context.
#[wasm_bindgen]
pub struct VaultWorker {
    context: Rc<RefCell<Option<SecurityContext>>>,
    /// The passphrase given to `open`: the only one the vault is ever sealed under.
    passphrase: Rc<RefCell<Option<String>>>,
}

fn arg(args: &Array, i: u32) -> JsValue {
    args.get(i)
}

fn text(args: &Array, i: u32, what: &str) -> Result<String, CodedError> {
    arg(args, i)
        .as_string()
        .ok_or_else(|| CodedError::bad_argument(format!("{what} must be a string")))
}

fn bytes(args: &Array, i: u32, what: &str) -> Result<Vec<u8>, CodedError> {
    arg(args, i)
        .dyn_into::<Uint8Array>()
        .map(|b| b.to_vec())
        .map_err(|_| CodedError::bad_argument(format!("{what} must be a Uint8Array")))
}

fn locked() -> JsValue {
    js(CodedError::new("LOCKED", "the vault is not open"))
}

/// Applies `origins` (`{ provider: [origin, …] }`) to a context just opened.
fn allow_origins(context: &mut SecurityContext, origins: &JsValue) -> Result<(), JsValue> {
    if origins.is_undefined() || origins.is_null() {
        return Ok(());
    }
    for entry in Object::entries(origins.dyn_ref::<Object>().ok_or_else(|| {
        js(CodedError::bad_argument(
            "origins must be { provider: [origin, ...] }",
        ))
    })?) {
        let pair: Array = entry.dyn_into()?;
        let provider = pair.get(0).as_string().unwrap_or_default();
        let list: Array = pair.get(1).dyn_into().map_err(|_| {
            js(CodedError::bad_argument(
                "origins must be { provider: [origin, ...] }",
            ))
        })?;
        for origin in list.iter() {
            let origin = origin
                .as_string()
                .ok_or_else(|| js(CodedError::bad_argument("an origin must be a string")))?;
            context.allow_api_origin(provider.clone(), origin)?;
        }
    }
    Ok(())
}

#[wasm_bindgen]
impl VaultWorker {
    /// A worker vault with no context yet (`open` makes one).
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> VaultWorker {
        VaultWorker {
            context: Rc::new(RefCell::new(None)),
            passphrase: Rc::new(RefCell::new(None)),
        }
    }

    /// Runs the page's request `op` with `args` (an array); resolves to what it may return.
    ///
    /// `open({ vault?, store?, passphrase?, origins? })` once (a new context, an exported vault,
    /// or one persisted in IndexedDB; `origins`: `{ provider: [origin, …] }` its keys may also go
    /// to, fixed from then on), `storeApiKey`, `hasApiKey`, `removeApiKey`, `listProviders`,
    /// `redactedApiKey`, `exportVault(options)` and `persist(store)` (both sealed under the
    /// passphrase given to `open`, never another), `encryptForStorage`, `decryptFromStorage`,
    /// and `fetch(provider, url, { method, headers, body, signal })`, which resolves to
    /// `{ status, statusText, headers, body }` (the body as an `ArrayBuffer`).
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for an unknown request or bad arguments; `"LOCKED"` before `open`; `"ALREADY_OPEN"`; `"NO_PASSPHRASE"`; the context's own errors.
    pub fn handle(&self, op: String, args: JsValue) -> JsResult<Promise> {
        // Arguments are checked before any borrow: a JS exception inside one would leave it held.
        let args: Array = args
            .dyn_into()
            .map_err(|_| js(CodedError::bad_argument("args must be an array")))?;
        match op.as_str() {
            "open" => return self.open(&arg(&args, 0)),
            "storeApiKey" | "removeApiKey" | "exportVault" | "persist" => {
                return self.mutate(&op, &args);
            }
            _ => {}
        }
        let context = self.context.borrow();
        let Some(context) = context.as_ref() else {
            return Err(locked());
        };
        let done = |value: JsValue| Ok(Promise::resolve(&value));
        match op.as_str() {
            "hasApiKey" => done(context.has_api_key(text(&args, 0, "provider")?)?.into()),
            "listProviders" => done(
                context
                    .list_providers()?
                    .into_iter()
                    .map(JsValue::from)
                    .collect::<Array>()
                    .into(),
            ),
            "redactedApiKey" => done(
                context
                    .redacted_api_key(text(&args, 0, "provider")?)?
                    .into(),
            ),
            "encryptForStorage" | "decryptFromStorage" => {
                let data = bytes(&args, 0, "data")?;
                let aad = arg(&args, 1)
                    .dyn_into::<Uint8Array>()
                    .ok()
                    .map(|a| a.to_vec());
                let out = match op.as_str() {
                    "encryptForStorage" => context.encrypt_for_storage(&data, aad)?,
                    _ => context.decrypt_from_storage(&data, aad)?,
                };
                done(Uint8Array::from(&out[..]).into())
            }
            "fetch" => {
                let provider = text(&args, 0, "provider")?;
                let url = text(&args, 1, "url")?;
                let init = arg(&args, 2).dyn_into::<Object>().ok();
                let pending = context.authorized_fetch(provider, url.into(), init)?;
                Ok(future_to_promise(async move {
                    let response: Response = JsFuture::from(pending).await?.dyn_into()?;
                    let headers: Array = js_sys::try_iter(&response.headers())?
                        .map(|entries| entries.filter_map(Result::ok).collect())
                        .unwrap_or_default();
                    let body = JsFuture::from(response.array_buffer()?).await?;
                    Ok(object(&[
                        ("status", response.status().into()),
                        ("statusText", response.status_text().into()),
                        ("headers", headers.into()),
                        ("body", body),
                    ]))
                }))
            }
            other => Err(js(CodedError::bad_argument(format!(
                "an isolated vault does not answer {other:?}"
            )))),
        }
    }
}

impl VaultWorker {
    fn open(&self, options: &JsValue) -> JsResult<Promise> {
        if self.context.borrow().is_some() {
            return Err(js(CodedError::new(
                "ALREADY_OPEN",
                "this isolated vault is open already",
            )));
        }
        let field = |name: &str| Reflect::get(options, &name.into()).unwrap_or_default();
        let (vault, passphrase, store, origins) = (
            field("vault"),
            field("passphrase"),
            field("store"),
            field("origins"),
        );
        if !passphrase.is_undefined() && passphrase.as_string().is_none() {
            return Err(js(CodedError::bad_argument("passphrase must be a string")));
        }
        let (slot, kept) = (Rc::clone(&self.context), Rc::clone(&self.passphrase));
        let finish = move |mut context: SecurityContext| -> Result<JsValue, JsValue> {
            allow_origins(&mut context, &origins)?;
            let mut slot = slot.borrow_mut();
            if slot.is_some() {
                return Err(js(CodedError::new(
                    "ALREADY_OPEN",
                    "this isolated vault is open already",
                )));
            }
            *slot = Some(context);
            *kept.borrow_mut() = passphrase.as_string();
            Ok(JsValue::UNDEFINED)
        };
        if let Some(store) = store.as_string() {
            let unlock_with = field("passphrase");
            return Ok(future_to_promise(async move {
                let vault = stored_vault(&store).await?;
                finish(SecurityContext::unlock(&vault, unlock_with)?)
            }));
        }
        // No vault is a new one; anything else must be bytes of a bounded size (a wrong type
        // used to open a new, empty vault that a later persist wrote over the stored one).
        let context = if vault.is_undefined() || vault.is_null() {
            SecurityContext::new(None)?
        } else {
            let vault = vault
                .dyn_into::<Uint8Array>()
                .map_err(|_| js(CodedError::new("BAD_FORMAT", "vault must be a Uint8Array")))?;
            chrysalis_security::check_vault_len(vault.length() as usize).map_err(js)?;
            SecurityContext::unlock(&vault.to_vec(), field("passphrase"))?
        };
        Ok(Promise::resolve(&finish(context)?))
    }

    fn mutate(&self, op: &str, args: &Array) -> JsResult<Promise> {
        let passphrase = || {
            self.passphrase.borrow().clone().ok_or_else(|| {
                js(CodedError::new(
                    "NO_PASSPHRASE",
                    "this isolated vault was opened without a passphrase to seal it with",
                ))
            })
        };
        let mut context = self.context.borrow_mut();
        let Some(context) = context.as_mut() else {
            return Err(locked());
        };
        let value: JsValue = match op {
            "storeApiKey" => {
                context.store_api_key(text(args, 0, "provider")?, text(args, 1, "key")?)?;
                JsValue::UNDEFINED
            }
            "removeApiKey" => context.remove_api_key(text(args, 0, "provider")?)?.into(),
            "exportVault" => {
                let options = arg(args, 0).dyn_into().ok();
                let sealed = context.export_vault(passphrase()?.into(), options)?;
                Uint8Array::from(&sealed[..]).into()
            }
            "persist" => return context.persist(text(args, 0, "store")?, Some(passphrase()?)),
            other => {
                return Err(js(CodedError::bad_argument(format!(
                    "an isolated vault does not answer {other:?}"
                ))));
            }
        };
        Ok(Promise::resolve(&value))
    }
}
