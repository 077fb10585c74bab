# Image for the operator, router, autoscaler and the simulated engine (chart default:
# ghcr.io/modelplane/modelplane). Not built by CI: this machine has no Docker engine.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator operator
COPY engine engine
COPY routing routing
COPY autoscaler autoscaler
COPY crds crds
RUN pip install --no-cache-dir '.[ray]' && useradd --uid 65532 --no-create-home modelplane
USER 65532
ENTRYPOINT ["modelplane"]
