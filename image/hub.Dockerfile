# dshare hub (and broker) image: the zero-to-jupyterhub 4.4.0 hub plus dshare[hub].
# Build from the repository root after building the wheel:
#   python -m pip wheel --no-deps -w dist .
#   docker build -f image/hub.Dockerfile -t dshare/hub:0.1.0 .
# The org brokers run from this image too (`dshare broker`), so it holds no org's key:
# KEKs, tokens and Fabric identities are mounted from Secrets at run time.
FROM quay.io/jupyterhub/k8s-hub:4.4.0

USER root
COPY dist/dshare-0.1.0-py3-none-any.whl /tmp/wheels/
# jupyterhub and kubespawner stay the versions the chart's image ships (within dshare's ranges)
RUN python3 -m pip install --no-cache-dir "/tmp/wheels/dshare-0.1.0-py3-none-any.whl[hub]" \
    && rm -rf /tmp/wheels

# the base image's unprivileged user (uid 1000), as in the chart's own hub image
USER jovyan
