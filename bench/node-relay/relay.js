// BASELINE, NOT PART OF CALLGATE. `cargo xtask bench` runs this as the comparison point for the
// voice node: a Twilio Media Streams relay written the way Twilio's Node.js samples are
// (Fastify + @fastify/websocket, one closure per call), doing what callgate's minimal agent does:
// greet the caller in 20 ms frames paced on a schedule (60 ms ahead, like the node), send a mark
// after the greeting, and run an energy check over every inbound frame (the node's agent runs
// an energy VAD). It checks no signature and no stream token, so it does less than the node.
//
// Environment: PORT (default 8090), GREETING_ULAW (raw 8 kHz mu-law file, required).
'use strict';

const fs = require('node:fs');
const fastify = require('fastify')({ logger: false });

const FRAME_BYTES = 160; // 20 ms of 8 kHz mu-law
const FRAME_MS = 20;
const LEAD_MS = 60; // first frames go out at once so Twilio's jitter buffer fills

const greeting = fs.readFileSync(process.env.GREETING_ULAW);
const frames = [];
for (let i = 0; i + FRAME_BYTES <= greeting.length; i += FRAME_BYTES) {
  frames.push(greeting.subarray(i, i + FRAME_BYTES).toString('base64'));
}

// G.711 mu-law → linear, as a lookup table.
const MULAW = new Int16Array(256);
for (let i = 0; i < 256; i++) {
  const u = ~i & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  MULAW[i] = u & 0x80 ? 0x84 - t : t - 0x84;
}

fastify.register(require('@fastify/websocket'), { options: { maxPayload: 64 * 1024 } });

fastify.register(async (app) => {
  const handler = (socket) => {
    let streamSid = null;
    let timer = null;
    let voiced = 0;

    const playGreeting = () => {
      const origin = Date.now();
      let k = 0;
      const tick = () => {
        timer = null;
        const now = Date.now();
        while (k < frames.length && origin + k * FRAME_MS - LEAD_MS <= now) {
          socket.send(JSON.stringify({ event: 'media', streamSid, media: { payload: frames[k] } }));
          k += 1;
        }
        if (k >= frames.length) {
          socket.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: 'greeting' } }));
          return;
        }
        timer = setTimeout(tick, Math.max(0, origin + k * FRAME_MS - LEAD_MS - Date.now()));
      };
      tick();
    };

    socket.on('message', (raw) => {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch {
        socket.close(1008, 'invalid JSON');
        return;
      }
      switch (msg.event) {
        case 'start':
          streamSid = msg.start.streamSid;
          playGreeting();
          break;
        case 'media': {
          const audio = Buffer.from(msg.media.payload, 'base64');
          let energy = 0;
          for (let i = 0; i < audio.length; i++) {
            const s = MULAW[audio[i]];
            energy += s * s;
          }
          voiced = energy / Math.max(1, audio.length) > 1e6 ? voiced + 1 : 0;
          break;
        }
        case 'stop':
          socket.close(1000, 'stream stopped');
          break;
        default:
          break; // connected, mark echoes, dtmf
      }
    });
    socket.on('close', () => {
      if (timer) clearTimeout(timer);
    });
  };
  app.get('/media', { websocket: true }, handler);
  app.get('/media/:node', { websocket: true }, handler);
});

fastify.get('/healthz', async () => 'ok\n');

fastify.listen({ host: '127.0.0.1', port: Number(process.env.PORT || 8090) }).catch((err) => {
  console.error(err);
  process.exit(1);
});
