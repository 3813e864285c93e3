// Counts WebSocket and WebRTC data channel payload bytes in and out of this page, for whichever
// library opens them: the replication benchmark's "bytes on the wire".
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
const count = (channel) => {
  const send = channel.send;
  channel.send = (data) => {
    window.wire.sent += size(data);
    window.wire.messagesSent += 1;
    return send.call(channel, data);
  };
  channel.addEventListener("message", (event) => {
    window.wire.received += size(event.data);
    window.wire.messagesReceived += 1;
  });
  return channel;
};
const NativePeerConnection = RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
  constructor(...args) {
    super(...args);
    this.addEventListener("datachannel", ({ channel }) => count(channel));
  }
  createDataChannel(...args) {
    return count(super.createDataChannel(...args));
  }
};
