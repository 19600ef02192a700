# jobwright controller image.
#
#   docker build -t jobwright:dev .
#   kind load docker-image jobwright:dev        # then: kubectl apply -k deploy/
#
# Stage 1 builds a release binary; dependencies are compiled in their own layer (from Cargo.toml
# and Cargo.lock only, with an empty crate), so editing src/ does not rebuild them.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /build

COPY Cargo.toml Cargo.lock ./
# If Cargo.toml gains [[bench]]/[[bin]] targets with explicit paths, stub them here too.
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin jobwright \
 && rm -rf src target/release/jobwright target/release/deps/jobwright-* target/release/deps/libjobwright-* \
           target/release/.fingerprint/jobwright-*

COPY src ./src
RUN cargo build --release --locked --bin jobwright \
 && cp target/release/jobwright /jobwright

# Stage 2: glibc + libgcc + CA certificates, no shell, uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /jobwright /jobwright
USER nonroot:nonroot
# Admin server: /metrics, /healthz, /readyz.
EXPOSE 8080
ENTRYPOINT ["/jobwright"]
CMD ["controller"]
