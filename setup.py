"""The package list, which pyproject.toml cannot express: every surveybot package on disk, plus
surveybot.templates mapped to the top-level templates/ folder (see [tool.setuptools] there)."""

from setuptools import find_namespace_packages, setup

packages = find_namespace_packages(include=["surveybot", "surveybot.*"], exclude=["*.__pycache__"])
setup(packages=[*packages, "surveybot.templates"])
