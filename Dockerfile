# Multi-stage build of the controller image. It cannot be built on the project's development machines
# (no Docker engine there); it is kept minimal and standard so any CI with Docker builds it as is.
#   docker build -t watch-cluster .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# --locked: the image is built from exactly the dependency versions that were tested.
# --no-default-features: the `demo` feature (which links the simulated cluster) stays out of the image.
# The release profile optimises for size (Cargo.toml); .ci/run builds this same binary and holds it to
# 16,000,000 bytes (BENCHMARKS.md#binary-size).
RUN cargo build --release --locked --no-default-features --bin watch-cluster \
    && install -D target/release/watch-cluster /out/watch-cluster

# distroless/cc: CA certificates and time-zone data, no shell, runs as non-root (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/watch-cluster /usr/local/bin/watch-cluster
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/watch-cluster"]
CMD ["run"]
