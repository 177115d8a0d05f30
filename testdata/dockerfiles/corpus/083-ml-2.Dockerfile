ARG CUDA_VERSION=12.1.1
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3.10 python3-pip git curl \
    && ln -sf /usr/bin/python3.10 /usr/bin/python \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install torch==2.3.1 lightning
RUN --mount=type=secret,id=hf_token,env=HF_TOKEN \
    python -c "print('warming caches')"
WORKDIR /workspace
COPY --link . /workspace
VOLUME ["/workspace/checkpoints"]
CMD ["python", "train.py"]
