"""Only what pyproject.toml cannot say: the top-level kernels/ folder ships as snnres._kernels."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["snnres", "snnres.*"]) + ["snnres._kernels"],
    package_dir={"snnres._kernels": "kernels"},
)
