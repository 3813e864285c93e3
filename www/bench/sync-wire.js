// Counts WebSocket payload bytes in and out of this page, for whichever library opens the
// sockets: the replication benchmark's "bytes on the wire".
window.wire = { sent: 0, received: 0, messagesSent: 0, messagesReceived: 0 };
const size = (data) => (typeof data === "string" ? new TextEncoder().encode(data).length : data.byteLength ?? data.size ?? 0);
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.wire.sent += size(data);
  window.wire.messagesSent += 1;
  return send.call(this, data);
};
const Native = WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      window.wire.received += size(event.data);
      window.wire.messagesReceived += 1;
    });
  }
};
