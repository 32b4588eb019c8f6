# promptgate container image: multi-stage, small non-root runtime.
#   docker build -t promptgate:0.1.0 .
# (Not built in this repository's CI: no container engine runs there. The
# build stage is the same `cargo build --release` the tests use.)

FROM rust:1.91-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for b in $(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v '^promptgate$'); do echo 'fn main() {}' > "benches/$b.rs"; done \
 && cargo build --release --locked --bin promptgate || true
COPY src ./src
COPY policies ./policies
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin promptgate \
 && strip target/release/promptgate

# glibc + CA certificates, no shell, user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/promptgate /usr/local/bin/promptgate
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/promptgate"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
