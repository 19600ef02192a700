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
# Cargo refuses a manifest whose declared [[bench]] targets have no file: stub each one (they are
# never built here; .dockerignore keeps the real benches/ out of the context).
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for b in $(sed -n '/^\[\[bench\]\]/,/^name/{s/^name *= *"\([^"]*\)".*/\1/p}' Cargo.toml); do \
      echo 'fn main() {}' > "benches/$b.rs"; \
    done \
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
