# syntax=docker/dockerfile:1
# The inflight operator image: a static (musl) binary on an empty base.
#   make image            # docker build -t inflight:$(VERSION) .
# The result runs as UID/GID 65532 (non-root), holds only /inflight and the CA
# bundle, and starts `inflight run` unless given other arguments.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS builder
# build-base: the C toolchain `ring` and `aws-lc-sys` need (cmake and perl for
# the latter's fallback build); musl-dev: the static libc; ca-certificates: the
# bundle copied into the image (rustls-platform-verifier reads the system roots).
RUN apk add --no-cache build-base musl-dev cmake perl ca-certificates
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is
# copied out of the cached target dir because cache mounts do not persist in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin inflight \
 && cp target/release/inflight /inflight \
 && strip /inflight
# Refuse to ship a binary that would need a dynamic loader on the empty base.
RUN if readelf -l /inflight | grep -q 'Requesting program interpreter'; then \
      echo "inflight is not statically linked" >&2; exit 1; \
    fi

FROM scratch
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /inflight /inflight
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/inflight"]
CMD ["run"]
