from setuptools import setup

setup(name="mypackage", version="0.0.1", packages=["mypackage"])
