// Signs webhook requests with Twilio's official helper library (npm `twilio`), so the edge's
// signature check is tested against code we did not write.
//
// stdin: JSON {"authToken": "...", "requests": [{"url": "...", "params": {"K": "V", ...}}, ...]}
// stdout: JSON list of signatures, one per request, each also checked with
// `twilio.validateRequest` (exit 1 if the library disagrees with itself).
"use strict";
const twilio = require("twilio");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const { authToken, requests } = JSON.parse(input);
  const signatures = requests.map(({ url, params }) => {
    const signature = twilio.getExpectedTwilioSignature(authToken, url, params);
    if (!twilio.validateRequest(authToken, signature, url, params)) {
      console.error(`twilio.validateRequest rejected its own signature for ${url}`);
      process.exit(1);
    }
    return signature;
  });
  process.stdout.write(JSON.stringify(signatures));
});
