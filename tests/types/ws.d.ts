// The `ws` package ships no types; the examples use only its WebSocket, which has the DOM's shape.
declare module "ws" {
  export const WebSocket: typeof globalThis.WebSocket;
}
