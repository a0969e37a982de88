# Build stage: the toolchain and the crates, nothing of it reaches the image.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/knowledge-vault

# Runtime: a small Debian with the binary and a non-root user. TLS roots are
# built into the binary (webpki-roots), so no ca-certificates package is needed.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --create-home vault
COPY --from=build /src/target/release/knowledge-vault /usr/local/bin/knowledge-vault
USER vault
WORKDIR /data
ENV HOST=0.0.0.0 \
    PORT=3001 \
    DOCS_DIR=/docs \
    CACHE_DIR=/data/cache
EXPOSE 3001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["knowledge-vault", "health"]
ENTRYPOINT ["knowledge-vault"]
CMD ["serve"]
