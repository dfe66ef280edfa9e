// A minimal Twilio Media Streams bot: it plays the caller's audio straight
// back, as a bot written for Twilio would, with nothing Switchboard-specific.
//
//   PORT=8080 node echo.js      then route a call to ws://127.0.0.1:8080/
//
// It prints "listening on PORT" once ready (PORT=0 picks a free port). After
// every 50 media messages it sends a mark, and logs the mark when it comes back.
'use strict';
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: process.env.HOST || '127.0.0.1', port: Number(process.env.PORT || 8080) });

wss.on('listening', () => console.log(`listening on ${wss.address().port}`));

wss.on('connection', (ws) => {
  let streamSid = null;
  let media = 0;
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    switch (msg.event) {
      case 'connected':
        break;
      case 'start':
        streamSid = msg.start.streamSid;
        console.log(`start callSid=${msg.start.callSid} streamSid=${streamSid} params=${JSON.stringify(msg.start.customParameters)}`);
        break;
      case 'media':
        ws.send(JSON.stringify({ event: 'media', streamSid, media: { payload: msg.media.payload } }));
        if (++media % 50 === 0) {
          ws.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: `echo-${media}` } }));
        }
        break;
      case 'mark':
        console.log(`mark played ${msg.mark.name}`);
        break;
      case 'dtmf':
        console.log(`dtmf ${msg.dtmf.digit}`);
        break;
      case 'stop':
        console.log(`stop after ${media} media messages`);
        ws.close();
        break;
    }
  });
});

process.on('SIGTERM', () => process.exit(0));
