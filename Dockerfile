# kpiwatch: one static-ish binary on a slim Debian base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kpiwatch

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/kpiwatch /usr/local/bin/kpiwatch
COPY config /etc/kpiwatch
RUN mkdir -p /var/lib/kpiwatch
EXPOSE 9898
ENTRYPOINT ["kpiwatch"]
CMD ["run", "--config", "/etc/kpiwatch/docker.toml"]
