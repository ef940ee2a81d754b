# dshare single-user server: Jupyter docker-stacks base-notebook plus dshare[singleuser]
# (server extension, DataExplorer labextension in the wheel, %dshare_run magic).
# Build from the repository root after building the wheel:
#   python -m pip wheel --no-deps -w dist .
#   docker build -f image/singleuser.Dockerfile -t dshare/singleuser:0.1.0 .
FROM quay.io/jupyter/base-notebook:2025-03-14

USER root
COPY dist/dshare-0.1.0-py3-none-any.whl /tmp/wheels/
# the wheel's shared-data puts the labextension under share/jupyter/labextensions and
# enables the server extension in etc/jupyter/jupyter_server_config.d
RUN pip install --no-cache-dir "/tmp/wheels/dshare-0.1.0-py3-none-any.whl[singleuser]" \
    && rm -rf /tmp/wheels \
    && jupyter server extension enable --sys-prefix dshare_server \
    && fix-permissions "${CONDA_DIR}"
# every kernel loads %dshare_run without a %load_ext
COPY image/singleuser/ipython_kernel_config.py /etc/ipython/ipython_kernel_config.py

USER ${NB_UID}
WORKDIR /home/${NB_USER}
