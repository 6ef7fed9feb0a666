"""Run streamdouble against a callgate voice node, with the handshake signed like Twilio's.

streamdouble (PyPI, an independent emulator of Twilio's side of a Media Stream) connects with
`websockets.connect(url, max_size=...)` and sends no `X-Twilio-Signature`; the node refuses such a
handshake. This script wraps that one call so the upgrade carries the signature the official
`twilio` package computes (`RequestValidator.compute_signature` over the stream URL with no
parameters, twilio.md §1.5). Nothing on the node is switched off.

It also pins the stream's CallSid/AccountSid (streamdouble randomises them) so the edge-style
stream token passed with `--param token=…` matches the `start` message.

    TWILIO_AUTH_TOKEN=… python run.py --url ws://127.0.0.1:8080/media/node-1 \
        --call-sid CA… --account-sid AC… --param token=… --param mode=screening \
        --audio caller.ulaw [--quiet-period 1.0]

Prints one JSON object (streamdouble's report plus `call_sid`, `signature_sent`) and exits with
streamdouble's exit code (0 = the call went well).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys

import websockets
from streamdouble.api import CallReport
from streamdouble.metrics import compute
from streamdouble.protocol import StreamIdentity
from streamdouble.session import Session, SessionConfig
from twilio.request_validator import RequestValidator

FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES


def signed_connect(auth_token: str, sent: list[str]):
    """`websockets.connect`, adding Twilio's handshake signature over the URL it is given."""
    original = websockets.connect
    validator = RequestValidator(auth_token)

    @functools.wraps(original)
    def connect(uri, *args, **kwargs):
        signature = validator.compute_signature(uri, {})
        sent.append(signature)
        headers = dict(kwargs.pop("additional_headers", None) or {})
        headers["X-Twilio-Signature"] = signature
        return original(uri, *args, additional_headers=headers, **kwargs)

    return connect


def frames_from_ulaw(path: str, lead_silence_s: float) -> list[bytes]:
    with open(path, "rb") as f:
        audio = f.read()
    if len(audio) % FRAME_BYTES:
        audio += b"\xff" * (FRAME_BYTES - len(audio) % FRAME_BYTES)
    lead = [SILENCE] * int(lead_silence_s * 50)
    return lead + [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--call-sid", required=True)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--param", action="append", default=[], help="k=v customParameter")
    parser.add_argument("--audio", required=True, help="raw 8 kHz mu-law, the caller's words")
    parser.add_argument("--lead-silence", type=float, default=2.5,
                        help="seconds of line silence before speaking (the greeting plays)")
    parser.add_argument("--quiet-period", type=float, default=1.5)
    parser.add_argument("--response-timeout", type=float, default=15.0)
    parser.add_argument("--unsigned", action="store_true",
                        help="connect as streamdouble does on its own, without a signature")
    args = parser.parse_args()

    auth_token = os.environ.get("TWILIO_AUTH_TOKEN", "")
    if not auth_token:
        print("TWILIO_AUTH_TOKEN is not set", file=sys.stderr)
        return 4
    params = dict(p.split("=", 1) for p in args.param)

    sent: list[str] = []
    if not args.unsigned:
        websockets.connect = signed_connect(auth_token, sent)

    config = SessionConfig(
        custom_parameters=params,
        quiet_period_s=args.quiet_period,
        response_timeout_s=args.response_timeout,
        max_drain_s=30.0,
    )
    identity = StreamIdentity(call_sid=args.call_sid, account_sid=args.account_sid)
    session = Session(args.url, frames_from_ulaw(args.audio, args.lead_silence),
                      config=config, identity=identity)
    result = await session.run()
    report = CallReport(result=result, metrics=compute(result))
    payload = report.to_dict()
    payload["call_sid"] = args.call_sid
    payload["signature_sent"] = bool(sent)
    print(json.dumps(payload))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
