// The JS half of SecurityContext.authorizedFetch (a wasm-bindgen snippet of the core module).
//
// Every function and accessor the request path uses is captured here, once, when the package
// module is imported (the generated bindings import this file statically). A script of the page
// that replaces fetch, Request, Headers, URL, TextDecoder, Reflect, Function.prototype.call or
// array / typed-array methods afterwards is never called while a key exists outside the sealed
// vault, and never sees the request that carries it:
// - the key leaves wasm as raw bytes that `readAscii` reads from wasm memory (never as a string
//   through wasm-bindgen's decoder, which looks up TextDecoder.prototype.decode at call time);
// - the request's origin is computed here from the Request the fetch will use and compared here
//   with the allowed origins' bytes (so a patched URL or decoder cannot forge it), and only a
//   boolean goes back to wasm;
// - the final RequestInit and its header record are null-prototype objects, so the platform's
//   dictionary conversion finds no inherited getter or iterator to call.
// Page code can run only before wasm decrypts the key (`prepareAuthorizedRequest` stringifies
// `url` and reads `init`) or after wasm has wiped it again (wasm-bindgen's glue, the fetch):
// while the key is in wasm memory, which a page script can read, only `attachAuthorization` runs.
//
// The limit: a script that runs BEFORE this module is first imported can replace these globals
// first, and then what is captured is its code. Only a vault in an isolated worker closes that.

const global = globalThis;
const { apply, construct, getPrototypeOf } = Reflect;
const { getOwnPropertyDescriptor } = Object;
const fromCharCode = String.fromCharCode;
const ErrorClass = Error;
const Uint8ArrayClass = Uint8Array;
const fetchFunction = global.fetch;
const RequestClass = global.Request;
const HeadersClass = global.Headers;
const UrlClass = global.URL;

const getter = (cls, name) => (typeof cls === "function" ? getOwnPropertyDescriptor(cls.prototype, name)?.get : undefined);
const requestUrl = getter(RequestClass, "url");
const requestHeaders = getter(RequestClass, "headers");
const urlOrigin = getter(UrlClass, "origin");
const memoryBuffer = getter(global.WebAssembly?.Memory, "buffer");
const headersEntries = typeof HeadersClass === "function" ? HeadersClass.prototype.entries : undefined;
const headersIteratorNext =
  typeof headersEntries === "function" ? getPrototypeOf(apply(headersEntries, new HeadersClass(), [])).next : undefined;
const supported = [fetchFunction, requestUrl, requestHeaders, urlOrigin, memoryBuffer, headersIteratorNext].every(
  (f) => typeof f === "function",
);

/** The request between `prepareAuthorizedRequest` and `dispatchAuthorizedRequest` (one at a time). */
let pending = null;
let lastTicket = 0;

function codedError(code, message) {
  const error = new ErrorClass(message);
  error.code = code;
  return error;
}

/** `len` bytes of wasm `memory` at `ptr` as text, one character per byte (keys are ASCII). */
function readAscii(memory, ptr, len) {
  const bytes = construct(Uint8ArrayClass, [apply(memoryBuffer, memory, []), ptr, len]);
  let text = "";
  for (let i = 0; i < len; i++) text += apply(fromCharCode, undefined, [bytes[i]]);
  return text;
}

/**
 * Builds the request from the page's `url` and `init` (without any key) and returns its ticket.
 * Throws `BAD_ARGUMENT` when they do not make a request, `NOT_SUPPORTED` without fetch.
 */
export function prepareAuthorizedRequest(url, init) {
  pending = null;
  if (!supported) throw codedError("NOT_SUPPORTED", "authorizedFetch needs fetch, Request, Headers and URL");
  let request;
  try {
    request = construct(RequestClass, [url, init]);
  } catch (error) {
    throw codedError("BAD_ARGUMENT", `url and init do not make a request: ${error?.message}`);
  }
  const origin = apply(urlOrigin, construct(UrlClass, [apply(requestUrl, request, [])]), []);
  const headers = { __proto__: null };
  const entries = apply(headersEntries, apply(requestHeaders, request, []), []);
  for (let step = apply(headersIteratorNext, entries, []); !step.done; step = apply(headersIteratorNext, entries, [])) {
    const name = step.value[0];
    if (name !== "authorization") headers[name] = step.value[1];
  }
  lastTicket = (lastTicket + 1) >>> 0;
  pending = { __proto__: null, ticket: lastTicket, request, origin, headers };
  return lastTicket;
}

/** The origin of the prepared request, for error messages only (decisions use `...OriginIs`). */
export function preparedRequestOrigin(ticket) {
  return pending !== null && pending.ticket === ticket ? pending.origin : "";
}

/** Whether the prepared request goes to the origin whose ASCII bytes are at `ptr` in `memory`. */
export function authorizedRequestOriginIs(ticket, memory, ptr, len) {
  return pending !== null && pending.ticket === ticket && readAscii(memory, ptr, len) === pending.origin;
}

/**
 * Puts the `Authorization` value, read from wasm memory at `ptr`, into the prepared request's
 * headers. This is the only code that runs while the key is in wasm memory (which a page script
 * can read), so it calls only what was captured above, never throws and returns nothing: an
 * exception or a returned object would pass through wasm-bindgen's glue (`handleError` calls
 * `f.apply`), which looks things up at call time.
 */
export function attachAuthorization(ticket, memory, ptr, len) {
  if (pending !== null && pending.ticket === ticket) pending.headers.authorization = readAscii(memory, ptr, len);
}

/**
 * Sends the prepared request (called after wasm has wiped its copy of the key): no redirects, no
 * cookies, CORS mode. Returns fetch's promise.
 */
export function dispatchAuthorizedRequest(ticket) {
  const prepared = pending;
  pending = null;
  if (prepared === null || prepared.ticket !== ticket || prepared.headers.authorization === undefined) {
    throw codedError("BAD_ARGUMENT", "no authorized request was prepared");
  }
  const init = { __proto__: null, headers: prepared.headers, mode: "cors", credentials: "omit", redirect: "error" };
  return apply(fetchFunction, global, [construct(RequestClass, [prepared.request, init])]);
}
