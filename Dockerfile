# Build stage: the toolchain and the crates, nothing of it reaches the image.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Members of the workspace (not built: `cargo build` means the product).
COPY scripts/bench ./scripts/bench
COPY scripts/docs/bench ./scripts/docs/bench
RUN cargo build --release --locked && strip target/release/knowledge-vault

# Runtime: a small Debian with the binary and a non-root user. TLS roots are
# built into the binary (webpki-roots), so no ca-certificates package is needed.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --create-home vault
COPY --from=build /src/target/release/knowledge-vault /usr/local/bin/knowledge-vault
USER vault
WORKDIR /data
# Listening on every interface, the service needs API_TOKENS (or
# API_TOKENS_FILE, e.g. a mounted secret), or ALLOW_ANONYMOUS=true behind an
# authenticating proxy: it refuses to start otherwise, saying so.
ENV HOST=0.0.0.0 \
    PORT=3001 \
    DOCS_DIR=/docs \
    DATA_DIR=/data \
    CACHE_DIR=/data/cache
# Conversations (the journal) and the GitHub cache.
VOLUME /data
EXPOSE 3001
# docker stop sends SIGTERM: answers get SHUTDOWN_GRACE_SECS (10) to finish.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["knowledge-vault", "health"]
ENTRYPOINT ["knowledge-vault"]
CMD ["serve"]
