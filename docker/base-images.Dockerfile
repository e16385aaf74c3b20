# Not built. Dependabot's docker ecosystem reads base images only from FROM lines, never from
# ARG defaults, so the pins live here too: when dependabot bumps a line below, tests/packaging.rs
# fails until the same value is copied into the ARG defaults of docker/Dockerfile and
# docker/Dockerfile.gpu and the variables of docker-bake.hcl (docs/RELEASING.md, "Pinning").
FROM rust:1.95.0-slim-bookworm AS builder
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
FROM debian:bookworm-slim AS gpu-runtime
# The base-image comparison only (bake group "compare").
FROM ubuntu:24.04 AS ubuntu
FROM alpine:3.22 AS alpine
# The images themselves run as 65532 (see docker/Dockerfile*); this keeps scanners consistent.
USER 65532:65532
