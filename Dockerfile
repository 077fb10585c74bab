# Image for the operator, router, autoscaler and the simulated engine on Ray Serve and
# Triton (nvidia-pytriton ships tritonserver) (chart default:
# ghcr.io/tierserve/tierserve). Only the runtime distribution goes in: development
# tooling (dev/, the `tierserve-dev` distribution) never does. Not built by CI: this
# machine has no Docker engine.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY cli cli
COPY operator operator
COPY engine engine
COPY routing routing
COPY autoscaler autoscaler
COPY dashboards dashboards
RUN pip install --no-cache-dir '.[ray,triton]' && useradd --uid 65532 --no-create-home tierserve
USER 65532
ENTRYPOINT ["tierserve"]
