# The controller's image: two static binaries, the controller (musl, rustls with ring: no
# OpenSSL) and sealsync-renderer (Go, the pinned kustomize and Helm modules of renderer/go.mod),
# which the controller runs to build kustomize overlays and render Helm charts and finds beside
# itself; the CA roots for Git and Vault over HTTPS; nothing else (no shell, no git, no package
# manager), run as a non-root user. Build it from the repository root:
#
#   docker build -t ghcr.io/sealsync/sealsync-controller:0.1.0 .
#
# (The test machines have no container runtime; tests/tests/install.rs checks that this file
# builds the binary the Deployment runs, as the user the Deployment expects.)

FROM golang:1.26-alpine AS renderer
WORKDIR /src/renderer
COPY renderer/ ./
# renderer/go.sum pins every module; no other toolchain is fetched.
RUN GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w" -o /sealsync-renderer .

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
COPY --from=renderer /sealsync-renderer /sealsync-renderer
# The numeric user of the Deployment's securityContext (no /etc/passwd in the image).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/sealsync-controller"]
