# jobwright controller image.
#
#   docker build -t jobwright:dev .
#   kind load docker-image jobwright:dev        # then: kubectl apply -k deploy/
#
# Stage 1 builds a release binary; dependencies are compiled in their own layer (from the
# manifests and Cargo.lock only, with empty crates), so editing src/ or crates/ does not rebuild them.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /build

COPY Cargo.toml Cargo.lock ./
COPY crates/jobwright-apiserver/Cargo.toml crates/jobwright-apiserver/
# Cargo refuses a manifest whose declared [[bench]] targets have no file: stub each one (they are
# never built here; .dockerignore keeps the real benches/ out of the context). Every workspace
# member gets an empty crate, so this layer holds only the dependencies.
RUN mkdir -p src benches crates/jobwright-apiserver/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs crates/jobwright-apiserver/src/lib.rs \
 && for b in $(sed -n '/^\[\[bench\]\]/,/^name/{s/^name *= *"\([^"]*\)".*/\1/p}' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$b.rs"; \
    done \
 && cargo build --release --locked --bin jobwright \
 && rm -rf src crates/jobwright-apiserver/src target/release/jobwright \
           target/release/deps/jobwright-* target/release/deps/libjobwright-* \
           target/release/deps/jobwright_apiserver-* target/release/deps/libjobwright_apiserver-* \
           target/release/.fingerprint/jobwright-*

COPY crates ./crates
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
