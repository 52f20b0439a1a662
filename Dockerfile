# syntax=docker/dockerfile:1
# The MemLayer service, built in one stage and run from a slim image in another.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache the registry and the target folder between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p memlayer-server \
    && cp target/release/memlayer /usr/local/bin/memlayer

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /app memlayer
COPY --from=build /usr/local/bin/memlayer /usr/local/bin/memlayer
USER memlayer
WORKDIR /app
ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD curl -fsS http://127.0.0.1:8000/health/ready || exit 1
ENTRYPOINT ["/usr/local/bin/memlayer"]
