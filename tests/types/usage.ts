// Compile-time checks of the package's TypeScript declarations (run by `tsc --noEmit`).
import init, {
  Hasher,
  blake3,
  blake3DeriveKey,
  blake3Keyed,
  initializeChrysalis,
  initSync,
  sha256,
  type ChrysalisInfo,
} from "chrysalis-sdk";

export async function usage(bytes: Uint8Array, wasm: BufferSource): Promise<Uint8Array[]> {
  const info: ChrysalisInfo = await initializeChrysalis();
  const version: string = info.version;
  void version;
  void init;
  initSync({ module: wasm });

  // update() chains and keeps the Hasher type.
  const hasher: Hasher = new Hasher("sha3-256").update(bytes).update(bytes);
  using disposable = new Hasher("blake3");
  disposable.update(bytes);

  // @ts-expect-error: unknown algorithm names are a type error.
  new Hasher("md5");

  return [sha256(bytes), blake3(bytes, 64), blake3Keyed(bytes, bytes), blake3DeriveKey("ctx", bytes), hasher.digest()];
}
