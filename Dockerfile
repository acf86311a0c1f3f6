# The controller's image: one static binary (musl, rustls with ring: no OpenSSL), the CA
# roots for Git and Vault over HTTPS, nothing else (no shell, no package manager), run as a
# non-root user. Build it from the repository root:
#
#   docker build -t ghcr.io/sealsync/sealsync-controller:0.1.0 .
#
# (The test machines have no container runtime; tests/tests/install.rs checks that this file
# builds the binary the Deployment runs, as the user the Deployment expects.)

FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY . .
# Alpine's Rust targets musl, which links statically by default.
RUN cargo build --release --locked -p sealsync-controller --bin sealsync-controller \
 && cp target/release/sealsync-controller /sealsync-controller

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /sealsync-controller /sealsync-controller
# The numeric user of the Deployment's securityContext (no /etc/passwd in the image).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/sealsync-controller"]
