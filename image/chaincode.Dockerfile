# dshare chaincode as a service: the DataAsset contract served to the Fabric peers over
# gRPC (python -m dshare_chaincode.ccaas). Build from the repository root:
#   python -m pip wheel --no-deps -w dist .
#   docker build -f image/chaincode.Dockerfile -t dshare/chaincode:0.1.0 .
# Run with CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999 and CHAINCODE_ID=<package id>; TLS
# material (CHAINCODE_TLS_KEY/CERT, CHAINCODE_CLIENT_CA_CERT) is mounted at run time, never
# baked in. Without it the service refuses to start unless CHAINCODE_PLAINTEXT=true.
FROM python:3.12.10-slim-bookworm

COPY dist/dshare-0.1.0-py3-none-any.whl /tmp/wheels/
RUN pip install --no-cache-dir "/tmp/wheels/dshare-0.1.0-py3-none-any.whl[chaincode]" \
    && rm -rf /tmp/wheels \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin chaincode

USER 10001
EXPOSE 9999
ENV CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999
CMD ["python", "-m", "dshare_chaincode.ccaas"]
